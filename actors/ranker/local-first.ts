/**
 * The coordinator's ranking path when its own node process runs a ranker replica: score on that
 * replica's batcher and workers directly (no gRPC, no protobuf, the row buffer transferred to the
 * worker thread instead of copied), and call the other replicas over KServe v2 gRPC
 * ({@link RankerClient}, power of two choices) only when the local one is missing, overloaded or
 * failing.
 *
 * Why: one Recommend ranks ~550 rows × 80 float32 ≈ 176 KB. Over gRPC that exceeds HTTP/2's 64 KB
 * initial window, and grpc-js cannot raise a server's receive window, so the call waits on
 * WINDOW_UPDATE round trips through two busy event loops, plus protobuf framing and copies
 * (docs/capacity.md measured the ranking stage at p50 5.2 / p99 45 ms for ~0.5 ms of model time).
 *
 * Overload is a pure function of the local replica's load ({@link localOverloaded}); the
 * {@link LocalFirstRankerScorer} decides per request and keeps per-path counters for /metrics.
 */
import type { Deadline } from '../../core/deadline.js';
import { StatusCode, UpnextError, toStatus } from '../../core/status.js';
import type { OwnedScoreOutcome, RankerLoad } from './batcher.js';

/** What the local-first scorer needs of the node's own replica (RankerHandle.local provides it). */
export interface LocalRanker {
  /** The replica's KServe address (host:port), as advertised in the shard map. */
  readonly address: string;
  /** Scores rows it takes ownership of; never rejects (see RankerScorer.scoreOwned). */
  scoreOwned(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<OwnedScoreOutcome>;
  /** Queue depth and batches in flight now. */
  load(): RankerLoad;
}

/** Scores from a remote replica (RankerClient satisfies this). */
export interface RemoteRankerScores {
  readonly pClick: Float32Array;
  readonly watchLog1p: Float32Array;
  readonly replica: string;
}

/** The remote replica set (RankerClient satisfies this). */
export interface RemoteRanker {
  /** Rejects with an UpnextError (UNAVAILABLE when there is no replica, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED…). */
  score(rows: Float32Array, nRows: number, deadline: Deadline): Promise<RemoteRankerScores>;
}

/** Which path answered. */
export type RankerPath = 'local' | 'remote';

/** Scores of one request, with the path that produced them. */
export interface PathRankerScores extends RemoteRankerScores {
  readonly path: RankerPath;
}

/**
 * Whether the local replica is too busy to queue on (pure; from its batcher's load): every worker
 * slot is busy AND the rows already waiting fill the next batch by themselves
 * (`queuedRows >= maxBatchRows`, 1024 rows by default: about two coordinator requests). A new
 * request would then wait for the running batches and a whole batch more before its own run starts
 * (≥ 2 runs; ≈ 1.1 ms each for 550 rows of the default MMoE, measured), and the queue only grows
 * from there: a remote replica is the better bet and spreads the load. Below that, the local wait
 * is at most about two runs, less than the gRPC path's own cost (p50 ≈ 4.4 ms and ≈ 2.3 ms more CPU
 * per call, measured with loadtest/bench/ranker-path.ts), so local wins even though it queues.
 */
export function localOverloaded(load: RankerLoad): boolean {
  return load.inFlightBatches >= load.concurrency && load.queuedRows >= load.maxBatchRows;
}

/** Local failures worth one remote try: the same rows would fail the same way for these. */
const NOT_RETRIED = new Set<StatusCode>([StatusCode.INVALID_ARGUMENT, StatusCode.DEADLINE_EXCEEDED]);

/** Options of {@link LocalFirstRankerScorer}. */
export interface LocalFirstRankerOptions {
  /**
   * The node's own replica now, or undefined when it runs none (read per request: the shard map
   * may start or stop it while the coordinator runs). Required.
   */
  readonly local: () => LocalRanker | undefined;
  /** The other replicas, over gRPC (a RankerClient whose addresses exclude the local one). Required. */
  readonly remote: RemoteRanker;
  /** Whether any remote replica exists now (other than the local one). Required. */
  readonly hasRemote: () => boolean;
  /** One remote try after a local failure only when at least this much of the deadline is left, ms. Default 2. */
  readonly minRemoteRetryMs?: number;
}

/** Per-path counters (the coordinator's stats().rankerPaths, hence /metrics). */
export interface LocalFirstRankerStats {
  /** Requests answered by the node's own replica (in-process). */
  readonly localAnswered: number;
  /** Requests answered by a remote replica (gRPC). */
  readonly remoteAnswered: number;
  /** Requests sent to a remote replica, by why. */
  readonly remoteReasons: { readonly noLocal: number; readonly overloaded: number; readonly localFailed: number };
  /** Local calls that failed (retried remotely or not). */
  readonly localFailures: number;
  /** Requests that failed on every path they tried. */
  readonly failed: number;
}

/**
 * A RankerScorer (the coordinator's port, actors/coordinator/ports.ts) that prefers the node-local
 * replica. Takes ownership of `rows` (they may be detached after score()). Per request: no local
 * replica → remote; {@link localOverloaded} and a remote replica exists → remote; else local, and
 * on the local path a failure other than INVALID_ARGUMENT or
 * DEADLINE_EXCEEDED gets one remote try within the same deadline, provided the rows came back
 * intact (they do unless a worker thread died holding them), a remote replica exists and at least
 * `minRemoteRetryMs` is left. Runs no timer of its own: the deadline goes down to the batcher
 * (drops expired requests) and to gRPC, and the pipeline's stage timer owns the wait.
 */
export class LocalFirstRankerScorer {
  readonly #local: () => LocalRanker | undefined;
  readonly #remote: RemoteRanker;
  readonly #hasRemote: () => boolean;
  readonly #minRemoteRetryMs: number;
  #localAnswered = 0;
  #remoteAnswered = 0;
  #noLocal = 0;
  #overloaded = 0;
  #localFailed = 0;
  #localFailures = 0;
  #failed = 0;

  constructor(opts: LocalFirstRankerOptions) {
    if (typeof opts?.local !== 'function') throw new TypeError('options.local must be a function returning the local ranker or undefined');
    if (typeof opts.remote?.score !== 'function') throw new TypeError('options.remote must have a score() method');
    if (typeof opts.hasRemote !== 'function') throw new TypeError('options.hasRemote must be a function');
    const minRemoteRetryMs = opts.minRemoteRetryMs ?? 2;
    if (typeof minRemoteRetryMs !== 'number' || !(minRemoteRetryMs >= 0)) {
      throw new TypeError(`options.minRemoteRetryMs must be a non-negative number, got ${String(minRemoteRetryMs)}`);
    }
    this.#local = opts.local;
    this.#remote = opts.remote;
    this.#hasRemote = opts.hasRemote;
    this.#minRemoteRetryMs = minRemoteRetryMs;
  }

  /**
   * Scores `nRows` rows (rankerRowWidth features each), taking ownership of `rows`. Resolves with the
   * scores and the path that produced them; rejects with an UpnextError (the local error when no
   * remote try was possible, else the remote one; DEADLINE_EXCEEDED when the deadline had passed).
   */
  async score(rows: Float32Array, nRows: number, deadline: Deadline): Promise<PathRankerScores> {
    if (deadline.expired()) {
      this.#failed++;
      throw new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'ranking deadline passed before the call');
    }
    const local = this.#local();
    if (local === undefined) {
      this.#noLocal++;
      return this.#callRemote(rows, nRows, deadline);
    }
    // Without a remote replica to go to, the local one serves whatever its load: its own queue
    // bound (RESOURCE_EXHAUSTED) still protects it.
    if (localOverloaded(local.load()) && this.#hasRemote()) {
      this.#overloaded++;
      return this.#callRemote(rows, nRows, deadline);
    }
    const outcome = await local.scoreOwned(rows, nRows, deadline);
    if (outcome.kind === 'scored') {
      this.#localAnswered++;
      return { pClick: outcome.outputs.pClick, watchLog1p: outcome.outputs.watchLog1p, replica: local.address, path: 'local' };
    }
    this.#localFailures++;
    const retry = !NOT_RETRIED.has(outcome.error.code) && this.#hasRemote() && deadline.remainingMs() >= this.#minRemoteRetryMs;
    if (!retry || outcome.rows === undefined) {
      this.#failed++;
      throw outcome.error;
    }
    this.#localFailed++;
    return this.#callRemote(outcome.rows, nRows, deadline);
  }

  stats(): LocalFirstRankerStats {
    return {
      localAnswered: this.#localAnswered,
      remoteAnswered: this.#remoteAnswered,
      remoteReasons: { noLocal: this.#noLocal, overloaded: this.#overloaded, localFailed: this.#localFailed },
      localFailures: this.#localFailures,
      failed: this.#failed,
    };
  }

  async #callRemote(rows: Float32Array, nRows: number, deadline: Deadline): Promise<PathRankerScores> {
    try {
      const r = await this.#remote.score(rows, nRows, deadline);
      this.#remoteAnswered++;
      return { pClick: r.pClick, watchLog1p: r.watchLog1p, replica: r.replica, path: 'remote' };
    } catch (err) {
      this.#failed++;
      throw err instanceof UpnextError ? err : UpnextError.fromStatus(toStatus(err));
    }
  }
}
