/**
 * Dynamic batching: concurrent score requests (each n rows × F features) are concatenated into one
 * ONNX Runtime run, and the outputs are split back per request. Pure logic: the model runner, the
 * clock and the timer are injected, so unit tests drive it without threads or sleeping.
 *
 * Policy (Triton's dynamic batcher, simplified):
 * - a batch is dispatched when a runner slot is free AND (the waiting rows fill `maxBatchRows`, or
 *   the oldest waiting request has waited `maxDelayMs`, or `maxDelayMs` is 0);
 * - while every slot is busy, requests keep queueing, so under load batches grow by themselves;
 * - a batch takes whole requests from the head of the queue (FIFO) up to `maxBatchRows`; a single
 *   request larger than that runs alone rather than being split (the coordinator sends ≈500 rows);
 * - rows waiting (not yet dispatched) are bounded by `maxQueueRows`; a request that would exceed it
 *   fails RESOURCE_EXHAUSTED at once, so the coordinator degrades instead of queueing without bound;
 * - a request whose deadline passed while it waited is dropped with DEADLINE_EXCEEDED, never run.
 */
import { spansBuffer } from '../../core/transfer.js';
import type { Clock } from '../../core/clock.js';
import type { Deadline } from '../../core/deadline.js';
import { StatusCode, UpnextError, invalidArgument, toStatus } from '../../core/status.js';
import type { ResolvedBatchingOptions } from './options.js';

/** Outputs of one run: one value per row. */
export interface RankerOutputs {
  /** Uncalibrated P(click) per row. */
  readonly pClick: Float32Array;
  /** Predicted log1p(watch seconds) per row. */
  readonly watchLog1p: Float32Array;
}

/**
 * What the batcher dispatches to (the worker pool in production, a fake in tests). The batcher
 * hands over ownership of `rows` (the pool transfers its buffer to a worker thread). A runner that
 * fails after taking the rows may give them back by rejecting with a {@link BatchRunFailure}.
 */
export interface BatchRunner {
  run(rows: Float32Array, nRows: number): Promise<RankerOutputs>;
}

/**
 * A runner's failure that hands the batch's input rows back (e.g. a worker that could not score
 * them returns the transferred buffer), so a caller that handed its rows over can send them
 * elsewhere. Created and caught on the same thread, so `instanceof` is safe here.
 */
export class BatchRunFailure extends UpnextError {
  /** The batch's rows, intact. */
  readonly returnedRows: Float32Array;

  constructor(code: StatusCode, message: string, returnedRows: Float32Array) {
    super(code, message);
    this.returnedRows = returnedRows;
  }
}

/**
 * How a request whose rows were handed over ({@link DynamicBatcher.submitOwned}) ended. A tagged
 * result rather than a rejection, because a failure must say whether the rows still exist.
 */
export type OwnedScoreOutcome =
  | { readonly kind: 'scored'; readonly outputs: RankerOutputs }
  | {
      readonly kind: 'failed';
      readonly error: UpnextError;
      /**
       * The request's rows, intact, for a retry elsewhere: the caller's own array when the request
       * failed before its buffer left this thread, the array the worker gave back after a failed
       * run, or undefined when the buffer was lost (a worker thread died holding it).
       */
      readonly rows: Float32Array | undefined;
    };

/** How busy a batcher is now: what a caller needs to decide whether to queue here or go elsewhere. */
export interface RankerLoad {
  /** Rows waiting (not yet dispatched). */
  readonly queuedRows: number;
  /** Batches running now. */
  readonly inFlightBatches: number;
  /** Batches allowed in flight at once (workers × batchesPerWorker). */
  readonly concurrency: number;
  /** Most rows merged into one run (options.maxBatchRows). */
  readonly maxBatchRows: number;
}

/** The timer the batcher arms for `maxDelayMs`; injected so tests advance time by hand. */
export interface BatchTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: BatchTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface DynamicBatcherOptions extends ResolvedBatchingOptions {
  /** Features per row (F). */
  readonly width: number;
  /** Batches allowed in flight at once (workers × batchesPerWorker). */
  readonly concurrency: number;
  readonly runner: BatchRunner;
  /** Measures waiting time (monotonicMs). */
  readonly clock: Clock;
  readonly timers: BatchTimers;
}

/** Counters for /metrics. */
export interface BatcherStats {
  /** Requests accepted into the queue. */
  readonly requests: number;
  /** Rows accepted into the queue. */
  readonly rows: number;
  /** Batches dispatched (= ONNX Runtime runs). */
  readonly batches: number;
  /** Rows dispatched in batches. */
  readonly batchedRows: number;
  /** Largest batch dispatched, rows. */
  readonly maxBatchRowsSeen: number;
  /** Requests refused because the queue was full (RESOURCE_EXHAUSTED). */
  readonly rejectedQueueFull: number;
  /** Requests dropped because their deadline passed while queued. */
  readonly expired: number;
  /** Requests whose batch failed in the runner. */
  readonly failed: number;
  /** Requests waiting now. */
  readonly queuedRequests: number;
  /** Rows waiting now. */
  readonly queuedRows: number;
  /** Batches running now. */
  readonly inFlightBatches: number;
}

interface PendingRequest {
  readonly rows: Float32Array;
  readonly nRows: number;
  readonly deadline: Deadline | undefined;
  readonly enqueuedAtMs: number;
  /** The caller handed `rows` over: dispatch them without a copy when they form a batch alone. */
  readonly handOver: boolean;
  readonly resolve: (out: RankerOutputs) => void;
  /** `rows`: the request's rows when they still exist (see OwnedScoreOutcome). */
  readonly reject: (err: UpnextError, rows: Float32Array | undefined) => void;
}

export class DynamicBatcher {
  readonly #opts: DynamicBatcherOptions;
  #queue: PendingRequest[] = [];
  /** Index of the first live entry in #queue (avoids O(n) shift on every dispatch). */
  #head = 0;
  #queuedRows = 0;
  #inFlight = 0;
  #timer: unknown = undefined;
  #closed = false;
  #requests = 0;
  #rows = 0;
  #batches = 0;
  #batchedRows = 0;
  #maxBatchRowsSeen = 0;
  #rejectedQueueFull = 0;
  #expired = 0;
  #failed = 0;

  constructor(opts: DynamicBatcherOptions) {
    if (!Number.isInteger(opts.width) || opts.width < 1) throw new TypeError(`options.width must be a positive integer, got ${opts.width}`);
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
      throw new TypeError(`options.concurrency must be a positive integer, got ${opts.concurrency}`);
    }
    this.#opts = opts;
  }

  /** Features per row this batcher expects. */
  get width(): number {
    return this.#opts.width;
  }

  /**
   * Scores `nRows` rows (`rows.length === nRows * width`). Resolves with views into the batch's
   * output arrays (no copy): read or copy them, but do not rely on their `.buffer` holding only this
   * request's values. Rejects with an {@link UpnextError}: INVALID_ARGUMENT (shape),
   * RESOURCE_EXHAUSTED (queue full), DEADLINE_EXCEEDED (expired while queued), UNAVAILABLE (closed),
   * or the runner's status. `rows` stay the caller's (they are copied into the batch buffer).
   */
  submit(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<RankerOutputs> {
    return new Promise<RankerOutputs>((resolve, reject) => this.#enqueue(rows, nRows, deadline, false, resolve, reject));
  }

  /**
   * Like {@link submit}, but the caller hands `rows` over: when the request makes up its batch alone
   * and `rows` spans its whole ArrayBuffer, that buffer goes to the runner (and on to a worker
   * thread) without the copy into a batch buffer, so `rows` may be detached afterwards — do not read
   * it after this call. Never rejects: a failure says whether the rows still exist, so the caller can
   * retry them elsewhere (see {@link OwnedScoreOutcome}).
   */
  submitOwned(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<OwnedScoreOutcome> {
    return new Promise<OwnedScoreOutcome>((resolve) =>
      this.#enqueue(
        rows,
        nRows,
        deadline,
        true,
        (outputs) => resolve({ kind: 'scored', outputs }),
        (error, back) => resolve({ kind: 'failed', error, rows: back }),
      ),
    );
  }

  /** How busy this batcher is now (cheap; no allocation beyond the result). */
  load(): RankerLoad {
    return { queuedRows: this.#queuedRows, inFlightBatches: this.#inFlight, concurrency: this.#opts.concurrency, maxBatchRows: this.#opts.maxBatchRows };
  }

  #enqueue(
    rows: Float32Array,
    nRows: number,
    deadline: Deadline | undefined,
    handOver: boolean,
    resolve: (out: RankerOutputs) => void,
    reject: (err: UpnextError, rows: Float32Array | undefined) => void,
  ): void {
    // Every refusal below happens before the rows leave the caller, so they go back intact.
    if (this.#closed) return reject(new UpnextError(StatusCode.UNAVAILABLE, 'ranker is shutting down'), rows);
    const w = this.#opts.width;
    if (!Number.isInteger(nRows) || nRows < 0) {
      return reject(invalidArgument('features', `row count must be a non-negative integer, got ${nRows}`), rows);
    }
    if (rows.length !== nRows * w) {
      return reject(invalidArgument('features', `expected ${nRows} rows × ${w} features = ${nRows * w} values, got ${rows.length}`), rows);
    }
    if (nRows === 0) return resolve({ pClick: new Float32Array(0), watchLog1p: new Float32Array(0) });
    if (nRows > this.#opts.maxQueueRows) {
      return reject(invalidArgument('features', `${nRows} rows exceed the replica's queue bound of ${this.#opts.maxQueueRows}`), rows);
    }
    if (this.#queuedRows + nRows > this.#opts.maxQueueRows) {
      this.#rejectedQueueFull++;
      return reject(
        new UpnextError(StatusCode.RESOURCE_EXHAUSTED, `ranker queue full: ${this.#queuedRows} rows waiting, bound ${this.#opts.maxQueueRows}`),
        rows,
      );
    }
    if (deadline?.expired()) {
      this.#expired++;
      return reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'deadline passed before the rows were queued'), rows);
    }
    this.#queue.push({ rows, nRows, deadline, enqueuedAtMs: this.#opts.clock.monotonicMs(), handOver, resolve, reject });
    this.#queuedRows += nRows;
    this.#requests++;
    this.#rows += nRows;
    this.#pump();
  }

  stats(): BatcherStats {
    return {
      requests: this.#requests,
      rows: this.#rows,
      batches: this.#batches,
      batchedRows: this.#batchedRows,
      maxBatchRowsSeen: this.#maxBatchRowsSeen,
      rejectedQueueFull: this.#rejectedQueueFull,
      expired: this.#expired,
      failed: this.#failed,
      queuedRequests: this.#queue.length - this.#head,
      queuedRows: this.#queuedRows,
      inFlightBatches: this.#inFlight,
    };
  }

  /** Refuses new requests and fails the waiting ones with UNAVAILABLE; running batches finish. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    const waiting = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#queuedRows = 0;
    for (const req of waiting) req.reject(new UpnextError(StatusCode.UNAVAILABLE, 'ranker is shutting down'), req.rows);
  }

  /** Dispatches every batch that is ready while a runner slot is free; arms the delay timer otherwise. */
  #pump(): void {
    while (this.#inFlight < this.#opts.concurrency) {
      this.#dropExpiredHead();
      const head = this.#queue[this.#head];
      if (head === undefined) break;
      const waitedMs = this.#opts.clock.monotonicMs() - head.enqueuedAtMs;
      const ready = this.#opts.maxDelayMs === 0 || this.#queuedRows >= this.#opts.maxBatchRows || waitedMs >= this.#opts.maxDelayMs;
      if (!ready) {
        this.#armTimer(this.#opts.maxDelayMs - waitedMs);
        return;
      }
      this.#dispatch(this.#takeBatch());
    }
    // Either nothing waits or every slot is busy (a finishing batch pumps again): no timer needed.
    this.#clearTimer();
  }

  #dropExpiredHead(): void {
    for (;;) {
      const head = this.#queue[this.#head];
      if (head === undefined || !head.deadline?.expired()) return;
      this.#advanceHead(head);
      this.#expired++;
      head.reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'deadline passed while the rows waited for a worker'), head.rows);
    }
  }

  #advanceHead(req: PendingRequest): void {
    this.#head++;
    this.#queuedRows -= req.nRows;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Takes whole requests from the head, up to maxBatchRows (always at least one); skips expired ones. */
  #takeBatch(): PendingRequest[] {
    const batch: PendingRequest[] = [];
    let rows = 0;
    for (;;) {
      const next = this.#queue[this.#head];
      if (next === undefined) break;
      if (batch.length > 0 && rows + next.nRows > this.#opts.maxBatchRows) break;
      this.#advanceHead(next);
      if (next.deadline?.expired()) {
        this.#expired++;
        next.reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'deadline passed while the rows waited for a worker'), next.rows);
        continue;
      }
      batch.push(next);
      rows += next.nRows;
    }
    return batch;
  }

  #dispatch(batch: PendingRequest[]): void {
    if (batch.length === 0) return;
    const w = this.#opts.width;
    let total = 0;
    for (const req of batch) total += req.nRows;
    const only = batch.length === 1 ? batch[0] : undefined;
    let rows: Float32Array;
    if (only !== undefined && only.handOver && spansBuffer(only.rows)) {
      // Handed over and alone in its batch: the caller's buffer itself goes to the worker.
      rows = only.rows;
    } else {
      // One copy into a fresh buffer that the runner may transfer to a worker; the callers' arrays
      // stay theirs (a gRPC request's bytes, a coordinator's reused row buffer).
      rows = new Float32Array(total * w);
      let at = 0;
      for (const req of batch) {
        rows.set(req.rows, at * w);
        at += req.nRows;
      }
    }
    this.#inFlight++;
    this.#batches++;
    this.#batchedRows += total;
    if (total > this.#maxBatchRowsSeen) this.#maxBatchRowsSeen = total;
    let run: Promise<RankerOutputs>;
    try {
      run = this.#opts.runner.run(rows, total);
    } catch (err) {
      run = Promise.reject(err);
    }
    run.then(
      (out) => {
        if (out.pClick.length !== total || out.watchLog1p.length !== total) {
          this.#fail(batch, new UpnextError(StatusCode.INTERNAL, `model returned ${out.pClick.length}/${out.watchLog1p.length} values for ${total} rows`));
          return;
        }
        let off = 0;
        for (const req of batch) {
          req.resolve({ pClick: out.pClick.subarray(off, off + req.nRows), watchLog1p: out.watchLog1p.subarray(off, off + req.nRows) });
          off += req.nRows;
        }
      },
      (err: unknown) => {
        // Rows survive a failed run when the runner gave them back or never took them (the caller's
        // array is detached, length 0, once its buffer went to a worker thread).
        const back = err instanceof BatchRunFailure && only !== undefined && rows === only.rows ? err.returnedRows : undefined;
        this.#fail(batch, UpnextError.fromStatus(toStatus(err)), back);
      },
    ).finally(() => {
      this.#inFlight--;
      if (!this.#closed) this.#pump();
    });
  }

  #fail(batch: readonly PendingRequest[], err: UpnextError, returnedRows?: Float32Array): void {
    this.#failed += batch.length;
    for (const req of batch) req.reject(err, returnedRows ?? (req.rows.length === req.nRows * this.#opts.width ? req.rows : undefined));
  }

  #armTimer(ms: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = this.#opts.timers.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed) this.#pump();
    }, Math.max(0, ms));
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    this.#opts.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
