/**
 * The bounded event stream (h16): user partitions write live snapshots (profiles + stream sequence)
 * periodically and replay only what follows them after a restart or a worker crash, each acked
 * event applied once; a live snapshot of another stream identity is not used with its sequence;
 * the stream is created with the configured max_age and a retention/purge gap is counted; the
 * popular actor replays the stream from a start time. Real nats-server, real ONNX Runtime, tiny
 * data.
 */
import t from 'tap';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { specHash } from '../../core/features/index.js';
import { userPartitionOf } from '../../core/hash.js';
import { Subjects, eventStreamName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { UserStateReplyMsg } from '../../protos/codec.js';
import { EventPublisher } from '../../actors/coordinator/events.js';
import { DEFAULT_EVENT_MAX_AGE_MS, eventStreamInfo } from '../../actors/event-stream/stream.js';
import { worldIdentity } from '../../actors/user-state/catalogue.js';
import { readUserSnapshot } from '../../actors/user-state/snapshot.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import type { UserPartitionHandle } from '../../actors/user-state/user-state.js';
import { sharedUserStateHost } from '../../actors/user-state/worker-host.js';
import { GLOBAL_KEY } from '../../actors/popular/popular-index.js';
import { startPopular } from '../../actors/popular/popular.js';
import { resolveConfig } from '../../cluster/config.js';
import { renderMetrics } from '../../cluster/node/metrics.js';
import { TINY_SPEC, writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const P = 2;
const PART = 1;

async function until<T>(probe: () => Promise<T> | T, ok: (v: T) => boolean, limitMs = 10_000): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const click = (eventId: string, userId: number, videoId: number): InteractionEvent => ({
  eventId, userId, videoId, type: EventType.CLICK, tsMs: Date.now(), position: 0, watchSeconds: 0,
  context: { device: 'ios', country: 'BR', localHour: 20 }, surface: 'home', requestId: 'r',
});

t.test('user partitions: live snapshots bound the replay; stream identity; retention gap', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-streambound');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 200, numUsers: 30, days: 2 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const snapshotDir = path.join(root, 'snap');
  const jsm = await jetstreamManager(nc);
  let user = 1;
  while (userPartitionOf(user, P) !== PART) user++;
  const key = { partition: PART, partitionCount: P, source: await worldIdentity(world.dir), featureSpecHash: specHash(TINY_SPEC) };
  let cn = 0;

  /** A fresh cluster (own stream) over the shared snapshot folder of its own. */
  const setup = async () => {
    const cluster = `sb${process.pid}x${cn++}`;
    const dir = path.join(snapshotDir, cluster);
    const base = { nc, cluster, partition: PART, partitionCount: P, worldDir: world.dir, modelDir, snapshotDir: dir, snapshotIntervalMs: 100 };
    const publisher = await EventPublisher.create(nc, cluster, P, 3000);
    const ask = async (): Promise<UserStateReplyMsg> => {
      const m = await nc.request(Subjects.userGet(cluster, PART), Codecs.userStateRequest.encode({ userId: user, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 5000 }), { timeout: 3000 });
      return Codecs.userStateReply.decode(m.data);
    };
    const publish = async (ids: readonly [string, number][]) => {
      t.same(await publisher.publish(ids.map(([id, v]) => click(id, user, v))), { accepted: ids.length, duplicates: 0 }, `published ${ids.map(([id]) => id).join(',')}`);
    };
    /** Waits until the partition's live snapshot holds everything it applied (seq). */
    const snapshotAt = (h: UserPartitionHandle, seq: number) => until(() => h.stats().snapshots, (s) => s.lastSeq === seq && s.written >= 1);
    return { cluster, dir, base, ask, publish, snapshotAt };
  };

  await t.test('a restart and a worker crash replay only the events after the live snapshot, each once', async (t) => {
    const { cluster, dir, base, ask, publish, snapshotAt } = await setup();
    const a = await startUserPartition(base);
    const before = await ask();
    await publish([['e1', 701], ['e2', 702], ['e3', 703]]);
    await until(ask, (r) => r.recentVideoIds.includes(703));
    const seqA = a.stats().appliedSeq;
    t.ok(seqA >= 3, `applied up to seq ${seqA}`);
    const snapA = await snapshotAt(a, seqA);
    t.equal(snapA.lastSeq, seqA, 'a live snapshot at the applied sequence was written within the interval');
    t.ok(snapA.written >= 1 && snapA.failures === 0 && snapA.lastAtMs > 0, `writer counters ${JSON.stringify(snapA)}`);
    const onDisk = await readUserSnapshot(dir, key, 'live');
    t.equal(onDisk.columns?.appliedSeq, seqA, 'the live snapshot on disk holds that sequence');
    t.equal(onDisk.columns === undefined ? undefined : onDisk.meta.stream, (await eventStreamInfo(jsm, cluster)).identity, 'and the identity of the stream it counts in');
    await a.stop();

    await publish([['e4', 704], ['e5', 705]]); // while no replica runs
    const b = await startUserPartition(base);
    t.teardown(() => b.stop());
    t.equal(b.info.snapshot, 'restored');
    t.equal(b.info.snapshotKind, 'live', 'the live snapshot (the newest valid one) is restored');
    t.equal(b.info.appliedSeq, seqA);
    t.equal(b.info.replayedEvents, 0, 'no world replay');
    const afterRestart = await until(ask, (r) => r.recentVideoIds.includes(705));
    t.equal(afterRestart.clicks, before.clicks + 5, 'every acked event applied exactly once across the restart');
    t.same(afterRestart.recentVideoIds.slice(-5), [701, 702, 703, 704, 705], 'in stream order');
    const feedB = b.stats().eventFeed;
    t.equal(feedB?.received, 2, 'the restart replayed only the two events after the snapshot');
    t.equal(feedB?.applied, 2);

    const seqB = b.stats().appliedSeq;
    await snapshotAt(b, seqB);
    sharedUserStateHost().crashForTest();
    await publish([['e6', 706], ['e7', 707]]); // while the worker is down or reopening
    const recovered = await until(ask, (r) => !r.status?.code && r.recentVideoIds.includes(707), 20_000);
    t.equal(b.stats().restarts, 1, 'reopened once');
    t.equal(recovered.clicks, before.clicks + 7, 'no event lost or applied twice across the crash');
    t.same(recovered.recentVideoIds.slice(-7), [701, 702, 703, 704, 705, 706, 707]);
    t.equal(b.stats().eventFeed?.received, 2, 'the reopened feed replayed only the events after the live snapshot');
    t.equal(b.stats().streamMismatches, 0);
    t.equal(b.stats().replayGapSeqs, 0);
    const metrics = renderMetrics({
      node: 'n1', cluster, mapVersion: 1, modelVersion: '',
      process: { cpuSecondsTotal: 0, rssBytes: 0, heapUsedBytes: 0, eventLoopDelayP99Ms: 0, uptimeSeconds: 0 },
      actors: [{ kind: 'user_partition', index: PART, stats: b.stats() }],
    });
    for (const name of ['snapshots_last_seq', 'snapshots_last_at_ms', 'snapshots_written', 'snapshots_failures', 'replay_gap_seqs', 'stream_mismatches']) {
      t.match(metrics, new RegExp(`^upnext_user_partition_${name}\\{[^}]*index="${PART}"[^}]*\\} \\d+`, 'm'), `/metrics shows ${name}`);
    }
  });

  await t.test('a live snapshot of another stream identity is not used with its sequence', async (t) => {
    const { cluster, base, ask, publish, snapshotAt } = await setup();
    const a = await startUserPartition(base);
    const before = await ask();
    await publish([['o1', 801], ['o2', 802], ['o3', 803]]);
    await until(ask, (r) => r.recentVideoIds.includes(803));
    await snapshotAt(a, a.stats().appliedSeq);
    await a.stop();

    // Deleted and created again: sequences restart at 1. Four new events take the new stream past
    // the old snapshot's sequence, so only the identity can tell them apart.
    await jsm.streams.delete(eventStreamName(cluster));
    await EventPublisher.create(nc, cluster, P, 3000);
    await publish([['n1', 901], ['n2', 902], ['n3', 903], ['n4', 904]]);
    const b = await startUserPartition(base);
    t.teardown(() => b.stop());
    t.equal(b.info.streamMismatch, true);
    t.match(b.info.liveSnapshotRefused, /stream/, `refused: ${b.info.liveSnapshotRefused}`);
    t.equal(b.info.snapshotKind, 'bootstrap', 'fell back to the bootstrap snapshot (world only)');
    t.equal(b.info.appliedSeq, 0, 'and replays the whole new stream');
    t.equal(b.stats().streamMismatches, 1, 'counted');
    const r = await until(ask, (x) => x.recentVideoIds.includes(904));
    t.same(r.recentVideoIds.slice(-4), [901, 902, 903, 904], 'every event of the new stream applied');
    t.notOk([801, 802, 803].some((v) => r.recentVideoIds.includes(v)), 'nothing of the deleted stream');
    t.equal(r.clicks, before.clicks + 4);
    // The next live snapshot records the new identity and replaces the stale one.
    await snapshotAt(b, b.stats().appliedSeq);
    const live = await readUserSnapshot(path.join(snapshotDir, cluster), key, 'live');
    t.equal(live.columns === undefined ? undefined : live.meta.stream, (await eventStreamInfo(jsm, cluster)).identity);
  });

  await t.test('retention: max_age from the option, and a gap left by removed events is counted', async (t) => {
    const { cluster, base, ask, publish, snapshotAt } = await setup();
    t.equal((await jsm.streams.info(eventStreamName(cluster))).config.max_age, nanos(DEFAULT_EVENT_MAX_AGE_MS), 'created with the default 7 days');
    const a = await startUserPartition({ ...base, streamMaxAgeMs: 3_600_000 });
    t.equal((await jsm.streams.info(eventStreamName(cluster))).config.max_age, nanos(3_600_000), 'an existing stream takes the configured max_age');
    const before = await ask();
    await publish([['g1', 601], ['g2', 602]]);
    await until(ask, (r) => r.recentVideoIds.includes(602));
    await snapshotAt(a, a.stats().appliedSeq);
    await a.stop();
    await publish([['g3', 603], ['g4', 604]]);
    // Removed before any replica applied them (a purge here; max_age removes them the same way).
    await jsm.streams.purge(eventStreamName(cluster));
    await publish([['g5', 605]]);
    const b = await startUserPartition({ ...base, streamMaxAgeMs: 3_600_000 });
    t.teardown(() => b.stop());
    t.equal(b.info.snapshotKind, 'live', 'a purge keeps the stream identity: the live snapshot is used');
    t.equal(b.stats().replayGapSeqs, 2, 'the two removed sequences are counted');
    const r = await until(ask, (x) => x.recentVideoIds.includes(605));
    t.same(r.recentVideoIds.slice(-3), [601, 602, 605], 'started anyway, after the gap');
    t.equal(r.clicks, before.clicks + 3);
  });
});

t.test('config: retention and snapshot interval', async (t) => {
  const d = resolveConfig();
  t.equal(d.eventStream.maxAgeMs, 7 * 86_400_000);
  t.equal(d.userState.snapshotIntervalMs, 60_000);
  t.throws(() => resolveConfig({ userState: { snapshotIntervalMs: 600_000 }, eventStream: { maxAgeMs: 3_600_000 } }), /userState\.snapshotIntervalMs.*eventStream\.maxAgeMs/, 'interval not well below retention');
  t.throws(() => resolveConfig({ userState: { snapshotIntervalMs: 0 } }), TypeError, 'no live snapshots with retention on');
  t.equal(resolveConfig({ userState: { snapshotIntervalMs: 0 }, eventStream: { maxAgeMs: 0 } }).eventStream.maxAgeMs, 0, 'both off is fine');
  t.throws(() => resolveConfig({ eventStream: { maxAgeMs: 10 } }), /eventStream\.maxAgeMs/);
  t.throws(() => resolveConfig({ eventStream: { maxAge: 10 } } as never), /eventStream\.maxAge is not a known option/);
});

t.test('popular replays the stream from a start time, not from its first sequence', async (t) => {
  const { nc } = await natsFixture(t, 'upnext-popstart');
  const cluster = `pstart${process.pid}`;
  const publisher = await EventPublisher.create(nc, cluster, P, 3000);
  t.same(await publisher.publish([click('old', 5, 111)]), { accepted: 1, duplicates: 0 });
  // Stream time is the server's wall clock: the old event must be older than the window.
  await new Promise((r) => setTimeout(r, 1600));
  t.same(await publisher.publish([click('new', 5, 222)]), { accepted: 1, duplicates: 0 });
  const lastSeq = (await eventStreamInfo(await jetstreamManager(nc), cluster)).lastSeq;
  const startedAt = Date.now();
  const actor = await startPopular({ nc, cluster, replayWindowMs: 1000, refreshIntervalMs: 60_000 });
  t.teardown(() => actor.stop());
  const feed = await until(() => actor.stats().eventFeed, (f) => f !== undefined && f.lastSeq === lastSeq);
  t.equal(feed?.lastSeq, lastSeq, 'the recent event arrived');
  t.ok(feed !== undefined && feed.startTimeMs >= startedAt - 1000 && feed.startTimeMs <= Date.now() - 1000, `consumer starts at now − window (${feed?.startTimeMs})`);
  t.equal(feed?.received, 1, 'the event older than the window was not delivered');
  actor.refresh();
  t.same(actor.index.list(GLOBAL_KEY, false)?.videoIds, [222], 'only the recent event is counted');
});
