/**
 * thread 'shared': several user partitions of one process in ONE host worker (one user-tower
 * session). Real nats-server, real ONNX Runtime (tiny untrained tower). They answer exactly as
 * 'inline' partitions do, keep their state apart, stop one at a time without disturbing the others,
 * end the worker with the last, and fail INTERNAL together when the worker crashes.
 */
import t from 'tap';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { userPartitionOf } from '../../core/hash.js';
import { StatusCode } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { UserStateReplyMsg } from '../../protos/codec.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import type { UserPartitionHandle, UserStateThreadMode } from '../../actors/user-state/user-state.js';
import { sharedUserStateHost, userStateWorkerCounts } from '../../actors/user-state/worker-host.js';
import { writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const P = 3;
const NUM_USERS = 30;
const CONTEXTS = [
  { device: 'ios', country: 'BR', localHour: 20 },
  { device: 'web', country: 'US', localHour: 3 },
];

async function ask(nc: NatsConnection, cluster: string, userId: number, context = CONTEXTS[0]): Promise<UserStateReplyMsg> {
  const req = { userId, context, deadlineMs: Date.now() + 5000 };
  const m = await nc.request(Subjects.userGet(cluster, userPartitionOf(userId, P)), Codecs.userStateRequest.encode(req), { timeout: 5000 });
  return Codecs.userStateReply.decode(m.data);
}

/** Every user 1..NUM_USERS plus one unknown user per partition, in every context. */
const USERS = [...Array(NUM_USERS).keys()].map((i) => i + 1);
for (let p = 0; p < P; p++) {
  let u = 9000;
  while (userPartitionOf(u, P) !== p) u++;
  USERS.push(u);
}

async function answers(nc: NatsConnection, cluster: string, users: readonly number[] = USERS): Promise<UserStateReplyMsg[]> {
  const out: UserStateReplyMsg[] = [];
  for (const u of users) for (const c of CONTEXTS) out.push(await ask(nc, cluster, u, c));
  return out;
}

const usersOf = (p: number): number[] => USERS.filter((u) => userPartitionOf(u, P) === p);

t.test('shared user-state host', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-usershared');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 300, numUsers: NUM_USERS, days: 3 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  let cn = 0;
  const startAll = async (thread: UserStateThreadMode, partitions: readonly number[] = [0, 1, 2]) => {
    const cluster = `ush${process.pid}x${cn++}`;
    const handles = await Promise.all(partitions.map((partition) => startUserPartition({ nc, cluster, partition, partitionCount: P, worldDir: world.dir, modelDir, thread })));
    t.teardown(() => Promise.all(handles.map((h) => h.stop())));
    return { cluster, handles };
  };
  t.same(userStateWorkerCounts(), { sharedWorkers: 0, sharedPartitions: 0, dedicatedWorkers: 0 }, 'no host worker before the first partition');

  const inline = await startAll('inline');
  const expected = await answers(nc, inline.cluster);
  t.ok(expected.every((r) => !r.status || r.status.code === 0), 'inline answers without error');
  t.equal(userStateWorkerCounts().sharedWorkers, 0, 'inline partitions start no host worker');

  await t.test('three partitions share one worker and answer as inline ones do', async (t) => {
    const { cluster, handles } = await startAll('shared');
    t.same(userStateWorkerCounts(), { sharedWorkers: 1, sharedPartitions: 3, dedicatedWorkers: 0 }, 'one shared worker hosts all three');
    for (const [i, h] of handles.entries()) {
      t.equal(h.info.users, usersOf(i).filter((u) => u <= NUM_USERS).length, `partition ${i} replayed only its users`);
      t.equal(h.stats().thread, 'shared');
    }
    const got = await answers(nc, cluster);
    t.same(got, expected, 'same replies (profiles, counters, embeddings) as inline partitions');
    t.ok(got.some((r) => r.known) && got.some((r) => !r.known), 'known and unknown users asked');
    for (const [i, h] of handles.entries()) t.equal(h.stats().requests, usersOf(i).length * CONTEXTS.length, `partition ${i} counted only its requests`);

    await t.test('applyEvents on one partition changes only its users', async (t) => {
      const target = usersOf(0)[0] as number;
      const foreign = usersOf(1)[0] as number;
      const ev = (userId: number): InteractionEvent => ({
        eventId: `live-${userId}`, userId, videoId: 42, type: EventType.CLICK, tsMs: Date.now(), position: 0,
        watchSeconds: 0, context: CONTEXTS[0] as InteractionEvent['context'], surface: 'home', requestId: 'r',
      });
      const before = await answers(nc, cluster);
      const appliedBefore = handles.map((h) => h.stats().eventsApplied);
      const res = await (handles[0] as UserPartitionHandle).applyEvents([{ seq: 5, event: ev(target) }, { seq: 6, event: ev(foreign) }]);
      t.same(res, { applied: 1, skipped: 1, appliedSeq: 6 }, 'its own user applied, the other partition’s skipped');
      const after = await answers(nc, cluster);
      for (const [i, r] of after.entries()) {
        const b = before[i] as UserStateReplyMsg;
        if (r.userId === target) {
          t.equal(r.clicks, b.clicks + 1, 'the target user gained the click');
          t.equal(r.recentVideoIds.at(-1), 42);
          t.notSame(r.embedding, b.embedding, 'and a fresh embedding');
        } else if (userPartitionOf(r.userId, P) === 0) {
          t.same({ ...r, appliedSeq: 0 }, { ...b, appliedSeq: 0 }, `user ${r.userId} of partition 0 unchanged but appliedSeq`);
        } else {
          t.same(r, b, `user ${r.userId} of partition ${r.partition} unchanged`);
        }
      }
      t.same(handles.map((h) => h.stats().eventsApplied), [(appliedBefore[0] ?? 0) + 1, appliedBefore[1], appliedBefore[2]], 'only partition 0 applied an event');
      t.same(handles.map((h) => h.stats().appliedSeq), [6, 0, 0], 'only partition 0 moved its appliedSeq');
    });

    await t.test('stopping one leaves the others answering; the last stop ends the worker', async (t) => {
      const [h0, h1, h2] = handles as [UserPartitionHandle, UserPartitionHandle, UserPartitionHandle];
      const before = await answers(nc, cluster, [...usersOf(0), ...usersOf(2)]);
      await h1.stop();
      t.same(userStateWorkerCounts(), { sharedWorkers: 1, sharedPartitions: 2, dedicatedWorkers: 0 });
      await t.rejects(ask(nc, cluster, usersOf(1)[0] as number), 'stopped partition no longer answers');
      t.same(await answers(nc, cluster, [...usersOf(0), ...usersOf(2)]), before, 'the others answer as before');
      await t.rejects(h1.applyEvents([]), { code: StatusCode.UNAVAILABLE });
      await h0.stop();
      t.same(await answers(nc, cluster, usersOf(2)), before.slice(usersOf(0).length * CONTEXTS.length), 'the last one still answers');
      await h2.stop();
      t.same(userStateWorkerCounts(), { sharedWorkers: 0, sharedPartitions: 0, dedicatedWorkers: 0 }, 'worker ended with its last partition');
    });
  });

  await t.test("'worker' mode: one worker per partition", async (t) => {
    const { cluster, handles } = await startAll('worker');
    t.same(userStateWorkerCounts(), { sharedWorkers: 0, sharedPartitions: 0, dedicatedWorkers: 3 });
    t.same(await answers(nc, cluster), expected, 'same replies as inline');
    await Promise.all(handles.map((h) => h.stop()));
    t.same(userStateWorkerCounts(), { sharedWorkers: 0, sharedPartitions: 0, dedicatedWorkers: 0 });
  });

  await t.test('a crash of the shared worker fails every hosted partition with INTERNAL, then they reopen in a fresh worker', async (t) => {
    const { cluster, handles } = await startAll('shared', [0, 1]);
    const [h0, h1] = handles as [UserPartitionHandle, UserPartitionHandle];
    t.equal(userStateWorkerCounts().sharedWorkers, 1);
    sharedUserStateHost().crashForTest();
    // Posted after the crash message, so never answered: in flight when the worker dies.
    const pending = [h0.applyEvents([]), h1.applyEvents([])];
    for (const p of pending) await t.rejects(p, { code: StatusCode.INTERNAL, message: /user-state shared worker (crashed|exited)/ });
    t.equal(userStateWorkerCounts().sharedWorkers, 0, 'the dead worker is gone');
    const r = await ask(nc, cluster, usersOf(0)[0] as number);
    if (r.status?.code === StatusCode.INTERNAL) t.match(r.status.message, /worker crashed/, 'until reopened, requests are answered INTERNAL at once');
    else t.comment('the partition had already reopened');

    // Both partitions reopen (restored from their snapshots) in one fresh shared worker and answer as before.
    const u0 = usersOf(0)[0] as number;
    const u1 = usersOf(1)[0] as number;
    const end = Date.now() + 20_000;
    let a0 = await ask(nc, cluster, u0);
    let a1 = await ask(nc, cluster, u1);
    while ((a0.status?.code || a1.status?.code) && Date.now() < end) {
      await new Promise((res) => setTimeout(res, 50));
      [a0, a1] = [await ask(nc, cluster, u0), await ask(nc, cluster, u1)];
    }
    t.same(a0, expected[USERS.indexOf(u0) * CONTEXTS.length], 'partition 0 answers as before the crash');
    t.same(a1, expected[USERS.indexOf(u1) * CONTEXTS.length], 'partition 1 answers as before the crash');
    t.same(handles.map((h) => h.stats().restarts), [1, 1], 'each reopened once');
    t.same(userStateWorkerCounts(), { sharedWorkers: 1, sharedPartitions: 2, dedicatedWorkers: 0 }, 'in one fresh shared worker');

    const fresh = await startAll('shared', [2]);
    t.same(userStateWorkerCounts(), { sharedWorkers: 1, sharedPartitions: 3, dedicatedWorkers: 0 }, 'a later partition joins that worker');
    const u = usersOf(2)[0] as number;
    t.same(await ask(nc, fresh.cluster, u), expected[USERS.indexOf(u) * CONTEXTS.length], 'and answers');
    await Promise.all([...handles, ...fresh.handles].map((h) => h.stop()));
    t.same(userStateWorkerCounts(), { sharedWorkers: 0, sharedPartitions: 0, dedicatedWorkers: 0 });
  });
});
