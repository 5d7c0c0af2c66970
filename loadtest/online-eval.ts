/**
 * Online evaluation against a running cluster: the synthetic world's users respond to what it serves.
 *
 *   node dist/loadtest/online-eval.js --target host:port --world <dir> [--requests 2000] [--rate 20]
 *     [--seed 1] [--k 20] [--log-events] [--out reports/online-eval.json]
 *     [--tls-ca ca.pem --tls-cert client.pem --tls-key client.key [--tls-server-name name]]
 *
 * `--world` is the world the cluster serves (e.g. data/worlds/local-1000000v-20000u-5d-s1). Prints
 * the arm × metric tables (loadtest/online/table.ts) and writes the whole report as JSON to `--out`.
 * Arms and metrics: loadtest/online/eval.ts; docs/loadtest.md "Online evaluation".
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connectRecommender } from '../cluster/local/client.js';
import { tlsSectionFromFlags } from '../cluster/tls.js';
import { runOnlineEval } from './online/eval.js';
import { loadSimWorld } from './online/sim-world.js';
import { formatOnlineEval } from './online/table.js';

const USAGE = `usage: online-eval.js --target host:port --world <dir> [--requests 2000] [--rate 20] [--seed 1] [--k 20]
                      [--log-events] [--out reports/online-eval.json]
                      [--tls-ca ca.pem --tls-cert client.pem --tls-key client.key [--tls-server-name name]]`;

function num(flag: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || v.trim() === '') throw new TypeError(`--${flag} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      world: { type: 'string' },
      requests: { type: 'string' },
      rate: { type: 'string' },
      seed: { type: 'string' },
      k: { type: 'string' },
      'log-events': { type: 'boolean', default: false },
      out: { type: 'string', default: 'reports/online-eval.json' },
      'tls-ca': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-server-name': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.target === undefined || !/^[^:\s]+:\d+$/.test(values.target)) throw new TypeError(`--target must be host:port, got ${JSON.stringify(values.target)}`);
  if (values.world === undefined) throw new TypeError('--world <dir> is required (the world the cluster serves)');
  const tls = tlsSectionFromFlags((flag) => {
    const v = (values as Record<string, string | boolean | undefined>)[flag.slice(2)];
    return typeof v === 'string' ? v : undefined;
  });
  const t0 = Date.now();
  const world = await loadSimWorld(path.resolve(values.world));
  process.stderr.write(`world ${world.manifest.name} rebuilt in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const client = connectRecommender(values.target, tls.certFile !== undefined ? { tls } : {});
  try {
    let last = 0;
    const report = await runOnlineEval({
      client,
      world,
      requests: num('requests', values.requests, 2000),
      rate: num('rate', values.rate, 20),
      seed: num('seed', values.seed, 1),
      k: num('k', values.k, 20),
      logEvents: values['log-events'] === true,
      onProgress: (done, total) => {
        if (process.stderr.isTTY && (done === total || Date.now() - last > 500)) {
          last = Date.now();
          process.stderr.write(`\r${done}/${total} requests`);
          if (done === total) process.stderr.write('\n');
        }
      },
    });
    process.stdout.write(`${formatOnlineEval(report)}\n`);
    const out = path.resolve(values.out ?? 'reports/online-eval.json');
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify({ target: values.target, ...report }, null, 2)}\n`);
    process.stdout.write(`report: ${out}\n`);
    return report.conditions.completed > 0 ? 0 : 1;
  } finally {
    client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`online-eval: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  },
);
