/**
 * The item-shard actor end to end: real nats-server, real worker thread, real faiss, real ONNX
 * Runtime (tiny untrained item tower from test/actors/fixtures.ts).
 */
import t from 'tap';
import path from 'node:path';
import { itemShardOf } from '../../core/hash.js';
import { StatusCode } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { ShardSearchReplyMsg, ShardSearchRequestMsg } from '../../protos/codec.js';
import { startItemShard, resolveItemShardOptions } from '../../actors/item-shard/item-shard.js';
import { ItemTower } from '../../actors/item-shard/item-tower.js';
import { TINY_SPEC, writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const SHARDS = 2;
const SHARD = 1;

t.test('item shard over NATS: search, exclusions, cold-start upsert, remove, errors, deadlines, snapshot', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-item-nats');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 400 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const cluster = `it${process.pid}`;
  const base = { nc, cluster, shard: SHARD, shardCount: SHARDS, worldDir: world.dir, modelDir, snapshotDir: path.join(root, 'snap') };
  const shard = await startItemShard(base);
  const own = world.videos.filter((v) => itemShardOf(v.videoId, SHARDS) === SHARD);
  t.equal(shard.info.items, own.length, 'holds exactly its shard of the world');
  t.equal(shard.info.restored, false, 'first start builds');
  t.equal(shard.info.dim, TINY_SPEC.embeddingDim);

  const tower = await ItemTower.load(modelDir);
  t.teardown(() => tower.close());
  const ask = async (req: Partial<ShardSearchRequestMsg>, timeout = 3000): Promise<ShardSearchReplyMsg> => {
    const full: ShardSearchRequestMsg = { userVector: [], k: 10, excludeVideoIds: [], deadlineMs: Date.now() + 5000, ...req };
    const msg = await nc.request(Subjects.itemSearch(cluster, SHARD), Codecs.shardSearchRequest.encode(full), { timeout });
    return Codecs.shardSearchReply.decode(msg.data);
  };
  const target = own[5];
  if (target === undefined) throw new Error('tiny world too small');
  const targetVec = Array.from(await tower.encode([target]));

  const r = await ask({ userVector: targetVec, k: 20 });
  t.notOk(r.status && r.status.code !== 0, 'no error status');
  const c = r.candidates;
  if (!c) throw new Error('no candidates');
  t.equal(c.videoIds.length, 20);
  t.equal(c.videoIds[0], target.videoId, 'the item whose vector is the query ranks first');
  t.equal(new Set(c.videoIds).size, 20, 'distinct');
  t.ok(c.videoIds.every((id) => itemShardOf(id, SHARDS) === SHARD), 'only this shard’s items');
  for (let i = 1; i < c.scores.length; i++) t.ok((c.scores[i - 1] ?? 0) >= (c.scores[i] ?? 0) - 1e-6, `sorted ${i}`);
  const targetEvents = world.events.filter((e) => e.videoId === target.videoId && e.type === 1).length;
  t.equal(c.impressions[0], targetEvents, 'counters replayed from the world’s events');
  t.equal(c.creatorIds[0], target.creatorId);
  t.equal(r.shardSize, own.length);
  t.equal(r.shard, SHARD);

  // The in-process path (a coordinator on the same node) answers the same bytes with the same reply.
  const localReq = Codecs.shardSearchRequest.encode({ userVector: targetVec, k: 20, excludeVideoIds: [], deadlineMs: Date.now() + 5000 });
  const viaLocal = Codecs.shardSearchReply.decode(await shard.local.search(localReq));
  t.same(viaLocal.candidates, c, 'local search = NATS search');
  t.equal(shard.local.shard, SHARD);
  t.ok(localReq.byteLength > 0 && localReq.buffer.byteLength > 0, 'the request bytes are copied, not detached');
  const localBad = Codecs.shardSearchReply.decode(await shard.local.search(Codecs.shardSearchRequest.encode({ userVector: [1, 2], k: 5, excludeVideoIds: [], deadlineMs: Date.now() + 5000 })));
  t.equal(localBad.status?.code, StatusCode.INVALID_ARGUMENT, 'a bad request is an answer with a status, as over NATS');
  await t.rejects(
    shard.local.search(Codecs.shardSearchRequest.encode({ userVector: targetVec, k: 5, excludeVideoIds: [], deadlineMs: Date.now() - 1 })),
    { code: StatusCode.DEADLINE_EXCEEDED },
    'a local request past its deadline is rejected (NATS would stay silent)',
  );

  const excl = await ask({ userVector: targetVec, k: 20, excludeVideoIds: c.videoIds.slice(0, 5) });
  t.equal(excl.candidates?.videoIds.length, 20);
  t.notOk(excl.candidates?.videoIds.some((id) => c.videoIds.slice(0, 5).includes(id)), 'excluded ids absent');

  // Cold start: a new video of this shard is findable as soon as the admin reply arrives.
  let newId = 900_001;
  while (itemShardOf(newId, SHARDS) !== SHARD) newId++;
  const meta = { videoId: newId, creatorId: 4242, category: 7, durationS: 33, uploadTsMs: Date.now() };
  const adminSubject = Subjects.itemAdmin(cluster, SHARD);
  const up = Codecs.itemAdminReply.decode((await nc.request(adminSubject, Codecs.itemAdminRequest.encode({ upserts: [meta], removeVideoIds: [] }), { timeout: 3000 })).data);
  t.equal(up.upserted, 1);
  t.equal(up.shardSize, own.length + 1);
  const newVec = Array.from(await tower.encode([meta]));
  const found = await ask({ userVector: newVec, k: 3 });
  t.equal(found.candidates?.videoIds[0], newId, 'new item found at once');
  t.equal(found.candidates?.creatorIds[0], 4242);

  const rm1 = Codecs.itemAdminReply.decode((await nc.request(adminSubject, Codecs.itemAdminRequest.encode({ upserts: [], removeVideoIds: [newId, target.videoId] }), { timeout: 3000 })).data);
  t.equal(rm1.removed, 2);
  const gone = await ask({ userVector: newVec, k: 400 });
  t.notOk(gone.candidates?.videoIds.includes(newId), 'removed item gone');
  t.notOk(gone.candidates?.videoIds.includes(target.videoId), 'removed world item gone');

  let wrongShard = 900_001;
  while (itemShardOf(wrongShard, SHARDS) === SHARD) wrongShard++;
  const bad = Codecs.itemAdminReply.decode((await nc.request(adminSubject, Codecs.itemAdminRequest.encode({ upserts: [{ ...meta, videoId: wrongShard }], removeVideoIds: [] }), { timeout: 3000 })).data);
  t.equal(bad.status?.code, StatusCode.INVALID_ARGUMENT);
  t.equal(bad.status?.details, 'upserts.video_id', 'names the field');

  const wrongLen = await ask({ userVector: [1, 2, 3], k: 5 });
  t.equal(wrongLen.status?.code, StatusCode.INVALID_ARGUMENT);
  t.equal(wrongLen.status?.details, 'user_vector');
  const badK = await ask({ userVector: targetVec, k: 5000 });
  t.equal(badK.status?.code, StatusCode.INVALID_ARGUMENT);
  t.equal(badK.status?.details, 'k');

  // A request past its deadline gets no reply at all.
  await t.rejects(ask({ userVector: targetVec, k: 5, deadlineMs: Date.now() - 1 }, 500), 'no reply after the deadline');
  const afterDrop = await ask({ userVector: newVec, k: 1 });
  t.equal(afterDrop.candidates?.videoIds.length, 1, 'shard still serves after a drop');
  const stats = shard.stats();
  t.equal(stats.dropped, 2, 'one NATS and one local request dropped past their deadline');
  t.equal(stats.items, own.length - 1);
  t.ok(stats.searches >= 6, 'searches counted');
  t.ok((stats.searchP50Ms ?? -1) >= 0, 'p50 reported');
  t.ok(stats.memoryBytes > 0);

  // Snapshot after the admin changes, restart, identical answers.
  const before = await ask({ userVector: newVec, k: 50 });
  await shard.snapshot();
  await shard.stop();
  await shard.stop(); // idempotent
  await t.rejects(shard.local.search(localReq), { code: StatusCode.UNAVAILABLE }, 'local search after stop: UNAVAILABLE');
  const restarted = await startItemShard(base);
  t.teardown(() => restarted.stop());
  t.equal(restarted.info.restored, true, 'second start restores the snapshot');
  t.comment(`startup: build ${JSON.stringify(shard.info.timings)} restore ${JSON.stringify(restarted.info.timings)}`);
  const afterRestore = await ask({ userVector: newVec, k: 50 });
  t.same(afterRestore.candidates, before.candidates, 'identical search results after restore');
  t.equal(afterRestore.shardSize, own.length - 1);

  // The worker dies: the shard leaves the queue group, then reopens from its snapshot and serves again.
  restarted.crashForTest();
  const end = Date.now() + 20_000;
  let recovered: ShardSearchReplyMsg | undefined;
  while (recovered === undefined && Date.now() < end) {
    recovered = await ask({ userVector: newVec, k: 50 }, 500).catch(() => undefined);
    if (recovered === undefined || restarted.stats().restarts === 0) {
      recovered = undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  t.same(recovered?.candidates, before.candidates, 'the reopened shard answers as before the crash');
  t.equal(restarted.stats().restarts, 1, 'reopened once');
  t.same(Codecs.shardSearchReply.decode(await restarted.local.search(Codecs.shardSearchRequest.encode({ userVector: newVec, k: 50, excludeVideoIds: [], deadlineMs: Date.now() + 5000 }))).candidates, before.candidates, 'and its local path too');
});

t.test('options are validated with a TypeError naming the option', async (t) => {
  const ok = { cluster: 'c1', shard: 0, shardCount: 2, worldDir: '/w', modelDir: '/m' };
  t.equal(resolveItemShardOptions(ok).maxInFlight, 256, 'default maxInFlight');
  t.throws(() => resolveItemShardOptions({ ...ok, shard: 2 }), { name: 'TypeError', message: /option shard/ });
  t.throws(() => resolveItemShardOptions({ ...ok, shardCount: 0 }), { name: 'TypeError', message: /option shardCount/ });
  t.throws(() => resolveItemShardOptions({ ...ok, cluster: 'a.b' }), { name: 'TypeError', message: /option cluster/ });
  t.throws(() => resolveItemShardOptions({ ...ok, worldDir: '' }), { name: 'TypeError', message: /option worldDir/ });
  t.throws(() => resolveItemShardOptions({ ...ok, maxInFlight: 0 }), { name: 'TypeError', message: /option maxInFlight/ });
  t.throws(() => resolveItemShardOptions({ ...ok, index: { nprobe: -3 } }), { name: 'TypeError', message: /index\.nprobe/ });
});
