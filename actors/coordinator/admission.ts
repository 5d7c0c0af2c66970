/**
 * Admission control (DESIGN.md §4 step 1, §6 overload): a concurrency limit plus a bounded FIFO queue
 * with a bounded wait. A request beyond both is refused at once so the caller serves the cached
 * popular list; nothing here ever grows without bound.
 */
import { clampTimerMs } from '../../core/deadline.js';
import type { AdmissionConfig } from './config.js';

/** A granted slot; `release()` is idempotent and hands the slot to the next waiter. */
export interface AdmissionPermit {
  readonly admitted: true;
  /** Milliseconds spent waiting in the queue (0 when a slot was free). */
  readonly waitedMs: number;
  release(): void;
}

/** A refusal: the caller answers with the fallback list at once. */
export interface AdmissionRefusal {
  readonly admitted: false;
  /** Why, for the response's `degraded` list, e.g. "shed: overload". */
  readonly reason: string;
}

export type AdmissionResult = AdmissionPermit | AdmissionRefusal;

/** Counters for stats(). */
export interface AdmissionStats {
  readonly inFlight: number;
  readonly queued: number;
  readonly admitted: number;
  /** Refused because the queue was full. */
  readonly shedOverload: number;
  /** Refused because the wait for a slot ran out. */
  readonly shedQueueTimeout: number;
}

interface Waiter {
  readonly enqueuedMs: number;
  readonly resolve: (r: AdmissionResult) => void;
  timer: NodeJS.Timeout | undefined;
}

/** The concurrency limiter. One per coordinator; `now` is a monotonic ms clock (injectable). */
export class AdmissionController {
  readonly #cfg: AdmissionConfig;
  readonly #now: () => number;
  readonly #queue: Waiter[] = [];
  #inFlight = 0;
  #admitted = 0;
  #shedOverload = 0;
  #shedQueueTimeout = 0;

  constructor(cfg: AdmissionConfig, now: () => number = () => performance.now()) {
    this.#cfg = cfg;
    this.#now = now;
  }

  /**
   * A slot now (resolves in a microtask), a slot after waiting at most min(maxQueueWaitMs, `maxWaitMs`),
   * or a refusal: at once when the queue is full, at the end of the wait otherwise.
   */
  acquire(maxWaitMs = Infinity): Promise<AdmissionResult> {
    if (this.#inFlight < this.#cfg.maxConcurrent) return Promise.resolve(this.#grant(0));
    const waitMs = Math.min(this.#cfg.maxQueueWaitMs, maxWaitMs);
    if (this.#queue.length >= this.#cfg.maxQueue || waitMs <= 0) {
      this.#shedOverload++;
      return Promise.resolve({ admitted: false, reason: 'shed: overload' });
    }
    return new Promise<AdmissionResult>((resolve) => {
      const waiter: Waiter = { enqueuedMs: this.#now(), resolve, timer: undefined };
      waiter.timer = setTimeout(() => {
        const at = this.#queue.indexOf(waiter);
        if (at < 0) return;
        this.#queue.splice(at, 1);
        this.#shedQueueTimeout++;
        resolve({ admitted: false, reason: 'shed: overload (queue wait)' });
      }, clampTimerMs(waitMs));
      this.#queue.push(waiter);
    });
  }

  stats(): AdmissionStats {
    return {
      inFlight: this.#inFlight,
      queued: this.#queue.length,
      admitted: this.#admitted,
      shedOverload: this.#shedOverload,
      shedQueueTimeout: this.#shedQueueTimeout,
    };
  }

  /** Refuses every waiter (used on stop). */
  drainQueue(reason = 'shed: shutting down'): void {
    for (const w of this.#queue.splice(0)) {
      clearTimeout(w.timer);
      w.resolve({ admitted: false, reason });
    }
  }

  #grant(waitedMs: number): AdmissionPermit {
    this.#inFlight++;
    this.#admitted++;
    let released = false;
    return {
      admitted: true,
      waitedMs,
      release: () => {
        if (released) return;
        released = true;
        this.#inFlight--;
        this.#handOff();
      },
    };
  }

  #handOff(): void {
    while (this.#inFlight < this.#cfg.maxConcurrent) {
      const w = this.#queue.shift();
      if (w === undefined) return;
      clearTimeout(w.timer);
      w.resolve(this.#grant(this.#now() - w.enqueuedMs));
    }
  }
}
