/**
 * The item-shard actor: answers `Subjects.itemSearch(cluster, s)` and `Subjects.itemAdmin(cluster, s)`
 * for virtual shard `s` of `S` (DESIGN §2).
 *
 * Threading: the NATS subscriptions live on the node's main thread and hand the raw request bytes
 * to one worker thread that owns the faiss index and the item-tower session; the worker decodes,
 * searches, encodes and returns reply bytes, which the main thread sends. The main loop therefore
 * only moves bytes (a postMessage round trip, tens of µs), while every CPU-heavy step — protobuf,
 * faiss, ONNX — runs off it. Replicas of a shard scale by more nodes in the queue group (DESIGN:
 * replicate for throughput), not by threads sharing one index.
 */
import { Worker } from 'node:worker_threads';
import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node';
import { Subjects, validateClusterName } from '../../core/subjects.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import type { StatusObject } from '../../core/status.js';
import { Codecs } from '../../protos/codec.js';
import { statusToMsg } from '../../protos/convert.js';
import type { IndexOptions } from './index-options.js';
import { resolveIndexOptions } from './index-options.js';
import { pinFaissToOneThread } from './faiss.js';
import { DEFAULT_PER_SHARD_K, MAX_SEARCH_K } from './shard-index.js';
import { pruneItemSnapshots } from './snapshot.js';
import type { ExportedItems, FromItemWorker, ItemShardReadyInfo, ItemShardWorkerConfig, ItemWorkerGauges, ResolvedSearchBatchOptions, ToItemWorker } from './protocol.js';
import { postWithOwnedBytes } from '../../core/transfer.js';
import { ACTOR_STOP_DRAIN_MS, settleWithin } from '../../core/deadline.js';
import { reopenWithBackoff } from '../../core/reopen.js';

/** Options of {@link startItemShard}. */
export interface ItemShardOptions {
  /** Already-connected NATS connection (not closed by stop()). */
  readonly nc: NatsConnection;
  /** Cluster name scoping every subject. */
  readonly cluster: string;
  /** This shard's index s, 0 ≤ s < shardCount. */
  readonly shard: number;
  /** S, the number of virtual item shards. */
  readonly shardCount: number;
  /** World directory (offline/world format) the shard is built from. */
  readonly worldDir: string;
  /** Model directory holding item_tower.onnx and manifest.json. */
  readonly modelDir: string;
  /**
   * Embedding space of modelDir's towers (actors/model/embedding-space.ts `readEmbeddingSpace`):
   * searches that name another space are answered FAILED_PRECONDITION. Default '' (no check).
   */
  readonly space?: string;
  /** Snapshot folder; omit to build every time without writing a snapshot. */
  readonly snapshotDir?: string;
  /** ANN index options (see index-options.ts). Default: 'auto'. */
  readonly index?: IndexOptions;
  /** Requests queued to the worker beyond which new searches get RESOURCE_EXHAUSTED. Default 256. */
  readonly maxInFlight?: number;
  /** Items per item-tower run at build. Default 4096. */
  readonly towerBatchRows?: number;
  /** Searches whose latency is kept for the p50 in stats(). Default 1024. */
  readonly latencyWindow?: number;
  /**
   * After an admin upsert or removal, write a fresh snapshot within this many ms (debounced: one
   * write for a burst; also written at a graceful stop while changes are unsaved). 0 = never: admin
   * changes then survive only an explicit {@link ItemShardHandle.snapshot}. Ignored without
   * `snapshotDir`. Default 30000 ms.
   */
  readonly snapshotAfterChangesMs?: number;
  /** How the worker answers queued searches with shared faiss calls. Default `{ maxQueries: 16 }`. */
  readonly searchBatch?: SearchBatchOptions;
  /**
   * Results the coordinator asks of each shard search (its `perShardK`): an 'auto' nprobe is
   * calibrated for recall within that many (index-options.ts). The node passes its coordinator's
   * setting. Default {@link DEFAULT_PER_SHARD_K}.
   */
  readonly perShardK?: number;
  /**
   * Model versions whose snapshots of this shard {@link ItemShardHandle.pruneSnapshots} keeps after
   * a tower switch: 2 = the served one and the one it replaced (what a restart on the previous
   * model restores), 1 = the served one only, 0 = never remove any (garbage is still removed).
   * Default 2.
   */
  readonly snapshotsKept?: number;
  /**
   * Which NATS subjects the shard joins at start: 'all' (default) = its search subject, the search
   * subject of its embedding space and its admin subject; 'space' = only the space's search subject,
   * for an instance prepared beside the serving one during a tower switch (only coordinators already
   * in its space ask there), which joins the rest with {@link ItemShardHandle.subscribe} when the node
   * flips.
   */
  readonly subscribe?: 'all' | 'space';
  /** Build from another instance's items ({@link ItemShardHandle.exportItems}) instead of the world or a snapshot. */
  readonly seed?: ExportedItems;
}

/** Default of {@link ItemShardOptions.snapshotAfterChangesMs}, ms. */
export const DEFAULT_SNAPSHOT_AFTER_CHANGES_MS = 30_000;

/** Default of {@link ItemShardOptions.snapshotsKept}: the current snapshot and the previous model's. */
export const DEFAULT_SNAPSHOTS_KEPT = 2;


/**
 * Search batching (protocol.ts {@link ResolvedSearchBatchOptions}): searches already queued when the
 * worker gets free share one faiss call; nothing waits for a batch to fill.
 */
export interface SearchBatchOptions {
  /**
   * Most searches per faiss call, 1..{@link MAX_SEARCH_BATCH_QUERIES}; 1 = one call per search.
   * Default {@link DEFAULT_SEARCH_BATCH_MAX_QUERIES}.
   */
  readonly maxQueries?: number;
}

/**
 * Default of {@link SearchBatchOptions.maxQueries}. faiss, one 500k-item shard, IVF1024,PQ64x4fs,RFlat
 * (AVX2 build), nprobe 192, k 200, one thread: 0.58 ms/query alone, 0.47–0.50 at 2–8 per call, 0.39
 * at 16.
 */
export const DEFAULT_SEARCH_BATCH_MAX_QUERIES = 16;
/** Largest {@link SearchBatchOptions.maxQueries}: a batch holds the worker for all of its searches. */
export const MAX_SEARCH_BATCH_QUERIES = 256;

/** {@link ItemShardOptions} after defaults and validation: the worker's config plus the main thread's knobs. */
export interface ResolvedItemShardOptions extends ItemShardWorkerConfig {
  readonly cluster: string;
  readonly subscribe: 'all' | 'space';
  readonly maxInFlight: number;
  readonly latencyWindow: number;
  readonly snapshotsKept: number;
}

function requireInt(name: string, v: unknown, min: number, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TypeError(`option ${name} must be an integer ${max === Infinity ? `>= ${min}` : `in ${min}..${max}`}, got ${String(v)}`);
  }
  return v;
}

function requireString(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`option ${name} must be a non-empty string`);
  return v;
}

function resolveSubscribe(v: unknown): 'all' | 'space' {
  if (v === undefined || v === 'all' || v === 'space') return v ?? 'all';
  throw new TypeError(`option subscribe must be 'all' or 'space', got ${JSON.stringify(v)}`);
}

function optionalSpace(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v !== 'string') throw new TypeError('option space must be a string');
  return v;
}

function resolveSearchBatch(v: unknown): ResolvedSearchBatchOptions {
  if (v === undefined) return { maxQueries: DEFAULT_SEARCH_BATCH_MAX_QUERIES };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError('option searchBatch must be an object');
  for (const key of Object.keys(v)) {
    if (key !== 'maxQueries') throw new TypeError(`option searchBatch.${key} is not a known option`);
  }
  const maxQueries = (v as SearchBatchOptions).maxQueries ?? DEFAULT_SEARCH_BATCH_MAX_QUERIES;
  if (typeof maxQueries !== 'number' || !Number.isInteger(maxQueries) || maxQueries < 1 || maxQueries > MAX_SEARCH_BATCH_QUERIES) {
    throw new TypeError(`option searchBatch.maxQueries must be an integer in 1..${MAX_SEARCH_BATCH_QUERIES}, got ${JSON.stringify(maxQueries)}`);
  }
  return { maxQueries };
}

/** Defaults, then validation (TypeError naming the option), then the resolved type. */
export function resolveItemShardOptions(o: Omit<ItemShardOptions, 'nc'>): ResolvedItemShardOptions {
  const shardCount = requireInt('shardCount', o.shardCount, 1);
  const shard = requireInt('shard', o.shard, 0);
  if (shard >= shardCount) throw new TypeError(`option shard must be < shardCount (${shardCount}), got ${shard}`);
  try {
    validateClusterName(o.cluster);
  } catch (err) {
    throw new TypeError(`option cluster: ${(err as Error).message}`);
  }
  return {
    cluster: o.cluster,
    shard,
    shardCount,
    worldDir: requireString('worldDir', o.worldDir),
    modelDir: requireString('modelDir', o.modelDir),
    space: optionalSpace(o.space),
    snapshotDir: o.snapshotDir === undefined ? undefined : requireString('snapshotDir', o.snapshotDir),
    index: resolveIndexOptions(o.index),
    maxInFlight: requireInt('maxInFlight', o.maxInFlight ?? 256, 1),
    towerBatchRows: requireInt('towerBatchRows', o.towerBatchRows ?? 4096, 1),
    latencyWindow: requireInt('latencyWindow', o.latencyWindow ?? 1024, 1),
    snapshotAfterChangesMs: requireInt('snapshotAfterChangesMs', o.snapshotAfterChangesMs ?? DEFAULT_SNAPSHOT_AFTER_CHANGES_MS, 0),
    snapshotsKept: requireInt('snapshotsKept', o.snapshotsKept ?? DEFAULT_SNAPSHOTS_KEPT, 0, 2),
    searchBatch: resolveSearchBatch(o.searchBatch),
    perShardK: requireInt('perShardK', o.perShardK ?? DEFAULT_PER_SHARD_K, 1, MAX_SEARCH_K),
    subscribe: resolveSubscribe(o.subscribe),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
  };
}

/** Counters and sizes for /metrics. */
export interface ItemShardStats {
  readonly shard: number;
  readonly items: number;
  /** Estimated bytes of index + features (worker heap and faiss). */
  readonly memoryBytes: number;
  /** Searches answered (errors included). */
  readonly searches: number;
  /** Requests dropped because their deadline had passed. */
  readonly dropped: number;
  /** Searches refused with RESOURCE_EXHAUSTED (worker queue full). */
  readonly rejected: number;
  readonly adminRequests: number;
  /** Median in-worker search time over the last `latencyWindow` searches, ms. */
  readonly searchP50Ms?: number;
  readonly inFlight: number;
  readonly restored: boolean;
  /** Times the shard reopened in a fresh worker after its worker died. */
  readonly restarts: number;
  readonly factory: string;
  readonly startup: ItemShardReadyInfo['timings'];
  /** Snapshots written since start: the build's, after admin changes, and on request. */
  readonly snapshotsWritten: number;
  /** Snapshot writes that failed since start. */
  readonly snapshotFailures: number;
  /** Superseded snapshot folders of this shard removed since start (`snapshotsKept`). */
  readonly snapshotsPruned: number;
  /** When the newest snapshot on disk of this shard was written, epoch ms (restored ones count); 0 = none. */
  readonly lastSnapshotAtMs: number;
  /** Live items in that snapshot. */
  readonly lastSnapshotItems: number;
  /** Time the last post-start write held the worker (faiss write + column copy: searches waited), ms. */
  readonly lastSnapshotCaptureMs: number;
  /** Capture to rename of the last post-start write, ms (searches served after the capture part). */
  readonly lastSnapshotWriteMs: number;
  /** Items upserted or removed since the last snapshot capture: what a worker crash now would lose. */
  readonly changesSinceSnapshot: number;
  /** faiss search calls since start, worker restarts included (each answers a batch of searches). */
  readonly searchCalls: number;
  /** Searches answered by those calls; `searchCallQueries / searchCalls` = mean batch size. */
  readonly searchCallQueries: number;
  /** The nprobe searches run at and where it came from (calibrated, rule, configured). */
  readonly nprobe: ItemShardReadyInfo['nprobe'];
}

/**
 * The shard as seen from a coordinator in the same process (actors/coordinator/local-ports.ts):
 * the same request and reply bytes as over NATS, handed to the worker directly, so a co-located
 * search skips the NATS client, nats-server and two socket hops (DESIGN: replicate item shards for
 * throughput, so with `cluster.itemReplicas` "all" every node answers its coordinator's scatter).
 */
export interface LocalItemShard {
  readonly shard: number;
  /**
   * Encoded ShardSearchRequest in, encoded ShardSearchReply out (a reply with a non-OK status is a
   * resolved answer, as over NATS). Rejects with an UpnextError: RESOURCE_EXHAUSTED when
   * `maxInFlight` searches are queued (the caller may try NATS, where a twin may be idle),
   * UNAVAILABLE once stopped, DEADLINE_EXCEEDED when the worker dropped it past its deadline,
   * INTERNAL when the worker died. `request` is copied, never detached.
   */
  search(request: Uint8Array): Promise<Uint8Array>;
  /** Requests queued to this shard's worker now (NATS and local together). */
  inFlight(): number;
}

/** A running item shard. */
export interface ItemShardHandle {
  readonly info: ItemShardReadyInfo;
  /** This shard for a coordinator in the same process; see {@link LocalItemShard}. */
  readonly local: LocalItemShard;
  stats(): ItemShardStats;
  /** Writes a snapshot of the current state (after upserts/removes); resolves to its folder. */
  snapshot(): Promise<string>;
  /**
   * Removes this shard's superseded snapshot folders (snapshot.ts `pruneItemSnapshots`): with
   * `replaced` (the version a tower switch just replaced by this instance's), every version but this
   * instance's and, with `snapshotsKept` 2, `replaced`; without it, only garbage (unfinished writes of
   * dead processes, folders without meta.json). Each removal is logged and counted; never throws.
   * Resolves to the folders removed.
   */
  pruneSnapshots(replaced?: string): Promise<string[]>;
  /**
   * The live items with their counters, taken in order with admin requests (so every change
   * answered before the call is in it): what an instance on other towers is built from.
   */
  exportItems(): Promise<ExportedItems>;
  /** Joins all of the shard's NATS subjects (after `subscribe: 'space'`). Idempotent. */
  subscribe(): void;
  /**
   * Retires an instance replaced by one on other towers: leaves the shared subjects (unstated-space
   * searches and admin) now, keeps answering searches in its own space — coordinators not yet
   * switched still send them — and stops once none has arrived for `idleMs` (or after `maxMs`).
   */
  retire(idleMs: number, maxMs: number): Promise<void>;
  /**
   * With a reason, admin requests are answered UNAVAILABLE with it (a tower switch is copying the
   * items: a change now would miss the copy); undefined accepts them again.
   */
  freezeAdmin(reason: string | undefined): void;
  /** Unsubscribes and terminates the worker. Idempotent. */
  stop(): Promise<void>;
  /** @internal Test hook: makes the worker throw an uncaught error (the shard then reopens). */
  crashForTest(): void;
  /**
   * @internal Test hook: `true` makes the worker leave queued requests waiting (what runs finishes),
   * `false` lets it go on; a test queues a burst in between to see it batched.
   */
  holdForTest(hold: boolean): void;
}

const WORKER_URL = new URL('./worker.js', import.meta.url);

/** Starts the worker, opens (restores or builds) the shard, then subscribes. */
export async function startItemShard(opts: ItemShardOptions): Promise<ItemShardHandle> {
  const o = resolveItemShardOptions(opts);
  pinFaissToOneThread();
  const { worker, info } = await spawnShardWorker(o);
  return new ItemShardImpl(opts.nc, o, worker, info);
}

/** A worker thread with the shard open in it (restored from its snapshot, or built). */
async function spawnShardWorker(o: ResolvedItemShardOptions): Promise<{ worker: Worker; info: ItemShardReadyInfo }> {
  const worker = new Worker(WORKER_URL);
  const info = await new Promise<ItemShardReadyInfo>((resolve, reject) => {
    const onMessage = (m: FromItemWorker) => {
      if (m.type === 'ready') {
        cleanup();
        resolve(m.info);
      } else if (m.type === 'initFailed') {
        cleanup();
        reject(UpnextError.fromStatus(m.status));
      }
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    const init: ToItemWorker = {
      type: 'init',
      config: {
        shard: o.shard,
        shardCount: o.shardCount,
        worldDir: o.worldDir,
        modelDir: o.modelDir,
        space: o.space,
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
        snapshotDir: o.snapshotDir,
        index: o.index,
        towerBatchRows: o.towerBatchRows,
        snapshotAfterChangesMs: o.snapshotAfterChangesMs,
        searchBatch: o.searchBatch,
        perShardK: o.perShardK,
      },
    };
    worker.postMessage(init);
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });
  return { worker, info };
}



function gaugesOf(info: ItemShardReadyInfo): ItemWorkerGauges {
  return {
    items: info.items,
    memoryBytes: info.memoryBytes,
    changesSinceSnapshot: info.changesSinceSnapshot,
  };
}

type Pending =
  | { readonly kind: 'msg'; readonly msg: Msg }
  | { readonly kind: 'local'; resolve(reply: Uint8Array): void; reject(err: UpnextError): void }
  | { readonly kind: 'snapshot'; resolve(path: string): void; reject(err: Error): void }
  | { readonly kind: 'export'; resolve(items: ExportedItems): void; reject(err: Error): void };

class ItemShardImpl implements ItemShardHandle {
  readonly info: ItemShardReadyInfo;
  readonly local: LocalItemShard;
  #o: ResolvedItemShardOptions;
  /** Which subjects the shard is in (rejoined after a worker restart). */
  #subscribed: 'all' | 'space';
  #adminFrozen: string | undefined;
  /** When the last search arrived (NATS or in-process), for {@link ItemShardHandle.retire}. */
  #lastSearchAtMs = Date.now();
  readonly #nc: NatsConnection;
  #worker: Worker;
  #subs: Subscription[] = [];
  #restarts = 0;
  #recovering: Promise<void> | undefined;
  readonly #pending = new Map<number, Pending>();
  readonly #latencies: Float64Array;
  #latencyCount = 0;
  #nextId = 1;
  #gauges: ItemWorkerGauges;
  /** faiss search calls and the searches they answered (counted here, so a worker restart keeps them). */
  #searchCalls = 0;
  #searchCallQueries = 0;
  #searches = 0;
  #dropped = 0;
  #rejected = 0;
  #admin = 0;
  #snapshotsWritten = 0;
  #snapshotFailures = 0;
  #snapshotsPruned = 0;
  #pruning: Promise<unknown> = Promise.resolve();
  #lastSnapshotAtMs = 0;
  #lastSnapshotItems = 0;
  #lastSnapshotCaptureMs = 0;
  #lastSnapshotWriteMs = 0;
  #stopped: Promise<void> | undefined;
  /** Set when the worker died: local searches fail at once instead of queueing to a dead thread. */
  #dead: StatusObject | undefined;

  constructor(nc: NatsConnection, o: ResolvedItemShardOptions, worker: Worker, info: ItemShardReadyInfo) {
    // A reopen after a crash restores the snapshot this build wrote, never the (older) seed again.
    this.#o = { ...o, seed: undefined };
    this.#subscribed = o.subscribe;
    this.#nc = nc;
    this.#worker = worker;
    this.info = info;
    this.local = { shard: o.shard, search: (request) => this.#searchLocal(request), inFlight: () => this.#pending.size };
    this.#gauges = gaugesOf(info);
    this.#latencies = new Float64Array(o.latencyWindow);
    this.#opened(info);
    this.#attach(worker);
  }

  /** Counts the build's snapshot and logs a refused one (the shard was rebuilt instead). */
  #opened(info: ItemShardReadyInfo): void {
    if (!info.restored && info.snapshotPath !== undefined) this.#snapshotsWritten++;
    this.#lastSnapshotAtMs = info.snapshotAtMs;
    this.#lastSnapshotItems = info.snapshotItems;
    if (info.snapshotRefused !== undefined) {
      process.stderr.write(`${JSON.stringify({ event: 'item_shard_snapshot_refused', shard: this.#o.shard, reason: info.snapshotRefused })}\n`);
    }
    const c = info.nprobe.calibration;
    if (!info.restored && c !== null) {
      // One line per build: what the operator checks before trusting recall (docs/operations.md).
      const event = c.met ? 'item_shard_nprobe_calibrated' : 'item_shard_recall_target_missed';
      process.stderr.write(`${JSON.stringify({ event, shard: this.#o.shard, nprobe: info.nprobe.nprobe, recall: Number(c.recall.toFixed(4)), lower: Number(c.lower.toFixed(4)), target: c.target, k: c.k, fetch: c.fetch, queries: c.queries, ms: Math.round(c.ms), tried: c.points.map((p) => `${p.nprobe}:${p.recall.toFixed(3)}`).join(' ') })}\n`);
    }
  }

  /** Listens to `worker` and (re)joins the shard's NATS queue group when subscribed. */
  #attach(worker: Worker): void {
    worker.on('message', (m: FromItemWorker) => this.#onWorker(m));
    worker.on('error', (err) => this.#onWorkerDied(worker, err));
    this.#joinNats();
  }

  subscribe(): void {
    if (this.#subscribed === 'all' || this.#stopped !== undefined) return;
    this.#subscribed = 'all';
    if (this.#dead !== undefined) return; // the reopen joins
    // Added beside the space subject, which stays: no moment without a responder there.
    this.#subs.push(...this.#joinShared());
  }

  freezeAdmin(reason: string | undefined): void {
    this.#adminFrozen = reason;
  }

  exportItems(): Promise<ExportedItems> {
    if (this.#stopped !== undefined) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, `item shard ${this.#o.shard} stopped`));
    if (this.#dead !== undefined) return Promise.reject(UpnextError.fromStatus(this.#dead));
    return new Promise<ExportedItems>((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { kind: 'export', resolve, reject });
      this.#post({ type: 'exportItems', id });
    });
  }

  #joinNats(): void {
    const o = this.#o;
    const queue = Subjects.queueGroup(o.cluster, 'item', o.shard);
    // The replicas of this shard on the same towers (see Subjects.itemSearchInSpace).
    const inSpace =
      o.space !== ''
        ? [this.#nc.subscribe(Subjects.itemSearchInSpace(o.cluster, o.shard, o.space), { queue: `${queue}-${o.space}`, callback: (err, msg) => void (err === null && this.#onSearch(msg)) })]
        : [];
    this.#subs = [...inSpace, ...(this.#subscribed === 'all' ? this.#joinShared() : [])];
  }

  /** The subjects every replica of the shard shares, whatever its towers: unstated-space searches and admin. */
  #joinShared(): Subscription[] {
    const o = this.#o;
    const queue = Subjects.queueGroup(o.cluster, 'item', o.shard);
    return [
      this.#nc.subscribe(Subjects.itemSearch(o.cluster, o.shard), { queue, callback: (err, msg) => void (err === null && this.#onSearch(msg)) }),
      this.#nc.subscribe(Subjects.itemAdmin(o.cluster, o.shard), { queue, callback: (err, msg) => void (err === null && this.#onAdmin(msg)) }),
    ];
  }

  /**
   * The worker died: leave the queue group (NATS sends this shard's searches to a live twin), fail
   * what it held, and reopen the shard in a fresh worker — restored from its snapshot, so admin
   * changes made after the last snapshot are lost, as on a node restart — retrying with backoff
   * until it serves again or the shard stops. Local searches meanwhile fail INTERNAL at once.
   */
  #onWorkerDied(worker: Worker, err: Error): void {
    if (worker !== this.#worker || this.#dead !== undefined) return;
    this.#dead = { code: StatusCode.INTERNAL, message: `item-shard worker crashed: ${err.message}` };
    for (const s of this.#subs) s.unsubscribe();
    this.#subs = [];
    this.#failAll(this.#dead);
    if (this.#stopped !== undefined) return;
    const log = (e: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ ...e, shard: this.#o.shard })}\n`);
    log({ event: 'item_shard_reopening', reason: err.message });
    this.#recovering = (async () => {
      const opened = await reopenWithBackoff(
        () => spawnShardWorker(this.#o),
        () => this.#stopped !== undefined,
        (e, retryInMs) => log({ event: 'item_shard_reopen_failed', message: e instanceof Error ? e.message : String(e), retryInMs }),
      );
      if (opened === undefined) return;
      if (this.#stopped !== undefined) {
        await opened.worker.terminate();
        return;
      }
      this.#worker = opened.worker;
      this.#gauges = gaugesOf(opened.info);
      this.#opened(opened.info);
      this.#dead = undefined;
      this.#restarts++;
      this.#attach(opened.worker);
      log({ event: 'item_shard_reopened', restarts: this.#restarts, restored: opened.info.restored, items: opened.info.items });
    })().finally(() => {
      this.#recovering = undefined;
    });
  }

  /** @internal Test hook: makes the worker throw an uncaught error. */
  crashForTest(): void {
    this.#worker.postMessage({ type: 'crash' } satisfies ToItemWorker);
  }


  /** @internal Test hook: see {@link ItemShardHandle.holdForTest}. */
  holdForTest(hold: boolean): void {
    this.#worker.postMessage({ type: 'holdForTest', hold } satisfies ToItemWorker);
  }

  #queueFull(): StatusObject | undefined {
    if (this.#pending.size < this.#o.maxInFlight) return undefined;
    this.#rejected++;
    return { code: StatusCode.RESOURCE_EXHAUSTED, message: `item shard ${this.#o.shard} has ${this.#pending.size} requests queued` };
  }

  async retire(idleMs: number, maxMs: number): Promise<void> {
    const o = this.#o;
    const shared = new Set([Subjects.itemSearch(o.cluster, o.shard), Subjects.itemAdmin(o.cluster, o.shard)]);
    const keep: Subscription[] = [];
    for (const s of this.#subs) {
      if (shared.has(s.getSubject())) await s.drain().catch(() => s.unsubscribe());
      else keep.push(s);
    }
    this.#subs = keep;
    this.#subscribed = 'space';
    const end = Date.now() + maxMs;
    while (this.#stopped === undefined && Date.now() < end && Date.now() - this.#lastSearchAtMs < idleMs) {
      await new Promise((r) => setTimeout(r, Math.min(idleMs, 1000)));
    }
    await this.stop();
  }

  #onSearch(msg: Msg): void {
    this.#lastSearchAtMs = Date.now();
    const full = this.#queueFull();
    if (full !== undefined) {
      msg.respond(Codecs.shardSearchReply.encode({ status: statusToMsg(full), shard: this.#o.shard, candidates: null, shardSize: this.#gauges.items, searchMs: 0 }));
      return;
    }
    const id = this.#nextId++;
    this.#pending.set(id, { kind: 'msg', msg });
    this.#post({ type: 'search', id, request: msg.data });
  }

  #searchLocal(request: Uint8Array): Promise<Uint8Array> {
    this.#lastSearchAtMs = Date.now();
    if (this.#stopped !== undefined) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, `item shard ${this.#o.shard} stopped`));
    if (this.#dead !== undefined) return Promise.reject(UpnextError.fromStatus(this.#dead));
    const full = this.#queueFull();
    if (full !== undefined) return Promise.reject(UpnextError.fromStatus(full));
    return new Promise<Uint8Array>((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { kind: 'local', resolve, reject });
      this.#post({ type: 'search', id, request });
    });
  }

  #onAdmin(msg: Msg): void {
    this.#admin++;
    if (this.#adminFrozen !== undefined) {
      msg.respond(
        Codecs.itemAdminReply.encode({ status: statusToMsg({ code: StatusCode.UNAVAILABLE, message: this.#adminFrozen }), upserted: 0, removed: 0, shardSize: this.#gauges.items }),
      );
      return;
    }
    const id = this.#nextId++;
    this.#pending.set(id, { kind: 'msg', msg });
    this.#post({ type: 'admin', id, request: msg.data });
  }

  #post(m: ToItemWorker): void {
    if (m.type === 'search' || m.type === 'admin') {
      // msg.data is a view into the NATS socket chunk: clone would copy the whole chunk.
      postWithOwnedBytes(this.#worker, m, 'request');
      return;
    }
    this.#worker.postMessage(m);
  }

  #onWorker(m: FromItemWorker): void {
    switch (m.type) {
      case 'reply': {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        this.#gauges = m.gauges;
        if (m.batchQueries !== undefined) {
          this.#searchCalls++;
          this.#searchCallQueries += m.batchQueries;
        }
        if (p === undefined || p.kind === 'snapshot' || p.kind === 'export') return;
        if (m.reply === null) {
          this.#dropped++;
          if (p.kind === 'local') p.reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, `item shard ${this.#o.shard} dropped a search past its deadline`));
          return;
        }
        if (m.searchMs > 0) {
          this.#searches++;
          this.#latencies[this.#latencyCount++ % this.#latencies.length] = m.searchMs;
        }
        // Answered even while stopping: a stop drains what the shard already took.
        if (p.kind === 'local') p.resolve(m.reply);
        else p.msg.respond(m.reply);
        return;
      }
      case 'snapshotDone': {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (p?.kind !== 'snapshot') return;
        if (m.path !== null) p.resolve(m.path);
        else p.reject(UpnextError.fromStatus(m.status ?? { code: StatusCode.INTERNAL, message: 'snapshot failed' }));
        return;
      }
      case 'itemsExported': {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (p?.kind === 'export') p.resolve(m.items);
        return;
      }
      case 'snapshotWritten':
        this.#gauges = m.gauges;
        this.#snapshotsWritten++;
        this.#lastSnapshotAtMs = m.atMs;
        this.#lastSnapshotItems = m.items;
        this.#lastSnapshotCaptureMs = m.captureMs;
        this.#lastSnapshotWriteMs = m.writeMs;
        return;
      case 'snapshotFailed':
        this.#gauges = m.gauges;
        this.#snapshotFailures++;
        process.stderr.write(`${JSON.stringify({ event: 'item_shard_snapshot_failed', shard: this.#o.shard, trigger: m.trigger, message: m.status.message })}\n`);
        return;
      case 'ready':
      case 'initFailed':
        return;
    }
  }

  #failAll(status: StatusObject): void {
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      if (p.kind !== 'msg') p.reject(UpnextError.fromStatus(status));
    }
  }

  stats(): ItemShardStats {
    const n = Math.min(this.#latencyCount, this.#latencies.length);
    const base = {
      shard: this.#o.shard,
      items: this.#gauges.items,
      memoryBytes: this.#gauges.memoryBytes,
      searches: this.#searches,
      dropped: this.#dropped,
      rejected: this.#rejected,
      adminRequests: this.#admin,
      inFlight: this.#pending.size,
      restored: this.info.restored,
      restarts: this.#restarts,
      factory: this.info.factory,
      startup: this.info.timings,
      snapshotsWritten: this.#snapshotsWritten,
      snapshotFailures: this.#snapshotFailures,
      snapshotsPruned: this.#snapshotsPruned,
      lastSnapshotAtMs: this.#lastSnapshotAtMs,
      lastSnapshotItems: this.#lastSnapshotItems,
      lastSnapshotCaptureMs: this.#lastSnapshotCaptureMs,
      lastSnapshotWriteMs: this.#lastSnapshotWriteMs,
      changesSinceSnapshot: this.#gauges.changesSinceSnapshot,
      searchCalls: this.#searchCalls,
      searchCallQueries: this.#searchCallQueries,
      nprobe: this.info.nprobe,
    };
    if (n === 0) return base;
    const sorted = this.#latencies.slice(0, n).sort();
    return { ...base, searchP50Ms: sorted[Math.floor(n / 2)] ?? 0 };
  }

  snapshot(): Promise<string> {
    if (this.#stopped !== undefined) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, 'item shard stopped'));
    return this.#requestSnapshot();
  }

  #requestSnapshot(): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { kind: 'snapshot', resolve, reject });
      this.#post({ type: 'snapshot', id });
    });
  }

  pruneSnapshots(replaced?: string): Promise<string[]> {
    const o = this.#o;
    const dir = o.snapshotDir;
    if (dir === undefined) return Promise.resolve([]);
    const own = this.info.modelVersion;
    const keepVersions =
      replaced === undefined || o.snapshotsKept === 0 ? undefined : new Set(o.snapshotsKept >= 2 ? [own, replaced] : [own]);
    // One pass at a time per shard; stop() waits for the one in flight.
    const pass = this.#pruning.then(() =>
      pruneItemSnapshots(dir, { shard: o.shard, shardCount: o.shardCount }, keepVersions === undefined ? {} : { keepVersions }).then((removed) => {
        this.#snapshotsPruned += removed.length;
        if (removed.length > 0) process.stderr.write(`${JSON.stringify({ event: 'item_shard_snapshots_pruned', shard: o.shard, kept: keepVersions === undefined ? 'all versions' : [...keepVersions], removed })}\n`);
        return removed;
      }),
    );
    this.#pruning = pass.catch(() => undefined);
    return pass.catch(() => []);
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      // Graceful (a move's drain step): leave the queue group, so NATS sends new searches to a
      // twin, then answer the searches already taken before the worker goes.
      await Promise.all(this.#subs.map((s) => s.drain().catch(() => s.unsubscribe())));
      await settleWithin(() => ![...this.#pending.values()].some((p) => p.kind !== 'snapshot'), ACTOR_STOP_DRAIN_MS);
      // Admin changes the debounce has not written yet: write them now, so a graceful restart or a
      // move loses nothing (a failure is counted and logged by #onWorker; the stop goes on).
      const o = this.#o;
      if (this.#dead === undefined && o.snapshotDir !== undefined && o.snapshotAfterChangesMs > 0 && this.#gauges.changesSinceSnapshot > 0) {
        await this.#requestSnapshot().catch(() => undefined);
      }
      this.#failAll({ code: StatusCode.UNAVAILABLE, message: 'item shard stopped' });
      await this.#recovering; // a reopen in progress sees #stopped and ends what it started
      for (const s of this.#subs) s.unsubscribe();
      await this.#worker.terminate();
      // A prune in flight (main thread, not the worker) may finish after the stop: bounded wait,
      // since a folder it leaves half removed is already a `.trash-…` one that the next pass removes.
      let pruned = false;
      void this.#pruning.then(() => (pruned = true));
      await settleWithin(() => pruned, ACTOR_STOP_DRAIN_MS);
    })();
    return this.#stopped;
  }
}
