/**
 * The one timer of a pipeline stage. The pipeline owns the deadline (DESIGN.md §4): each stage gets
 * a StageTimer for its stage deadline and waits for its calls through {@link StageTimer.settle}, so
 * a call that never answers costs exactly the stage budget and a stage never throws.
 */
import type { Deadline } from '../../core/deadline.js';
import { clampTimerMs } from '../../core/deadline.js';
import type { StatusObject } from '../../core/status.js';
import { toStatus } from '../../core/status.js';

/** How one call ended within its stage. */
export type Settled<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'error'; readonly status: StatusObject }
  | { readonly kind: 'timeout' };

const TIMEOUT: Settled<never> = Object.freeze({ kind: 'timeout' });

export class StageTimer {
  readonly deadline: Deadline;
  readonly #expired: Promise<Settled<never>>;
  #timer: NodeJS.Timeout | undefined;

  constructor(deadline: Deadline) {
    this.deadline = deadline;
    this.#expired = new Promise((resolve) => {
      this.#timer = setTimeout(() => resolve(TIMEOUT), clampTimerMs(deadline.remainingMs()));
    });
  }

  /** Starts `call` and resolves with its outcome, or with `timeout` when the stage deadline passes first. */
  settle<T>(call: () => Promise<T>): Promise<Settled<T>> {
    let started: Promise<T>;
    try {
      started = call();
    } catch (err) {
      return Promise.resolve({ kind: 'error', status: toStatus(err) });
    }
    const outcome = started.then(
      (value): Settled<T> => ({ kind: 'ok', value }),
      (err: unknown): Settled<T> => ({ kind: 'error', status: toStatus(err) }),
    );
    return Promise.race([outcome, this.#expired]);
  }

  /** Stops the timer once the stage is done (idempotent). */
  cancel(): void {
    clearTimeout(this.#timer);
  }
}

/** Short text for a degraded reason, e.g. "timed out" or "UNAVAILABLE: no responders". */
export function describeFailure(s: Settled<unknown>): string {
  if (s.kind === 'timeout') return 'timed out';
  if (s.kind === 'error') return `failed (${s.status.message})`;
  return 'ok';
}
