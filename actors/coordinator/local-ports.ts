/**
 * Local-first retrieval and user state: when the coordinator's own node process hosts the item
 * shard (or the user's partition), hand it the request bytes directly instead of publishing them to
 * NATS. The bytes are the NATS request and reply, unchanged, so both paths run the same actor code
 * and answer alike; the local path only skips the NATS client on both ends, nats-server and two
 * socket hops per call.
 *
 * Why: DESIGN §2 replicates item shards for throughput, so with `cluster.itemReplicas` "all" every
 * node holds every shard and the whole scatter of a Recommend stays in its process. The profile at
 * 100 req/s had NATS-related work (nats-server, socket writes, the client's parsing) at a large share
 * of the per-request CPU left after faiss and ONNX (docs/capacity.md). User partitions are not
 * replicated everywhere (100M users do not fit one node), so only the requests whose partition is
 * on this node take the local path; the rest go over NATS as before.
 *
 * Per call: no local actor → NATS. Local actor with `overloadedAt` or more requests already queued →
 * NATS (the queue group may pick an idle twin; with no twin NATS delivers to the same actor, whose
 * own bound still protects it). Else local, and a local rejection of RESOURCE_EXHAUSTED,
 * UNAVAILABLE (stopped: a shard move in progress) or INTERNAL (dead worker) gets one NATS try
 * within the same deadline. A reply carrying a non-OK status is an answer, as over NATS.
 */
import type { Deadline } from '../../core/deadline.js';
import type { RequestContext } from '../../core/events.js';
import { userPartitionOf } from '../../core/hash.js';
import { StatusCode, UpnextError, toStatus } from '../../core/status.js';
import type { ShardSearchReplyMsg, ShardSearchRequestMsg, UserStateReplyMsg } from '../../protos/codec.js';
import { Codecs } from '../../protos/codec.js';
import { encodeShardSearchRequest, encodeUserStateRequest, throwIfStatus } from './nats-ports.js';
import type { ShardSearcher, UserStateSource, WantedSpace } from './ports.js';

/** What the coordinator needs of an item shard in its own process (ItemShardHandle.local provides it). */
export interface InProcessItemShard {
  /** Encoded ShardSearchRequest → encoded ShardSearchReply; rejects with an UpnextError. */
  search(request: Uint8Array): Promise<Uint8Array>;
  /** Requests queued to the shard's worker now. */
  inFlight(): number;
}

/** What the coordinator needs of a user partition in its own process (UserPartitionHandle.local provides it). */
export interface InProcessUserPartition {
  /** Encoded UserStateRequest → encoded UserStateReply; rejects with an UpnextError. */
  get(request: Uint8Array): Promise<Uint8Array>;
  /** Requests in flight in the partition now. */
  inFlight(): number;
}

/** Per-path counters of one kind of actor (the coordinator's stats().localPaths, hence /metrics). */
export interface LocalPathStats {
  /** Calls answered in-process. */
  readonly local: number;
  /** Calls sent over NATS, by why. */
  readonly nats: { readonly noLocal: number; readonly overloaded: number; readonly localFailed: number };
}

/**
 * Default local queue depth from which a call goes over NATS instead (config
 * `coordinator.localOverloadedAt`). An item-shard search takes ~1 ms of one worker thread (AVX2
 * build, 500k items): 8 queued is ~8 ms of wait, more than the NATS detour costs (~1 ms), so past
 * it a twin is the better bet. Below it local wins even though it queues.
 */
export const LOCAL_OVERLOADED_AT = 8;

/** Local failures worth one NATS try: a twin (or the same actor, restarted) may answer. */
const RETRIED = new Set<StatusCode>([StatusCode.RESOURCE_EXHAUSTED, StatusCode.UNAVAILABLE, StatusCode.INTERNAL]);

/** One NATS try after a local failure only when at least this much of the deadline is left, ms. */
const MIN_RETRY_MS = 2;

function overloadThreshold(v: number | undefined): number {
  const n = v ?? LOCAL_OVERLOADED_AT;
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`options.overloadedAt must be a positive integer, got ${String(v)}`);
  return n;
}

class PathCounter {
  local = 0;
  noLocal = 0;
  overloaded = 0;
  localFailed = 0;
  stats(): LocalPathStats {
    return { local: this.local, nats: { noLocal: this.noLocal, overloaded: this.overloaded, localFailed: this.localFailed } };
  }
}

/**
 * Runs `viaLocal` when the in-process actor exists and is not overloaded, else (or after a
 * retryable local failure with time left) `viaNats`.
 */
async function localFirst<A extends { inFlight(): number }, R>(
  actor: A | undefined,
  overloadedAt: number,
  counter: PathCounter,
  deadline: Deadline,
  viaLocal: (a: A) => Promise<R>,
  viaNats: () => Promise<R>,
): Promise<R> {
  if (actor === undefined) {
    counter.noLocal++;
    return viaNats();
  }
  if (actor.inFlight() >= overloadedAt) {
    counter.overloaded++;
    return viaNats();
  }
  let result: R;
  try {
    result = await viaLocal(actor);
  } catch (err) {
    const status = toStatus(err);
    if (!RETRIED.has(status.code) || deadline.remainingMs() < MIN_RETRY_MS) throw err instanceof UpnextError ? err : UpnextError.fromStatus(status);
    counter.localFailed++;
    return viaNats();
  }
  counter.local++;
  return result;
}

/** Options of {@link LocalFirstShardSearcher}. */
export interface LocalFirstShardSearcherOptions {
  /**
   * This process's replica of shard `s` in embedding space `space` now, or undefined (read per call:
   * shard moves and tower switches start and stop them).
   */
  readonly local: (shard: number, space: string) => InProcessItemShard | undefined;
  /** Every shard over NATS (NatsShardSearcher). */
  readonly nats: ShardSearcher;
  /** Queued requests on the local replica from which NATS is used instead. Default {@link LOCAL_OVERLOADED_AT}. */
  readonly overloadedAt?: number;
}

/** A ShardSearcher that searches the shards hosted by its own process in-process, the rest over NATS. */
export class LocalFirstShardSearcher implements ShardSearcher {
  readonly #local: (shard: number, space: string) => InProcessItemShard | undefined;
  readonly #nats: ShardSearcher;
  readonly #overloadedAt: number;
  readonly #counter = new PathCounter();

  constructor(opts: LocalFirstShardSearcherOptions) {
    if (typeof opts?.local !== 'function') throw new TypeError('options.local must be a function of the shard');
    if (typeof opts.nats?.search !== 'function') throw new TypeError('options.nats must have a search() method');
    this.#local = opts.local;
    this.#nats = opts.nats;
    this.#overloadedAt = overloadThreshold(opts.overloadedAt);
  }

  search(shard: number, req: ShardSearchRequestMsg, deadline: Deadline): Promise<ShardSearchReplyMsg> {
    return localFirst(
      this.#local(shard, req.space ?? ''),
      this.#overloadedAt,
      this.#counter,
      deadline,
      async (a) => {
        const reply = Codecs.shardSearchReply.decode(await a.search(encodeShardSearchRequest(req)));
        throwIfStatus(`local item shard ${shard}`, reply.status);
        return reply;
      },
      () => this.#nats.search(shard, req, deadline),
    );
  }

  stats(): LocalPathStats {
    return this.#counter.stats();
  }
}

/** Options of {@link LocalFirstUserStateSource}. */
export interface LocalFirstUserStateSourceOptions {
  /** This process's replica of partition `p` now, or undefined. */
  readonly local: (partition: number) => InProcessUserPartition | undefined;
  /** Every partition over NATS (NatsUserStateSource). */
  readonly nats: UserStateSource;
  /** P, to find the user's partition. */
  readonly partitions: number;
  /** Requests in flight in the local partition from which NATS is used instead. Default {@link LOCAL_OVERLOADED_AT}. */
  readonly overloadedAt?: number;
}

/** A UserStateSource that reads partitions hosted by its own process in-process, the rest over NATS. */
export class LocalFirstUserStateSource implements UserStateSource {
  readonly #local: (partition: number) => InProcessUserPartition | undefined;
  readonly #nats: UserStateSource;
  readonly #partitions: number;
  readonly #overloadedAt: number;
  readonly #counter = new PathCounter();

  constructor(opts: LocalFirstUserStateSourceOptions) {
    if (typeof opts?.local !== 'function') throw new TypeError('options.local must be a function of the partition');
    if (typeof opts.nats?.get !== 'function') throw new TypeError('options.nats must have a get() method');
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1) throw new TypeError(`options.partitions must be a positive integer, got ${String(opts.partitions)}`);
    this.#local = opts.local;
    this.#nats = opts.nats;
    this.#partitions = opts.partitions;
    this.#overloadedAt = overloadThreshold(opts.overloadedAt);
  }

  get(userId: number, context: RequestContext, deadline: Deadline, want?: WantedSpace): Promise<UserStateReplyMsg> {
    const partition = userPartitionOf(userId, this.#partitions);
    return localFirst(
      this.#local(partition),
      this.#overloadedAt,
      this.#counter,
      deadline,
      async (a) => {
        const reply = Codecs.userStateReply.decode(await a.get(encodeUserStateRequest(userId, context, deadline, want)));
        throwIfStatus(`local user partition ${partition}`, reply.status);
        return reply;
      },
      () => this.#nats.get(userId, context, deadline, want),
    );
  }

  stats(): LocalPathStats {
    return this.#counter.stats();
  }
}
