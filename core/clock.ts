/**
 * Injected time and randomness. Decay windows, trending counters, exploration, batching timers and
 * load generators take a {@link Clock} and a {@link Rng} so tests control both and never sleep.
 */

/** A source of time. `nowMs` is wall-clock epoch milliseconds (comparable across processes). */
export interface Clock {
  nowMs(): number;
  /** Monotonic high-resolution milliseconds, for measuring durations within one process. */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

/** A manually advanced clock for tests. */
export class ManualClock implements Clock {
  #now: number;
  constructor(startMs = 0) {
    this.#now = startMs;
  }
  nowMs(): number {
    return this.#now;
  }
  monotonicMs(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

/** A seeded pseudo-random generator: `next()` is uniform in [0, 1). */
export interface Rng {
  next(): number;
}

/**
 * SplitMix32-style generator: small, fast, good enough statistical quality for simulation and
 * sampling, and fully determined by its 32-bit seed.
 */
export class SeededRng implements Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  }
  /** Integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal via Box-Muller. */
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

/** Picks `k` of `all` uniformly without replacement (partial Fisher–Yates, seeded), in ascending order. */
export function sampleIndices(all: Int32Array, k: number, seed: number): Int32Array {
  if (k >= all.length) return all.slice();
  const pool = all.slice();
  const rng = new SeededRng(seed);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(pool.length - i);
    const t = pool[i]!;
    pool[i] = pool[j]!;
    pool[j] = t;
  }
  return pool.subarray(0, k).sort();
}
