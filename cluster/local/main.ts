/**
 * `make run`: a whole upnext cluster on this machine, serving real recommendations.
 *
 *   node dist/cluster/local/main.js [--items N] [--users N] [--days N] [--seed N]
 *     [--nodes 3] [--item-shards 2] [--partitions 16] [--replicas 1] [--item-replicas all|N] [--port 50051]
 *     [--run-dir run/local] [--config file.json] [--set key=value]... [--world dir --models dir] [--exit]
 *
 * Phases, each with progress and its duration: (1) world + models (generated and trained on first
 * use, cached by parameters and feature-spec hash), (2) nats-server + node processes, (3) a few
 * real recommendations through a real gRPC client, then (4) serve until Ctrl-C (or exit at once
 * with --exit) and stop everything cleanly.
 */
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { applyOverrides, readConfigFile } from '../config.js';
import type { UpnextConfigInput } from '../config.js';
import { tlsEnabled } from '../tls.js';
import { DEFAULT_LOCAL_WORLD, ensureLocalAssets } from './assets.js';
import { connectRecommender } from './client.js';
import type { RecommendReply } from './client.js';
import { startLocalCluster } from './launcher.js';

interface Flags {
  readonly values: Map<string, string>;
  readonly set: string[];
}

function parse(argv: readonly string[]): Flags {
  const values = new Map<string, string>();
  const set: string[] = [];
  const numeric = ['items', 'users', 'days', 'seed', 'nodes', 'item-shards', 'partitions', 'replicas', 'port'];
  const strings = ['run-dir', 'config', 'world', 'models', 'set', 'item-replicas'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const key = a.replace(/^--/, '');
    if (a === '--exit' || a === '--help') {
      values.set(key, 'true');
      continue;
    }
    if (!a.startsWith('--') || (!numeric.includes(key) && !strings.includes(key))) throw new TypeError(`unknown flag ${a} (try --help)`);
    const v = argv[++i];
    if (v === undefined) throw new TypeError(`${a} needs a value`);
    if (numeric.includes(key) && !/^\d+$/.test(v)) throw new TypeError(`${a} must be a non-negative integer, got ${v}`);
    if (key === 'item-replicas' && v !== 'all' && !/^\d+$/.test(v)) throw new TypeError(`${a} must be "all" or a positive integer, got ${v}`);
    if (key === 'set') set.push(v);
    else values.set(key, v);
  }
  return { values, set };
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function printReply(userId: number, r: RecommendReply): void {
  const ms = r.timings?.totalMs;
  say(`  user ${userId}: ${r.items.length} items, coverage ${r.coverage.toFixed(2)}, model ${r.modelVersion}${ms !== undefined ? `, ${ms.toFixed(1)} ms` : ''}${r.degraded.length ? `, degraded: ${r.degraded.join('; ')}` : ''}`);
  for (const it of r.items.slice(0, 5)) {
    say(`    video ${String(it.videoId).padStart(8)}  score ${it.score.toFixed(4)}  P(click) ${it.pClick.toFixed(3)}  E[watch] ${it.expectedWatchSeconds.toFixed(0).padStart(4)} s  ${it.source.toLowerCase()} (shard ${it.shard})`);
  }
  if (r.items.length > 5) say(`    … ${r.items.length - 5} more`);
}

async function firstUsers(worldDir: string, n: number): Promise<{ userId: number; country: string; device: string }[]> {
  const text = await readFile(path.join(worldDir, 'users.ndjson'), 'utf8');
  const out: { userId: number; country: string; device: string }[] = [];
  for (const line of text.slice(0, 64 * 1024).split('\n')) {
    if (out.length >= n) break;
    try {
      out.push(JSON.parse(line) as { userId: number; country: string; device: string });
    } catch {
      /* a partial last line in the slice */
    }
  }
  return out;
}

async function main(): Promise<number> {
  const { values, set } = parse(process.argv.slice(2));
  if (values.has('help')) {
    say((await readFile(new URL(import.meta.url), 'utf8')).split('\n').slice(1, 12).map((l) => l.replace(/^ \*\/?/, '')).join('\n'));
    return 0;
  }
  const num = (k: string) => (values.has(k) ? Number(values.get(k)) : undefined);
  const runDir = path.resolve(values.get('run-dir') ?? 'run/local');
  const t0 = Date.now();

  say('upnext local cluster');
  say(`[1/3] world and models`);
  let worldDir = values.get('world');
  let modelDir = values.get('models');
  // One without the other would be ignored and the default world generated (minutes): refuse instead.
  if ((worldDir === undefined) !== (modelDir === undefined)) throw new TypeError('--world and --models go together (--world data/worlds/<w> --models models/<version>)');
  if (!worldDir || !modelDir) {
    const assets = await ensureLocalAssets({
      videos: num('items') ?? DEFAULT_LOCAL_WORLD.videos,
      users: num('users') ?? DEFAULT_LOCAL_WORLD.users,
      days: num('days') ?? DEFAULT_LOCAL_WORLD.days,
      seed: num('seed') ?? DEFAULT_LOCAL_WORLD.seed,
      progress: true,
      log: (l) => say(`  ${l}`),
    });
    worldDir = assets.worldDir;
    modelDir = assets.modelDir;
  }
  const tAssets = Date.now();
  say(`      done in ${secs(tAssets - t0)}`);

  let input: UpnextConfigInput = values.has('config') ? await readConfigFile(values.get('config')!) : {};
  input = applyOverrides(input, set);
  say(`[2/3] nats-server and nodes (logs in ${path.join(runDir, 'logs')})`);
  const cluster = await startLocalCluster({
    runDir,
    worldDir,
    modelDir,
    config: input,
    ...(num('nodes') !== undefined ? { nodes: num('nodes')! } : {}),
    ...(num('item-shards') !== undefined ? { itemShards: num('item-shards')! } : {}),
    ...(num('partitions') !== undefined ? { userPartitions: num('partitions')! } : {}),
    ...(num('replicas') !== undefined ? { replicas: num('replicas')! } : {}),
    ...(values.has('item-replicas') ? { itemReplicas: values.get('item-replicas') === 'all' ? 'all' : Number(values.get('item-replicas')) } : {}),
    ...(num('port') !== undefined ? { grpcPort: num('port')! } : {}),
    onNodeLog: (node, line) => {
      try {
        const e = JSON.parse(line) as { event?: string; actor?: string; ms?: number; message?: string };
        if (e.event === 'actor_started') say(`  ${node}: ${e.actor} up in ${secs(e.ms ?? 0)}`);
        else if (e.event === 'start_failed' || e.event === 'fatal' || e.event === 'reconcile_failed') say(`  ${node}: ${e.event}: ${e.message}`);
      } catch {
        /* not a log line */
      }
    },
  });
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= cluster.stop());
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
  const tCluster = Date.now();
  for (const n of cluster.nodes) say(`  ${n.name} pid ${n.pid} ready in ${secs(n.readyMs)}: ${n.actors.join(' ')}  metrics ${tlsEnabled(cluster.config.tls) ? 'https' : 'http'}://${n.metricsAddress}/metrics`);
  const creds = cluster.natsCredentials;
  say(`  nats ${cluster.natsUrl} (pid ${cluster.natsPid}); shard map: node dist/shardmap/cli.js show --nats ${cluster.natsUrl} --cluster ${cluster.cluster}${creds !== undefined ? ` --creds ${creds.creds.reader}` : ''}`);
  if (creds !== undefined) say(`  NATS credentials in ${creds.dir}: shardmap writes need --creds ${creds.creds.admin}; skew and train-logged read with --creds ${creds.creds.reader}`);
  say(`      done in ${secs(tCluster - tAssets)}`);

  say(`[3/3] recommendations from ${cluster.grpcAddress} (upnext.v1.Recommender/Recommend)`);
  const client = connectRecommender(cluster.grpcAddress, { tls: cluster.config.tls });
  try {
    const users = await firstUsers(worldDir, 40);
    const ask = (u: { userId: number; country: string; device: string }) =>
      client.recommend({ userId: u.userId, k: 10, surface: 'home', debug: true, context: { device: u.device, country: u.country, localHour: 20 } });
    const first = await ask(users[0] ?? { userId: 1, country: 'US', device: 'web' });
    say(`  time to first recommendation: ${secs(Date.now() - t0)} since launch, ${((Date.now() - tCluster) / 1000).toFixed(2)} s after the cluster was up${first.degraded.length ? ' (degraded: cold caches)' : ''}`);
    // The first calls to each partition and shard pay one-time costs (JIT, ONNX session warm-up,
    // connections); a short warm-up makes the answers shown below representative.
    const tw = Date.now();
    for (let round = 0; round < 2; round++) await Promise.all(users.map((u) => ask(u).catch(() => undefined)));
    say(`  warm-up: ${users.length * 2} calls in ${secs(Date.now() - tw)}`);
    for (const u of [...users.slice(0, 3), { userId: 999_999_999_999, country: 'BR', device: 'android' }]) {
      const r = await ask(u);
      printReply(u.userId, r);
    }
  } finally {
    client.close();
  }
  say('');
  say(`serving on ${cluster.grpcAddress} (health + reflection on: grpcurl -plaintext ${cluster.grpcAddress} list)`);
  say('docs: README.md, docs/operations.md (start/stop, shard map, metrics), docs/protocol.md (RPCs, subjects, KV)');
  if (values.has('exit')) {
    await stop();
    say('stopped');
    return 0;
  }
  say('Ctrl-C stops the cluster');
  return new Promise<number>(() => {});
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`upnext: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
