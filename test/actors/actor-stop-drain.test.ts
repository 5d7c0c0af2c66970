/**
 * A stopping actor answers what it already took (the drain step of a live move): requests sent
 * before stop() all get their reply, none is left to time out. Real nats-server, real workers.
 */
import t from 'tap';
import path from 'node:path';
import { itemShardOf, userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import { TINY_SPEC, writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const REQUESTS = 60;

/** Waits (polling each turn of the event loop, ≤ 2 s) until the actor holds requests; returns how many. */
async function firstInFlight(inFlight: () => number): Promise<number> {
  const end = Date.now() + 2000;
  while (inFlight() === 0 && Date.now() < end) await new Promise((r) => setImmediate(r));
  return inFlight();
}

t.test('user partition: requests sent before stop() are all answered', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-drain-user');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 100, numUsers: 40, days: 2 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const cluster = `dru${process.pid}`;
  const handle = await startUserPartition({ nc, cluster, partition: 0, partitionCount: 2, worldDir: world.dir, modelDir, eventFeed: false });
  let user = 1;
  while (userPartitionOf(user, 2) !== 0) user++;
  // Distinct contexts: every request misses the embedding cache, so several are in the worker at once.
  const pending = Array.from({ length: REQUESTS }, (_, i) =>
    nc.request(Subjects.userGet(cluster, 0), Codecs.userStateRequest.encode({ userId: user, context: { device: 'ios', country: 'BR', localHour: i % 24 }, deadlineMs: Date.now() + 10_000 }), { timeout: 5000 }),
  );
  const inFlightAtStop = await firstInFlight(() => handle.stats().inFlight);
  await handle.stop();
  const results = await Promise.allSettled(pending);
  t.ok(inFlightAtStop > 0, `requests were in flight when it stopped (${inFlightAtStop})`);
  t.equal(results.filter((r) => r.status === 'rejected').length, 0, 'none left unanswered');
  t.ok(results.every((r) => r.status === 'fulfilled' && !Codecs.userStateReply.decode(r.value.data).status?.code), 'all answered without error');
});

t.test('item shard: searches sent before stop() are all answered', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-drain-item');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 400 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const cluster = `dri${process.pid}`;
  const shard = await startItemShard({ nc, cluster, shard: 0, shardCount: 2, worldDir: world.dir, modelDir });
  t.ok(world.videos.some((v) => itemShardOf(v.videoId, 2) === 0));
  const vector = Array.from({ length: TINY_SPEC.embeddingDim }, (_, i) => (i === 0 ? 1 : 0));
  const pending = Array.from({ length: REQUESTS }, () =>
    nc.request(Subjects.itemSearch(cluster, 0), Codecs.shardSearchRequest.encode({ userVector: vector, k: 20, excludeVideoIds: [], deadlineMs: Date.now() + 10_000 }), { timeout: 5000 }),
  );
  const inFlightAtStop = await firstInFlight(() => shard.stats().inFlight);
  await shard.stop();
  const results = await Promise.allSettled(pending);
  t.ok(inFlightAtStop > 0, `searches were queued when it stopped (${inFlightAtStop})`);
  t.equal(results.filter((r) => r.status === 'rejected').length, 0, 'none left unanswered');
  t.ok(results.every((r) => r.status === 'fulfilled' && (Codecs.shardSearchReply.decode(r.value.data).candidates?.videoIds.length ?? 0) > 0), 'all answered with candidates');
});
