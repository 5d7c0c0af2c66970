/**
 * The user-state actor: real nats-server, real ONNX Runtime (tiny untrained user tower), every
 * thread mode, plus the in-process partition (event application, seq de-duplication, cache).
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { userPartitionOf } from '../../core/hash.js';
import { StatusCode } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { UserStateReplyMsg, UserStateRequestMsg } from '../../protos/codec.js';
import { UserStatePartition } from '../../actors/user-state/partition.js';
import { resolveUserPartitionOptions, startUserPartition } from '../../actors/user-state/user-state.js';
import { UserTower } from '../../actors/user-state/user-tower.js';
import { TINY_SPEC, writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const P = 2;
const PART = 0;
const NUM_VIDEOS = 300;
const DAYS = 3;

function expectedRecent(u: number): number[] {
  const out: number[] = [];
  for (let d = 0; d < DAYS; d++) for (let j = 0; j < 3; j++) out.push(((u * 7 + d * 3 + j) % NUM_VIDEOS) + 1);
  return out;
}

function norm(v: readonly number[]): number {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

t.test('user partition over NATS (shared, worker and inline)', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-user');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: NUM_VIDEOS, numUsers: 40, days: DAYS });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const known = [...Array(40).keys()].map((i) => i + 1).filter((u) => userPartitionOf(u, P) === PART);
  const knownUser = known[0] ?? 1;
  let unknownUser = 5000;
  while (userPartitionOf(unknownUser, P) !== PART) unknownUser++;
  let otherUser = 1;
  while (userPartitionOf(otherUser, P) === PART) otherUser++;

  for (const thread of ['shared', 'worker', 'inline'] as const) {
    await t.test(`thread=${thread}`, async (t) => {
      const cluster = `us${process.pid}${thread}`;
      const handle = await startUserPartition({ nc, cluster, partition: PART, partitionCount: P, worldDir: world.dir, modelDir, thread });
      t.teardown(() => handle.stop());
      t.equal(handle.info.users, known.length, 'replayed exactly this partition’s users');
      const ask = async (req: Partial<UserStateRequestMsg>, timeout = 3000): Promise<UserStateReplyMsg> => {
        const full: UserStateRequestMsg = { userId: knownUser, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 5000, ...req };
        const m = await nc.request(Subjects.userGet(cluster, PART), Codecs.userStateRequest.encode(full), { timeout });
        return Codecs.userStateReply.decode(m.data);
      };
      const r = await ask({});
      t.notOk(r.status && r.status.code !== 0, 'no error');
      t.equal(r.known, true);
      t.same(r.recentVideoIds, expectedRecent(knownUser), 'recent watches, oldest first, in order');
      t.same(r.recentCreatorIds, expectedRecent(knownUser).map((v) => 1000 + (v % 37)), 'creators of the recent watches');
      t.equal(r.impressions, DAYS * 3);
      t.equal(r.clicks, DAYS * 3);
      t.equal(r.watches, DAYS * 3);
      t.equal(r.embedding.length, TINY_SPEC.embeddingDim);
      t.ok(Math.abs(norm(r.embedding) - 1) < 1e-4, `embedding is L2-normalised (${norm(r.embedding)})`);
      t.ok(r.completeness > 0 && r.completeness <= 1);
      t.equal(r.categoryAffinity.length, TINY_SPEC.numCategories);
      t.equal(r.partition, PART);

      // The in-process path answers the same request bytes with the same reply.
      const localReply = Codecs.userStateReply.decode(
        await handle.local.get(Codecs.userStateRequest.encode({ userId: knownUser, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 5000 })),
      );
      t.same(localReply, r, 'local get = NATS get');
      t.equal(handle.local.partition, PART);
      t.equal(handle.local.inFlight(), 0, 'nothing in flight once answered');

      const other = await ask({ context: { device: 'web', country: 'US', localHour: 3 } });
      t.notSame(other.embedding, r.embedding, 'the embedding depends on the context');
      const again = await ask({});
      t.same(again.embedding, r.embedding, 'same context, same embedding (cached)');

      const u = await ask({ userId: unknownUser });
      t.notOk(u.status && u.status.code !== 0, 'unknown user is not an error');
      t.equal(u.known, false);
      t.same(u.recentVideoIds, []);
      t.equal(u.embedding.length, TINY_SPEC.embeddingDim, 'new-user embedding of the right width');
      t.ok(Math.abs(norm(u.embedding) - 1) < 1e-4, 'new-user embedding is L2-normalised');
      t.equal(u.completeness, 0);

      const wrong = await ask({ userId: otherUser });
      t.equal(wrong.status?.code, StatusCode.INVALID_ARGUMENT, 'another partition’s user is misrouted');
      t.equal(wrong.status?.details, 'user_id');

      await t.rejects(ask({ deadlineMs: Date.now() - 1 }, 500), 'past deadline: no reply');
      await t.rejects(
        handle.local.get(Codecs.userStateRequest.encode({ userId: knownUser, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() - 1 })),
        { code: StatusCode.DEADLINE_EXCEEDED },
        'local request past its deadline: rejected',
      );

      // A click applied through the handle shows in the next reply, with a fresh embedding.
      const click: InteractionEvent = {
        eventId: 'live-1', userId: knownUser, videoId: 42, type: EventType.CLICK, tsMs: Date.now(), position: 0,
        watchSeconds: 0, context: { device: 'ios', country: 'BR', localHour: 20 }, surface: 'home', requestId: 'r1',
      };
      const res = await handle.applyEvents([{ seq: 10, event: click }, { seq: 10, event: click }, { seq: 11, event: { ...click, userId: otherUser } }]);
      t.same(res, { applied: 1, skipped: 2, appliedSeq: 11 }, 'duplicate seq and foreign user skipped');
      const after = await ask({});
      t.same(after.recentVideoIds, [...expectedRecent(knownUser), 42], 'the click is the newest watch');
      t.equal(after.clicks, DAYS * 3 + 1);
      t.equal(after.appliedSeq, 11);
      t.notSame(after.embedding, r.embedding, 'profile change invalidated the cached embedding');
      const st = handle.stats();
      t.equal(st.dropped, 2, 'one NATS and one local request dropped');
      t.equal(st.thread, thread);
      t.ok(st.cacheHits >= 1 && st.cacheMisses >= 3, `cache counted (hits ${st.cacheHits}, misses ${st.cacheMisses})`);
      t.equal(st.unknownUsers, 1);
      await handle.stop();
      await handle.stop();
      await t.rejects(handle.applyEvents([]), { code: StatusCode.UNAVAILABLE }, 'stopped');
      await t.rejects(handle.local.get(Codecs.userStateRequest.encode({ userId: knownUser, context: null, deadlineMs: Date.now() + 5000 })), { code: StatusCode.UNAVAILABLE }, 'local get after stop');
    });
  }
});

t.test('partition replays events of unknown videos: counters move, no affinity', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'upnext-user-p-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const tower = await UserTower.load(await writeTinyModel(path.join(root, 'model')));
  t.teardown(() => tower.close());
  const p = new UserStatePartition({ partition: 0, partitionCount: 1, embedder: tower, embeddingCacheSize: 10 });
  const ev = (seq: number, videoId: number, type: EventType): { seq: number; event: InteractionEvent } => ({
    seq,
    event: { eventId: `e${seq}`, userId: 7, videoId, type, tsMs: seq, position: 0, watchSeconds: type === EventType.WATCH ? 30 : 0, context: { device: 'tv', country: 'DE', localHour: 9 }, surface: 'home', requestId: '' },
  });
  p.setItemInfo(1, { category: 4, creatorId: 99 });
  p.applyEvents([ev(1, 1, EventType.CLICK), ev(2, 2, EventType.WATCH), ev(3, 1, EventType.WATCH)]);
  const prof = p.profile(7);
  t.same(prof?.recentVideoIds, [2, 1], 'a repeat moves the video to the end');
  t.same(prof?.recentCreatorIds, [-1, 99], 'unknown video has creator -1');
  t.ok((prof?.categoryAffinity[4] ?? 0) > 1.9, 'known category gains affinity twice');
  t.equal(p.appliedSeq, 3);
  t.same(p.applyEvents([ev(2, 5, EventType.CLICK)]), { applied: 0, skipped: 1, appliedSeq: 3 }, 'old seq never applied twice');
  await t.rejects(p.get({ userId: -1, context: null, deadlineMs: 0 }), { code: StatusCode.INVALID_ARGUMENT, details: 'user_id' });
});

t.test('options are validated with a TypeError naming the option', async (t) => {
  const ok = { cluster: 'c', partition: 0, partitionCount: 4, modelDir: '/m' };
  t.equal(resolveUserPartitionOptions(ok).thread, 'shared', "default thread mode is 'shared'");
  for (const thread of ['shared', 'worker', 'inline'] as const) t.equal(resolveUserPartitionOptions({ ...ok, thread }).thread, thread);
  t.throws(() => resolveUserPartitionOptions({ ...ok, partition: 4 }), { name: 'TypeError', message: /option partition/ });
  t.throws(() => resolveUserPartitionOptions({ ...ok, partitionCount: 0 }), { name: 'TypeError', message: /option partitionCount/ });
  t.throws(() => resolveUserPartitionOptions({ ...ok, modelDir: '' }), { name: 'TypeError', message: /option modelDir/ });
  t.throws(() => resolveUserPartitionOptions({ ...ok, embeddingCacheSize: 0 }), { name: 'TypeError', message: /option embeddingCacheSize/ });
  t.throws(() => resolveUserPartitionOptions({ ...ok, thread: 'fork' as 'worker' }), { name: 'TypeError', message: /option thread/ });
});
