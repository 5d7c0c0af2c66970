/**
 * Events reach user state through the stream: LogEvents' publisher (actors/coordinator/events.ts)
 * appends to the cluster's JetStream stream; the partition's feed (actors/event-stream/feed.ts)
 * applies them in order, once, and replays them after a restart or a crash of its worker. Real
 * nats-server, real ONNX Runtime.
 */
import t from 'tap';
import path from 'node:path';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { UserStateReplyMsg } from '../../protos/codec.js';
import { EventPublisher } from '../../actors/coordinator/events.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import { sharedUserStateHost } from '../../actors/user-state/worker-host.js';
import { writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const P = 2;
const PART = 1;

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, limitMs = 5000): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('LogEvents → stream → partition: applied once, in order, replayed after a restart', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-user-events');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 200, numUsers: 30, days: 2 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const cluster = `ev${process.pid}`;
  const base = { nc, cluster, partition: PART, partitionCount: P, worldDir: world.dir, modelDir, snapshotDir: path.join(root, 'snap') };
  let user = 1;
  while (userPartitionOf(user, P) !== PART) user++;
  let otherUser = 1;
  while (userPartitionOf(otherUser, P) === PART) otherUser++;
  const ask = async (): Promise<UserStateReplyMsg> => {
    const m = await nc.request(Subjects.userGet(cluster, PART), Codecs.userStateRequest.encode({ userId: user, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 5000 }), { timeout: 3000 });
    return Codecs.userStateReply.decode(m.data);
  };

  const first = await startUserPartition(base);
  const before = await ask();
  const publisher = await EventPublisher.create(nc, cluster, P, 3000);
  const click = (eventId: string, videoId: number, userId = user): InteractionEvent => ({
    eventId, userId, videoId, type: EventType.CLICK, tsMs: Date.now(), position: 0, watchSeconds: 0,
    context: { device: 'ios', country: 'BR', localHour: 20 }, surface: 'home', requestId: 'r',
  });
  t.same(await publisher.publish([click('e1', 777), click('e2', 778), click('x1', 779, otherUser)]), { accepted: 3, duplicates: 0 });
  const after = await until('clicks applied', ask, (r) => r.recentVideoIds.includes(778));
  t.same(after.recentVideoIds.slice(-2), [777, 778], 'both clicks applied, in stream order');
  t.equal(after.clicks, before.clicks + 2, 'the other partition’s event is not on this subject');
  t.notSame(after.embedding, before.embedding, 'a fresh embedding follows the new watches');

  t.same(await publisher.publish([click('e1', 777)]), { accepted: 0, duplicates: 1 }, 'a retried event id is stored once');
  t.same(await publisher.publish([click('e3', 779)]), { accepted: 1, duplicates: 0 });
  const later = await until('third click', ask, (r) => r.recentVideoIds.includes(779));
  t.equal(later.clicks, before.clicks + 3, 'the duplicate was not applied again');
  const feed = first.stats().eventFeed;
  t.ok(feed !== undefined && feed.applied === 3 && feed.undecodable === 0 && feed.applyFailures === 0, `feed counters ${JSON.stringify(feed)}`);
  t.equal(later.appliedSeq, feed?.lastSeq, 'the partition reports the last stream sequence applied');
  await first.stop();

  // Restart: the snapshot (written at the first build, appliedSeq 0) is restored and the stream
  // replayed from its sequence, so the clicks are there again, each once.
  const second = await startUserPartition(base);
  t.teardown(() => second.stop());
  t.equal(second.info.snapshot, 'restored');
  const replayed = await until('replay', ask, (r) => r.recentVideoIds.includes(779));
  t.equal(replayed.clicks, before.clicks + 3, 'replayed once after the restart');
  t.same(replayed.recentVideoIds.slice(-3), [777, 778, 779]);

  // The worker dies: the partition reopens from its snapshot and replays the stream again, so the
  // clicks before the crash and one logged while it was down are all there, each once.
  sharedUserStateHost().crashForTest();
  t.same(await publisher.publish([click('e4', 780)]), { accepted: 1, duplicates: 0 }, 'LogEvents keeps accepting while the partition is down');
  const recovered = await until('reopen and replay', ask, (r) => !r.status?.code && r.recentVideoIds.includes(780), 20_000);
  t.same(recovered.recentVideoIds.slice(-4), [777, 778, 779, 780], 'no event lost across the worker crash');
  t.equal(recovered.clicks, before.clicks + 4, 'and none applied twice');
  t.equal(second.stats().restarts, 1);

  const off = await startUserPartition({ ...base, cluster: `${cluster}off`, eventFeed: false });
  t.teardown(() => off.stop());
  t.equal(off.stats().eventFeed, undefined, 'eventFeed false: no feed');
});
