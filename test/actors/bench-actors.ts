/**
 * Measurements behind the actors' design choices (not part of `make test`):
 *   node dist/test/actors/bench-actors.js [videos] [users]
 * - item shard: cold build (world read + item tower + index) vs snapshot restore; search latency
 *   in-process, in the worker, and over NATS (1 in flight);
 * - user state: user-tower run cost (what inline blocks the main loop for), worker hop vs inline
 *   over NATS, cache hit vs miss.
 * Uses an untrained model with the default feature spec and tower sizes (run costs like the real
 * model's) and a synthetic world from fixtures.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../../cluster/nats/server.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/index.js';
import { newUserProfile } from '../../core/features/user.js';
import { userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import { ItemTower } from '../../actors/item-shard/item-tower.js';
import { openItemShard } from '../../actors/item-shard/bootstrap.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import { UserTower } from '../../actors/user-state/user-tower.js';
import { writeTinyModel, writeTinyWorld } from './fixtures.js';

const numVideos = Number(process.argv[2] ?? 100_000);
const numUsers = Number(process.argv[3] ?? 10_000);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
}
const fmt = (x: number) => x.toFixed(3);

const root = await mkdtemp(path.join(tmpdir(), 'upnext-bench-actors-'));
try {
  let t = performance.now();
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos, numUsers, days: 3 });
  console.log(`world: ${numVideos} videos, ${numUsers} users, ${world.events.length} events written in ${(performance.now() - t).toFixed(0)} ms`);
  const modelDir = await writeTinyModel(path.join(root, 'model'), 'bench-v1', 3, DEFAULT_FEATURE_SPEC, { embDim: 32, hidden: [128] });
  const snapshotDir = path.join(root, 'snap');

  // Item shard in-process: build, then restore.
  const tower = await ItemTower.load(modelDir);
  const common = { worldDir: world.dir, shard: 0, shardCount: 1, tower, snapshotDir, index: {}, towerBatchRows: 4096 };
  const built = await openItemShard(common);
  console.log(`item shard build (${built.index.size} items, ${built.index.factory}): ${JSON.stringify(built.timings, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}`);
  const restored = await openItemShard(common);
  console.log(`item shard restore: ${restored.timings.restoreMs.toFixed(0)} ms (restored=${restored.restored}); memory estimate ${(restored.index.memoryBytes() / 1e6).toFixed(1)} MB`);
  const queries = await tower.encode(world.videos.slice(0, 200));
  const dim = tower.dim;
  for (const k of [100, 500]) {
    const ms: number[] = [];
    for (let q = 0; q < 200; q++) {
      const t0 = performance.now();
      built.index.search(queries.subarray(q * dim, (q + 1) * dim), k);
      ms.push(performance.now() - t0);
    }
    console.log(`in-process search k=${k}: p50 ${fmt(pct(ms, 0.5))} ms p99 ${fmt(pct(ms, 0.99))} ms`);
  }
  const oneItem = [world.videos[0]!];
  t = performance.now();
  for (let i = 0; i < 200; i++) await tower.encode(oneItem);
  console.log(`item tower, 1 item (cold-start upsert cost): ${fmt((performance.now() - t) / 200)} ms`);
  await tower.close();

  const nats = await startNatsServer({ dataDir: path.join(root, 'nats') });
  const nc = await connect({ servers: nats.url });
  try {
    const shard = await startItemShard({ nc, cluster: 'bench', shard: 0, shardCount: 1, worldDir: world.dir, modelDir, snapshotDir });
    for (const k of [100, 500]) {
      const ms: number[] = [];
      for (let q = 0; q < 400; q++) {
        const req = Codecs.shardSearchRequest.encode({ userVector: queries.subarray((q % 200) * dim, ((q % 200) + 1) * dim), k, excludeVideoIds: [], deadlineMs: Date.now() + 1000 });
        const t0 = performance.now();
        await nc.request(Subjects.itemSearch('bench', 0), req, { timeout: 2000 });
        ms.push(performance.now() - t0);
      }
      console.log(`NATS search k=${k}, 1 in flight: p50 ${fmt(pct(ms, 0.5))} ms p99 ${fmt(pct(ms, 0.99))} ms (in-worker p50 ${fmt(shard.stats().searchP50Ms ?? NaN)} ms)`);
    }
    const inflight = 32;
    const total = 4000;
    let sent = 0;
    t = performance.now();
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        while (sent < total) {
          const q = sent++ % 200;
          const req = Codecs.shardSearchRequest.encode({ userVector: queries.subarray(q * dim, (q + 1) * dim), k: 100, excludeVideoIds: [], deadlineMs: Date.now() + 5000 });
          await nc.request(Subjects.itemSearch('bench', 0), req, { timeout: 5000 });
        }
      }),
    );
    console.log(`NATS search k=100, ${inflight} in flight: ${(total / ((performance.now() - t) / 1000)).toFixed(0)} searches/s (one shard worker)`);
    await shard.stop();

    // User tower cost (inline blocks the main loop this long on a cache miss).
    const ut = await UserTower.load(modelDir);
    const profile = newUserProfile(1, DEFAULT_FEATURE_SPEC);
    profile.recentVideoIds.push(...Array.from({ length: 20 }, (_, i) => i + 1));
    const ctx = { device: 'ios', country: 'BR', localHour: 20 };
    for (let i = 0; i < 50; i++) await ut.embed([profile], [ctx]);
    t = performance.now();
    for (let i = 0; i < 500; i++) await ut.embed([profile], [ctx]);
    console.log(`user tower batch 1: ${fmt((performance.now() - t) / 500)} ms per run (incl. setImmediate)`);
    await ut.close();

    for (const thread of ['inline', 'worker'] as const) {
      const cluster = `bench-${thread}`;
      const p = await startUserPartition({ nc, cluster, partition: 0, partitionCount: 1, worldDir: world.dir, modelDir, thread, embeddingCacheSize: 1_000_000 });
      const users = Array.from({ length: 400 }, (_, i) => i + 1).filter((u) => userPartitionOf(u, 1) === 0);
      const run = async (label: string) => {
        const ms: number[] = [];
        for (const u of users) {
          const req = Codecs.userStateRequest.encode({ userId: u, context: ctx, deadlineMs: Date.now() + 1000 });
          const t0 = performance.now();
          await nc.request(Subjects.userGet(cluster, 0), req, { timeout: 2000 });
          ms.push(performance.now() - t0);
        }
        console.log(`user get ${thread} ${label}: p50 ${fmt(pct(ms, 0.5))} ms p99 ${fmt(pct(ms, 0.99))} ms`);
      };
      await run('cache miss');
      await run('cache hit');
      console.log(`user partition ${thread}: replay ${p.info.replayMs.toFixed(0)} ms for ${p.info.users} users / ${p.info.replayedEvents} events; memory estimate ${(p.stats().memoryBytes / 1e6).toFixed(1)} MB`);
      await p.stop();
    }
  } finally {
    await nc.close();
    await nats.stop();
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
