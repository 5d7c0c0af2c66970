import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

/**
 * An absolute deadline in epoch milliseconds (so it survives a hop to another process). Every
 * stage asks {@link Deadline.remainingMs}; only the layer that owns the request runs a timer.
 */
export class Deadline {
  readonly atMs: number;
  readonly #clock: Clock;

  constructor(atMs: number, clock: Clock = systemClock) {
    this.atMs = atMs;
    this.#clock = clock;
  }

  static after(ms: number, clock: Clock = systemClock): Deadline {
    return new Deadline(clock.nowMs() + ms, clock);
  }

  /** Milliseconds left, never negative. */
  remainingMs(): number {
    return Math.max(0, this.atMs - this.#clock.nowMs());
  }

  expired(): boolean {
    return this.#clock.nowMs() >= this.atMs;
  }

  /** A stage budget: the earlier of this deadline and `now + budgetMs`. */
  stage(budgetMs: number): Deadline {
    return new Deadline(Math.min(this.atMs, this.#clock.nowMs() + budgetMs), this.#clock);
  }

  /** The earlier of two deadlines. */
  static min(a: Deadline, b: Deadline): Deadline {
    return a.atMs <= b.atMs ? a : b;
  }
}

/** Largest delay Node's setTimeout accepts; longer ones fire immediately. */
const MAX_TIMER_MS = 2_147_483_647;

/** Clamps a delay for setTimeout. */
export function clampTimerMs(ms: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(ms)));
}

/** Longest wait, when an actor stops, for the requests it already took to be answered, ms. */
export const ACTOR_STOP_DRAIN_MS = 2_000;

/**
 * Resolves once `done()` is true, or after `limitMs` (polling every `everyMs`): how a stopping actor
 * waits for the requests it already holds before it closes. Resolves to whether `done()` held.
 */
export async function settleWithin(done: () => boolean, limitMs: number, everyMs = 5): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}
