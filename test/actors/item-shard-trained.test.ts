/**
 * Item shards and a user partition on the lead's tiny world with its *trained* models
 * (test/fixtures/assets.ts): the retrieval chain the coordinator runs — user state → embedding →
 * scatter to every item shard → merge — over a real nats-server.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../../cluster/nats/server.js';
import { itemShardOf, userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { readUsers, readVideos } from '../../offline/world/reader.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import type { ItemShardHandle } from '../../actors/item-shard/item-shard.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import { ensureTinyAssets } from '../fixtures/assets.js';

const S = 2;
const P = 4;

t.test('user embedding from user-state retrieves from every item shard (trained tiny models)', async (t) => {
  const assets = await ensureTinyAssets();
  const root = await mkdtemp(path.join(tmpdir(), 'upnext-trained-'));
  const nats = await startNatsServer({ dataDir: path.join(root, 'nats') });
  const nc = await connect({ servers: nats.url });
  const shards: ItemShardHandle[] = [];
  t.teardown(async () => {
    for (const s of shards) await s.stop();
    await nc.close();
    await nats.stop();
    await rm(root, { recursive: true, force: true });
  });
  const cluster = `tr${process.pid}`;
  for (let s = 0; s < S; s++) {
    shards.push(await startItemShard({ nc, cluster, shard: s, shardCount: S, worldDir: assets.worldDir, modelDir: assets.modelDir, snapshotDir: path.join(root, 'snap') }));
  }
  const videos = new Set<number>();
  for await (const v of readVideos(assets.worldDir)) videos.add(v.videoId);
  t.equal(shards.reduce((n, s) => n + s.info.items, 0), videos.size, 'the shards partition the catalogue');

  let userId = -1;
  for await (const u of readUsers(assets.worldDir)) {
    userId = u.userId;
    break;
  }
  const p = userPartitionOf(userId, P);
  const partition = await startUserPartition({ nc, cluster, partition: p, partitionCount: P, worldDir: assets.worldDir, modelDir: assets.modelDir });
  t.teardown(() => partition.stop());
  const state = Codecs.userStateReply.decode(
    (await nc.request(Subjects.userGet(cluster, p), Codecs.userStateRequest.encode({ userId, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 5000 }), { timeout: 5000 })).data,
  );
  t.equal(state.embedding.length, assets.manifest.featureSpec.embeddingDim);
  const k = 100;
  const replies = await Promise.all(
    Array.from({ length: S }, async (_, s) =>
      Codecs.shardSearchReply.decode(
        (await nc.request(Subjects.itemSearch(cluster, s), Codecs.shardSearchRequest.encode({ userVector: state.embedding, k, excludeVideoIds: state.recentVideoIds, deadlineMs: Date.now() + 5000 }), { timeout: 5000 })).data,
      ),
    ),
  );
  const merged: { id: number; score: number }[] = [];
  replies.forEach((r, s) => {
    t.notOk(r.status && r.status.code !== 0, `shard ${s} answered`);
    const c = r.candidates;
    t.equal(c?.videoIds.length, k, `shard ${s} returned k`);
    t.ok(c?.videoIds.every((id) => itemShardOf(id, S) === s && videos.has(id)), `shard ${s}: own, known videos`);
    c?.videoIds.forEach((id, i) => merged.push({ id, score: c.scores[i] ?? 0 }));
  });
  const watched = new Set(state.recentVideoIds);
  t.notOk(merged.some((m) => watched.has(m.id)), 'already-watched videos excluded');
  t.ok(merged.every((m) => m.score <= 1 + 1e-4 && m.score >= -1 - 1e-4), 'scores are cosines');
  t.equal(new Set(merged.map((m) => m.id)).size, merged.length, 'no video from two shards');
});
