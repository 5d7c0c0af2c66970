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
 * hands over ownership of `rows` (the pool transfers its buffer to a worker thread).
 */
export interface BatchRunner {
  run(rows: Float32Array, nRows: number): Promise<RankerOutputs>;
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
  readonly resolve: (out: RankerOutputs) => void;
  readonly reject: (err: UpnextError) => void;
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
   * or the runner's status.
   */
  submit(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<RankerOutputs> {
    if (this.#closed) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, 'ranker is shutting down'));
    const w = this.#opts.width;
    if (!Number.isInteger(nRows) || nRows < 0) {
      return Promise.reject(invalidArgument('features', `row count must be a non-negative integer, got ${nRows}`));
    }
    if (rows.length !== nRows * w) {
      return Promise.reject(invalidArgument('features', `expected ${nRows} rows × ${w} features = ${nRows * w} values, got ${rows.length}`));
    }
    if (nRows === 0) return Promise.resolve({ pClick: new Float32Array(0), watchLog1p: new Float32Array(0) });
    if (nRows > this.#opts.maxQueueRows) {
      return Promise.reject(invalidArgument('features', `${nRows} rows exceed the replica's queue bound of ${this.#opts.maxQueueRows}`));
    }
    if (this.#queuedRows + nRows > this.#opts.maxQueueRows) {
      this.#rejectedQueueFull++;
      return Promise.reject(
        new UpnextError(StatusCode.RESOURCE_EXHAUSTED, `ranker queue full: ${this.#queuedRows} rows waiting, bound ${this.#opts.maxQueueRows}`),
      );
    }
    if (deadline?.expired()) {
      this.#expired++;
      return Promise.reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'deadline passed before the rows were queued'));
    }
    return new Promise<RankerOutputs>((resolve, reject) => {
      this.#queue.push({ rows, nRows, deadline, enqueuedAtMs: this.#opts.clock.monotonicMs(), resolve, reject });
      this.#queuedRows += nRows;
      this.#requests++;
      this.#rows += nRows;
      this.#pump();
    });
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
    for (const req of waiting) req.reject(new UpnextError(StatusCode.UNAVAILABLE, 'ranker is shutting down'));
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
      head.reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'deadline passed while the rows waited for a worker'));
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
        next.reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'deadline passed while the rows waited for a worker'));
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
    // One copy into a fresh buffer that the runner may transfer to a worker; the callers' arrays
    // stay theirs (a gRPC request's bytes, a coordinator's reused row buffer).
    const rows = new Float32Array(total * w);
    let at = 0;
    for (const req of batch) {
      rows.set(req.rows, at * w);
      at += req.nRows;
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
      (err: unknown) => this.#fail(batch, UpnextError.fromStatus(toStatus(err))),
    ).finally(() => {
      this.#inFlight--;
      if (!this.#closed) this.#pump();
    });
  }

  #fail(batch: readonly PendingRequest[], err: UpnextError): void {
    this.#failed += batch.length;
    for (const req of batch) req.reject(err);
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
