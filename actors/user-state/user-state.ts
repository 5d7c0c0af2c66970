/**
 * The user-state actor: answers `Subjects.userGet(cluster, p)` (queue group of the partition's
 * replicas) for user partition `p` of `P` (DESIGN §2), and applies the events LogEvents accepted:
 * it follows its subject of the cluster's JetStream event stream from its snapshot's sequence
 * (actors/event-stream/feed.ts, option `eventFeed`) and hands them to `applyEvents` in batches.
 *
 * Threading (option `thread`, default 'shared'): the partition (profiles, embedding cache) lives in
 * a worker thread and the NATS subscription on the main thread hands it raw request bytes.
 * onnxruntime-node runs `session.run` synchronously on the calling thread, so inline a cache miss
 * blocks the node's event loop for the whole tower run: 0.26–0.6 ms per batch-1 run of a
 * default-size tower (test/actors/bench-actors.ts, 2 vCPU, load average ~10). The worker hop added
 * only ~0.05–0.07 ms to the p50 of a NATS request (hit 0.28 → 0.35 ms, miss 0.41 → 0.46 ms, 10k
 * users), and keeps the loop free for the node's other actors.
 * - 'shared' (default): every 'shared' partition of the process lives in ONE host worker with ONE
 *   user-tower session per model dir (worker-host.ts, worker.ts), so threads and sessions scale with
 *   nodes, not partitions. With 'worker', a node owning 5–6 of P = 16 partitions ran 5–6 such
 *   threads and sessions (~67 MB of weights each on the 1M-video world) beside its item-shard and
 *   ranker workers on 2 cores, and its p99 was scheduling, not work (docs/capacity.md). Measured
 *   with 5 partitions in one process (default-size tower, 20k videos / 5k users, 2 vCPU, load
 *   average 3.6–4.5, three alternating runs each): 1 in flight, miss p50 0.59–0.65 ms vs
 *   0.75–0.77 ms with 'worker', hit p50 0.34–0.42 vs 0.41–0.49 ms, p99 alike (3–5 ms, noise);
 *   16 in flight, 3.7–5.2k misses/s vs 2.3–4.0k/s and 5.7–7.8k hits/s vs 3.0–4.8k/s; RSS after
 *   start +405–505 MB vs +704–768 MB. Each partition keeps its own NATS subscription, profiles,
 *   cache, counters, snapshots and maxInFlight. The cost: one thread runs one tower run (or one
 *   long restore / replay step) at a time for all of them, and cold starts that replay the world
 *   do so one thread's worth at a time.
 * - 'worker': a host worker (and session) of the partition's own, the previous default.
 * - 'inline': the same code on the main thread, for nodes that host nothing else and for
 *   measuring the hop.
 * A dead host worker fails the pending calls of every partition in it with INTERNAL (a NATS request
 * gets an INTERNAL reply, at once). Each of those partitions then reopens itself in a fresh worker
 * (restored from its snapshot, as at start) and follows the event stream again from the snapshot's
 * sequence, so no event LogEvents acked is lost; until then it answers INTERNAL. Reopening retries
 * with backoff (0.2 s doubling to 30 s); stats().restarts counts the reopenings.
 *
 * Start-up (option `snapshotDir`): profiles are restored from the partition's newest valid snapshot
 * (snapshot.ts, bootstrap.ts): the live one, written every `snapshotIntervalMs` by the replica
 * (snapshot-writer.ts) with the stream sequence it applied, when it matches the world, feature
 * spec, P and the identity of the event stream followed now; else the bootstrap one (the world's
 * history, sequence 0); else the world is replayed and the bootstrap snapshot written. A live
 * snapshot of another stream identity (the stream was deleted and created again) is not used with
 * its sequence: logged (`user_partition_snapshot_stream_mismatch`) and counted
 * (stats().streamMismatches). The stream keeps `streamMaxAgeMs` of events (set on it here); when the
 * events right after the restored sequence are gone already (retention or a purge removed them
 * before this replica saw them), the partition still starts, and logs and counts the gap
 * (`user_partition_replay_gap`, stats().replayGapSeqs). The catalogue the partition needs for new events is shared by every partition
 * of the node (catalogue-cache.ts). Measured on the local 1M-video world: see docs/ in the report.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { StatusCode, UpnextError, toStatus } from '../../core/status.js';
import type { StatusObject } from '../../core/status.js';
import { Subjects, validateClusterName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { openUserPartition } from './bootstrap.js';
import { acquireCatalogue } from './catalogue-cache.js';
import { handleUserStateRequest, userErrorReply } from './handler.js';
import type { ApplyResult, SequencedEvent, UserStatePartition } from './partition.js';
import type { UserHostCounters, UserPartitionReadyInfo, UserPartitionWorkerConfig } from './protocol.js';
import { UserTower } from './user-tower.js';
import { ACTOR_STOP_DRAIN_MS, settleWithin } from '../../core/deadline.js';
import { reopenWithBackoff } from '../../core/reopen.js';
import { startEventFeed } from '../event-stream/feed.js';
import type { EventFeedHandle, EventFeedStats } from '../event-stream/feed.js';
import { DEFAULT_EVENT_MAX_AGE_MS, ensureEventStream, eventStreamInfo, validateEventMaxAgeMs } from '../event-stream/stream.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { startLiveSnapshots } from './bootstrap.js';
import type { UserSnapshotWriter } from './snapshot-writer.js';
import { NO_SNAPSHOT_WRITER_STATS } from './snapshot-writer.js';
import { dedicatedUserStateHost, sharedUserStateHost } from './worker-host.js';

/** Where a user partition runs (see {@link UserPartitionOptions.thread} and the module comment). */
export type UserStateThreadMode = 'shared' | 'worker' | 'inline';

/** The allowed {@link UserStateThreadMode} values. */
export const USER_STATE_THREAD_MODES: readonly UserStateThreadMode[] = Object.freeze(['shared', 'worker', 'inline']);

/** Options of {@link startUserPartition}. */
export interface UserPartitionOptions {
  /** Already-connected NATS connection (not closed by stop()). */
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** This partition p, 0 ≤ p < partitionCount. */
  readonly partition: number;
  /** P, the number of user partitions. */
  readonly partitionCount: number;
  /** World to replay at start; omit to start empty (events arrive through applyEvents). */
  readonly worldDir?: string;
  /** Model directory holding user_tower.onnx and manifest.json. */
  readonly modelDir: string;
  /**
   * Embedding space of modelDir's towers (actors/model/embedding-space.ts `readEmbeddingSpace`):
   * a request naming another space gets the profile without an embedding. Default '' (no check).
   */
  readonly space?: string;
  /**
   * Folder for profile snapshots (`user-partition-<p>-of-<P>-<world>/`) and the node's catalogue
   * file; omit to replay the world at every start and write nothing.
   */
  readonly snapshotDir?: string;
  /** Cached embeddings (user × context bucket × profile version). Default 100000. */
  readonly embeddingCacheSize?: number;
  /**
   * Where the partition runs: 'shared' (default: the process's one user-state worker thread, shared
   * with every other 'shared' partition, one user-tower session per model dir), 'worker' (a worker
   * thread and session of its own) or 'inline' (the caller's thread).
   */
  readonly thread?: UserStateThreadMode;
  /** Requests queued beyond which new ones get RESOURCE_EXHAUSTED. Default 512. */
  readonly maxInFlight?: number;
  /**
   * Follow the partition's subject of the cluster's JetStream event stream from the snapshot's
   * sequence (the stream is created if missing, so the server needs JetStream). Default true;
   * false leaves events to applyEvents callers (tests, tools).
   */
  readonly eventFeed?: boolean;
  /**
   * Period of live snapshots (profiles + the stream sequence applied), ms, written when the
   * partition applied an event since the last one; 0 = only the bootstrap snapshot (every restart
   * then replays the whole stream). Needs `snapshotDir` and `worldDir`. Default 60000.
   */
  readonly snapshotIntervalMs?: number;
  /**
   * Retention of the event stream (its max_age), ms; 0 = unlimited. Set on the stream when it is
   * created, and on an existing one whose max_age differs. Default 604800000 (7 days).
   */
  readonly streamMaxAgeMs?: number;
}

/** Default of {@link UserPartitionOptions.snapshotIntervalMs}, ms. */
export const DEFAULT_USER_SNAPSHOT_INTERVAL_MS = 60_000;

/** Smallest ratio of the stream's retention to the live-snapshot period that config accepts. */
export const MIN_RETENTION_PER_SNAPSHOT_INTERVAL = 10;

/**
 * Checks that live snapshots are taken well within the stream's retention: a replica restarts from
 * a snapshot up to one interval old and needs every event since, so the interval must leave most
 * of `maxAgeMs` as the downtime a replica may have before its events expire (interval ≤
 * maxAgeMs / {@link MIN_RETENTION_PER_SNAPSHOT_INTERVAL}). A stream with retention and no live
 * snapshots (interval 0) would lose everything older than maxAgeMs at every restart. Throws a
 * TypeError naming both knobs (`intervalName`, `maxAgeName`).
 */
export function checkSnapshotIntervalWithinRetention(intervalMs: number, maxAgeMs: number, intervalName = 'snapshotIntervalMs', maxAgeName = 'streamMaxAgeMs'): void {
  if (maxAgeMs === 0) return;
  if (intervalMs === 0 || intervalMs * MIN_RETENTION_PER_SNAPSHOT_INTERVAL > maxAgeMs) {
    throw new TypeError(
      `${intervalName} (${intervalMs}${intervalMs === 0 ? ': no live snapshots' : ''}) must be > 0 and at most 1/${MIN_RETENTION_PER_SNAPSHOT_INTERVAL} of ${maxAgeName} (${maxAgeMs}): a restart needs the events since its last snapshot still in the stream; raise ${maxAgeName} (0 = unlimited) or lower ${intervalName}`,
    );
  }
}

/** {@link UserPartitionOptions} after defaults and validation. */
export interface ResolvedUserPartitionOptions {
  readonly cluster: string;
  readonly partition: number;
  readonly partitionCount: number;
  readonly worldDir: string | undefined;
  readonly modelDir: string;
  readonly space: string;
  readonly snapshotDir: string | undefined;
  readonly embeddingCacheSize: number;
  readonly thread: UserStateThreadMode;
  readonly maxInFlight: number;
  readonly eventFeed: boolean;
  readonly snapshotIntervalMs: number;
  readonly streamMaxAgeMs: number;
}

function requireInt(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new TypeError(`option ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/** Defaults, then validation (TypeError naming the option). */
export function resolveUserPartitionOptions(o: Omit<UserPartitionOptions, 'nc'>): ResolvedUserPartitionOptions {
  const partitionCount = requireInt('partitionCount', o.partitionCount, 1);
  const partition = requireInt('partition', o.partition, 0);
  if (partition >= partitionCount) throw new TypeError(`option partition must be < partitionCount (${partitionCount}), got ${partition}`);
  try {
    validateClusterName(o.cluster);
  } catch (err) {
    throw new TypeError(`option cluster: ${(err as Error).message}`);
  }
  if (typeof o.modelDir !== 'string' || o.modelDir.length === 0) throw new TypeError('option modelDir must be a non-empty string');
  if (o.space !== undefined && typeof o.space !== 'string') throw new TypeError('option space must be a string');
  if (o.worldDir !== undefined && (typeof o.worldDir !== 'string' || o.worldDir.length === 0)) throw new TypeError('option worldDir must be a non-empty string');
  if (o.snapshotDir !== undefined && (typeof o.snapshotDir !== 'string' || o.snapshotDir.length === 0)) throw new TypeError('option snapshotDir must be a non-empty string');
  const thread = o.thread ?? 'shared';
  if (!USER_STATE_THREAD_MODES.includes(thread)) throw new TypeError(`option thread must be one of ${USER_STATE_THREAD_MODES.map((m) => `'${m}'`).join(', ')}, got ${String(thread)}`);
  return {
    cluster: o.cluster,
    partition,
    partitionCount,
    worldDir: o.worldDir,
    modelDir: o.modelDir,
    space: o.space ?? '',
    snapshotDir: o.snapshotDir,
    embeddingCacheSize: requireInt('embeddingCacheSize', o.embeddingCacheSize ?? 100_000, 1),
    thread,
    maxInFlight: requireInt('maxInFlight', o.maxInFlight ?? 512, 1),
    eventFeed: requireBool('eventFeed', o.eventFeed ?? true),
    snapshotIntervalMs: requireInt('snapshotIntervalMs', o.snapshotIntervalMs ?? DEFAULT_USER_SNAPSHOT_INTERVAL_MS, 0),
    streamMaxAgeMs: validateEventMaxAgeMs('option streamMaxAgeMs', o.streamMaxAgeMs ?? DEFAULT_EVENT_MAX_AGE_MS),
  };
}

function requireBool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`option ${name} must be true or false, got ${String(v)}`);
  return v;
}

/** Counters and sizes for /metrics. */
export interface UserPartitionStats extends UserHostCounters {
  readonly partition: number;
  readonly dropped: number;
  readonly rejected: number;
  readonly inFlight: number;
  readonly thread: UserStateThreadMode;
  /** Times the partition was reopened after its host worker died. */
  readonly restarts: number;
  /** The event-stream feed's counters, when it runs. */
  readonly eventFeed?: EventFeedStats;
  /** Opens (start or reopen) that refused a live snapshot of another event stream (see the module comment). */
  readonly streamMismatches: number;
  /** Stream sequences removed (retention, purge) before this replica applied them, summed over its opens; an upper bound on its own events lost. */
  readonly replayGapSeqs: number;
}

/**
 * The partition as seen from a coordinator in the same process (actors/coordinator/local-ports.ts):
 * the NATS request and reply bytes, handed to the host directly (no NATS client, server or socket).
 */
export interface LocalUserPartition {
  readonly partition: number;
  /**
   * Encoded UserStateRequest in, encoded UserStateReply out (an error status inside the reply, e.g.
   * INTERNAL from a dead worker, is a resolved answer, as over NATS). Rejects with an UpnextError:
   * RESOURCE_EXHAUSTED at `maxInFlight`, UNAVAILABLE once stopped, DEADLINE_EXCEEDED when the
   * request was dropped past its deadline. `request` is copied, never detached.
   */
  get(request: Uint8Array): Promise<Uint8Array>;
  /** Requests in flight in this partition now (NATS and local together). */
  inFlight(): number;
}

/** A running user partition. */
export interface UserPartitionHandle {
  readonly info: UserPartitionReadyInfo;
  /** This partition for a coordinator in the same process; see {@link LocalUserPartition}. */
  readonly local: LocalUserPartition;
  /** Applies stream events in order (skipping seq ≤ appliedSeq); ack after it resolves. */
  applyEvents(events: readonly SequencedEvent[]): Promise<ApplyResult>;
  stats(): UserPartitionStats;
  /** Unsubscribes and releases the worker / ONNX session. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Where the partition runs; every host answers the same bytes with the same code. The worker hosts
 * are {@link HostedUserPartition}s (worker-host.ts). A host rejects a call only when it was stopped
 * (UNAVAILABLE) or its worker died (INTERNAL).
 */
interface PartitionHost {
  request(bytes: Uint8Array): Promise<Uint8Array | null>;
  apply(events: readonly SequencedEvent[]): Promise<ApplyResult>;
  counters(): UserHostCounters;
  /** `listener` is called once if the host dies under the partition (never for the inline host). */
  onFailure(listener: (status: StatusObject) => void): void;
  close(): Promise<void>;
}

/** The partition on the caller's thread, with a user-tower session of its own. */
class InlineHost implements PartitionHost {
  readonly #p: UserStatePartition;
  readonly #tower: UserTower;
  #snapshots: UserSnapshotWriter | undefined;
  #closed = false;
  constructor(p: UserStatePartition, tower: UserTower) {
    this.#p = p;
    this.#tower = tower;
  }

  static async open(config: UserPartitionWorkerConfig): Promise<{ host: InlineHost; info: UserPartitionReadyInfo }> {
    const tower = await UserTower.load(config.modelDir);
    try {
      const opened = await openUserPartition(config, tower);
      const host = new InlineHost(opened.partition, tower);
      // Same thread, and applyEvents and exportProfiles are synchronous: the copy is never torn.
      host.#snapshots = startLiveSnapshots(config, opened, async (fn) => {
        if (host.#closed) return false;
        fn();
        return true;
      });
      return { host, info: opened.info };
    } catch (err) {
      await tower.close();
      throw err;
    }
  }
  request(bytes: Uint8Array): Promise<Uint8Array | null> {
    return handleUserStateRequest(this.#p, bytes);
  }
  async apply(events: readonly SequencedEvent[]): Promise<ApplyResult> {
    return this.#p.applyEvents(events);
  }
  counters(): UserHostCounters {
    return { ...this.#p.counters(), snapshots: this.#snapshots?.stats() ?? NO_SNAPSHOT_WRITER_STATS };
  }
  onFailure(): void {
    // Runs on the caller's thread: nothing separate to die.
  }
  async close(): Promise<void> {
    this.#closed = true;
    await this.#snapshots?.stop();
    await this.#tower.close();
  }
}

/**
 * Opens the partition (restoring its snapshot, or replaying the world and writing one), then
 * subscribes to its subject.
 */
export async function startUserPartition(opts: UserPartitionOptions): Promise<UserPartitionHandle> {
  const o = resolveUserPartitionOptions(opts);
  // The node's partitions share one catalogue (catalogue-cache.ts); released when this one stops.
  const lease = o.worldDir === undefined ? undefined : await acquireCatalogue(o.worldDir, o.snapshotDir);
  const base = {
    partition: o.partition,
    partitionCount: o.partitionCount,
    worldDir: o.worldDir,
    modelDir: o.modelDir,
    space: o.space,
    embeddingCacheSize: o.embeddingCacheSize,
    snapshotDir: o.snapshotDir,
    snapshotIntervalMs: o.snapshotIntervalMs,
    catalogue: lease?.catalogue.columns,
  };
  // Also how a partition reopens after its host worker died (UserPartitionImpl.#recover). The
  // stream is looked at anew each time: it may have been deleted and created again meanwhile.
  const open = async (): Promise<{ host: PartitionHost; info: UserPartitionReadyInfo }> => {
    let config: UserPartitionWorkerConfig = { ...base, stream: undefined };
    if (o.eventFeed) {
      const s = await ensureEventStream(await jetstreamManager(opts.nc), o.cluster, { maxAgeMs: o.streamMaxAgeMs });
      config = { ...base, stream: { identity: s.identity, lastSeq: s.lastSeq } };
    }
    switch (o.thread) {
      case 'shared': {
        const r = await sharedUserStateHost().open(config);
        return { host: r.partition, info: r.info };
      }
      case 'worker': {
        const r = await dedicatedUserStateHost().open(config);
        return { host: r.partition, info: r.info };
      }
      case 'inline':
        return InlineHost.open(config);
    }
  };
  let opened: { host: PartitionHost; info: UserPartitionReadyInfo };
  try {
    opened = await open();
  } catch (err) {
    lease?.release();
    throw err;
  }
  const partition = new UserPartitionImpl(opts.nc, o, opened.host, opened.info, open, () => lease?.release());
  if (o.eventFeed) {
    try {
      await partition.startFeed(opened.info.appliedSeq);
    } catch (err) {
      await partition.stop();
      throw err;
    }
  }
  return partition;
}


class UserPartitionImpl implements UserPartitionHandle {
  readonly info: UserPartitionReadyInfo;
  readonly local: LocalUserPartition;
  readonly #o: ResolvedUserPartitionOptions;
  #host: PartitionHost;
  readonly #nc: NatsConnection;
  readonly #open: () => Promise<{ host: PartitionHost; info: UserPartitionReadyInfo }>;
  /** Set while the partition reopens after its worker died. */
  #recovering: Promise<void> | undefined;
  #restarts = 0;
  readonly #sub: Subscription;
  #inFlight = 0;
  #dropped = 0;
  #rejected = 0;
  #stopped: Promise<void> | undefined;
  readonly #releaseCatalogue: () => void;
  #feed: EventFeedHandle | undefined;
  #streamMismatches = 0;
  #replayGapSeqs = 0;

  constructor(
    nc: NatsConnection,
    o: ResolvedUserPartitionOptions,
    host: PartitionHost,
    info: UserPartitionReadyInfo,
    open: () => Promise<{ host: PartitionHost; info: UserPartitionReadyInfo }>,
    releaseCatalogue: () => void,
  ) {
    this.#o = o;
    this.#nc = nc;
    this.#open = open;
    this.#releaseCatalogue = releaseCatalogue;
    this.#host = host;
    host.onFailure((status) => void this.#recover(status));
    this.info = info;
    this.#noteOpened(info);
    this.local = { partition: o.partition, get: (request) => this.#getLocal(request), inFlight: () => this.#inFlight };
    this.#sub = nc.subscribe(Subjects.userGet(o.cluster, o.partition), {
      queue: Subjects.queueGroup(o.cluster, 'user', o.partition),
      callback: (err, msg) => void (err === null && this.#onRequest(msg)),
    });
  }

  #onRequest(msg: Msg): void {
    this.#answer(msg.data).then(
      (reply) => {
        // Answered even while stopping: a stop drains what the replica already took.
        if (reply !== null) msg.respond(reply);
      },
      () => {}, // stopped: no reply (the subscription is gone; the caller's timeout covers it)
    );
  }

  #getLocal(request: Uint8Array): Promise<Uint8Array> {
    if (this.#stopped !== undefined) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, `user partition ${this.#o.partition} stopped`));
    if (this.#inFlight >= this.#o.maxInFlight) {
      this.#rejected++;
      return Promise.reject(new UpnextError(StatusCode.RESOURCE_EXHAUSTED, `user partition ${this.#o.partition} has ${this.#inFlight} requests queued`));
    }
    return this.#answer(request).then((reply) => {
      if (reply === null) throw new UpnextError(StatusCode.DEADLINE_EXCEEDED, `user partition ${this.#o.partition} dropped a request past its deadline`);
      return reply;
    });
  }

  /**
   * One request, from NATS or from the local path: the reply bytes, null when dropped past its
   * deadline; rejects only once stopped.
   */
  async #answer(request: Uint8Array): Promise<Uint8Array | null> {
    if (this.#inFlight >= this.#o.maxInFlight) {
      this.#rejected++;
      const status = { code: StatusCode.RESOURCE_EXHAUSTED, message: `user partition ${this.#o.partition} has ${this.#inFlight} requests queued` };
      return Codecs.userStateReply.encode(userErrorReply(this.#o.partition, status));
    }
    this.#inFlight++;
    try {
      const reply = await this.#host.request(request);
      if (reply === null) this.#dropped++;
      return reply;
    } catch (err) {
      // Only a stopped host or a dead worker rejects. A dead worker is answered at once (INTERNAL)
      // so the caller need not wait; a stopped partition answers nothing.
      if (this.#stopped !== undefined) throw err;
      return Codecs.userStateReply.encode(userErrorReply(this.#o.partition, toStatus(err)));
    } finally {
      this.#inFlight--;
    }
  }

  #log(e: Record<string, unknown>): void {
    process.stderr.write(`${JSON.stringify({ ...e, partition: this.#o.partition })}\n`);
  }

  /** Logs and counts a live snapshot refused for its stream identity (see the module comment). */
  #noteOpened(info: UserPartitionReadyInfo): void {
    if (!info.streamMismatch) return;
    this.#streamMismatches++;
    this.#log({ event: 'user_partition_snapshot_stream_mismatch', reason: info.liveSnapshotRefused, restored: info.snapshotKind ?? info.snapshot, appliedSeq: info.appliedSeq });
  }

  /**
   * Follows this partition's subject of the event stream from the snapshot's sequence on
   * (actors/event-stream/feed.ts), so an event LogEvents accepted reaches this replica's state.
   * When the stream no longer holds `afterSeq + 1` (retention or a purge removed it before this
   * replica applied it), the partition starts anyway from the oldest event kept, and the gap is
   * logged and counted.
   */
  async startFeed(afterSeq: number): Promise<void> {
    const stream = await eventStreamInfo(await jetstreamManager(this.#nc), this.#o.cluster).catch(() => undefined);
    if (stream !== undefined && afterSeq + 1 < stream.firstSeq) {
      const gap = stream.firstSeq - afterSeq - 1;
      this.#replayGapSeqs += gap;
      this.#log({ event: 'user_partition_replay_gap', appliedSeq: afterSeq, streamFirstSeq: stream.firstSeq, missingSeqs: gap, streamMaxAgeMs: stream.maxAgeMs });
    }
    this.#feed = await startEventFeed({
      nc: this.#nc,
      cluster: this.#o.cluster,
      subject: Subjects.events(this.#o.cluster, this.#o.partition),
      afterSeq,
      maxAgeMs: this.#o.streamMaxAgeMs,
      apply: async (batch) => {
        await this.applyEvents(batch);
      },
      log: (e) => this.#log(e),
    });
  }

  /**
   * The host worker died (every call to it now fails INTERNAL): reopen the partition in a fresh
   * worker — restored from its snapshot, as at start — and follow the stream again from the
   * snapshot's sequence, so the events applied since are applied again and none is lost. Retries
   * with backoff until it succeeds or the partition stops. Requests meanwhile are answered
   * INTERNAL (the coordinator treats the user as new for them).
   */
  #recover(why: StatusObject): Promise<void> {
    if (this.#stopped !== undefined) return Promise.resolve();
    this.#recovering ??= (async () => {
      const log = (e: Record<string, unknown>) => this.#log(e);
      log({ event: 'user_partition_reopening', reason: why.message });
      const feed = this.#feed;
      this.#feed = undefined;
      await feed?.stop();
      await this.#host.close().catch(() => {});
      const opened = await reopenWithBackoff(
        () => this.#open(),
        () => this.#stopped !== undefined,
        (err, retryInMs) => log({ event: 'user_partition_reopen_failed', message: toStatus(err).message, retryInMs }),
      );
      if (opened === undefined) return;
      if (this.#stopped !== undefined) {
        await opened.host.close();
        return;
      }
      this.#host = opened.host;
      this.#restarts++;
      this.#noteOpened(opened.info);
      opened.host.onFailure((status) => void this.#recover(status));
      if (this.#o.eventFeed) await this.startFeed(opened.info.appliedSeq);
      log({ event: 'user_partition_reopened', restarts: this.#restarts, snapshot: opened.info.snapshot, appliedSeq: opened.info.appliedSeq });
    })().finally(() => {
      this.#recovering = undefined;
    });
    return this.#recovering;
  }

  applyEvents(events: readonly SequencedEvent[]): Promise<ApplyResult> {
    if (this.#stopped !== undefined) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, 'user partition stopped'));
    return this.#host.apply(events);
  }

  stats(): UserPartitionStats {
    return {
      ...this.#host.counters(),
      partition: this.#o.partition,
      dropped: this.#dropped,
      rejected: this.#rejected,
      inFlight: this.#inFlight,
      thread: this.#o.thread,
      restarts: this.#restarts,
      ...(this.#feed !== undefined ? { eventFeed: this.#feed.stats() } : {}),
      streamMismatches: this.#streamMismatches,
      replayGapSeqs: this.#replayGapSeqs,
    };
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      await this.#feed?.stop();
      // Graceful (a move's drain step): leave the queue group, so NATS sends new requests to the
      // twin, then answer what this replica already holds before closing.
      await this.#sub.drain().catch(() => this.#sub.unsubscribe());
      await settleWithin(() => this.#inFlight === 0, ACTOR_STOP_DRAIN_MS);
      // A reopen in progress sees #stopped and gives up (closing what it opened).
      await this.#recovering;
      await this.#feed?.stop();
      await this.#host.close();
      this.#releaseCatalogue();
    })();
    return this.#stopped;
  }
}
