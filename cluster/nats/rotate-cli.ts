/**
 * Rotates one NATS identity of a local cluster started with `nats.auth` on, live (cluster/nats/rotate.ts):
 *
 *   node dist/cluster/nats/rotate-cli.js --nats nats://127.0.0.1:<port> [--run-dir run/local]
 *        (--role admin|node|reader | --node <name>)
 *
 * Reads `<run dir>/config.json` (cluster TLS), rewrites `<run dir>/nats-auth/` (the seed,
 * identities.json, nats-server.conf) and reloads the server with a SIGHUP to the pid in
 * `<run dir>/nats-server.pid`. The processes holding that identity keep running: the server drops
 * their connections when the old key goes, and they reconnect with the new seed. Exit 0 rotated,
 * 1 refused or failed (the status and why), 2 bad usage.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveConfig } from '../config.js';
import type { UpnextConfigInput } from '../config.js';
import { natsTlsOptions } from '../tls.js';
import { NATS_ROLES } from './auth.js';
import { connectProbe, reloadBySignal, rotateNatsIdentity } from './rotate.js';
import { StatusCode, UpnextError, toStatus } from '../../core/status.js';
import { parseFlags } from '../../shardmap/cli.js';

const USAGE = 'usage: rotate-cli --nats <url> [--run-dir run/local] (--role admin|node|reader | --node <name>)';
const FLAGS = new Set(['nats', 'run-dir', 'role', 'node']);

async function main(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv);
  const unknown = [...flags.keys()].filter((f) => !FLAGS.has(f));
  const url = flags.get('nats');
  const role = flags.get('role');
  const node = flags.get('node');
  if (unknown.length > 0 || url === undefined || (role === undefined) === (node === undefined) || (role !== undefined && !(NATS_ROLES as readonly string[]).includes(role))) {
    process.stderr.write(`${unknown.length > 0 ? `unknown flag(s): ${unknown.map((f) => `--${f}`).join(', ')}\n` : ''}${role !== undefined && !(NATS_ROLES as readonly string[]).includes(role) ? `--role must be one of ${NATS_ROLES.join(', ')}, got "${role}"\n` : ''}${USAGE}\n`);
    return 2;
  }
  const runDir = path.resolve(flags.get('run-dir') ?? 'run/local');
  const configFile = path.join(runDir, 'config.json');
  const configText = await readFile(configFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cannot read ${configFile} (${err.code ?? err.message}): --run-dir must be the local cluster's run directory`);
  });
  const tls = natsTlsOptions(resolveConfig(JSON.parse(configText) as UpnextConfigInput).tls);
  const r = await rotateNatsIdentity({
    dir: path.join(runDir, 'nats-auth'),
    id: role ?? `node-${node}`,
    reload: reloadBySignal(path.join(runDir, 'nats-server.pid')),
    probe: connectProbe(url, tls),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`${r.id} rotated: the server accepts ${r.publicKey} only; ${r.seedFile} holds its seed\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const st = toStatus(err);
    process.stderr.write(`rotate-cli: ${StatusCode[st.code] ?? st.code}: ${st.message}\n`);
    process.exit(1);
  },
);
