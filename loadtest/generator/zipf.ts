/**
 * Zipf-like sampling of ranks: P(rank r) ∝ 1 / r^s for r = 1..n, by inverse CDF over a precomputed
 * table (8 bytes per rank; 1M ranks = 8 MB) and binary search. Pure; randomness is injected.
 */
import type { Rng } from '../../core/clock.js';

export class ZipfSampler {
  readonly #cdf: Float64Array;

  /** `n` ranks (>= 1), exponent `s` (>= 0; 0 = uniform, ~1 = typical popularity skew). */
  constructor(n: number, s: number) {
    if (!Number.isInteger(n) || n < 1) throw new TypeError(`n must be an integer >= 1, got ${n}`);
    if (!(s >= 0) || !Number.isFinite(s)) throw new TypeError(`s must be a finite number >= 0, got ${s}`);
    this.#cdf = new Float64Array(n);
    let acc = 0;
    for (let r = 1; r <= n; r++) {
      acc += 1 / Math.pow(r, s);
      this.#cdf[r - 1] = acc;
    }
    for (let i = 0; i < n; i++) this.#cdf[i]! /= acc;
  }

  get size(): number {
    return this.#cdf.length;
  }

  /** A 0-based rank (0 is the most popular). */
  sample(rng: Rng): number {
    const u = rng.next();
    let lo = 0;
    let hi = this.#cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** Picks a key from `weights` (non-negative, not all zero) with probability ∝ its weight. */
export class WeightedChoice<K> {
  readonly #keys: readonly K[];
  readonly #cum: Float64Array;

  constructor(weights: ReadonlyArray<readonly [K, number]>) {
    if (weights.length === 0) throw new TypeError('weights must not be empty');
    this.#keys = weights.map(([k]) => k);
    this.#cum = new Float64Array(weights.length);
    let acc = 0;
    weights.forEach(([, w], i) => {
      if (!(w >= 0) || !Number.isFinite(w)) throw new TypeError(`weight ${i} must be a finite number >= 0, got ${w}`);
      acc += w;
      this.#cum[i] = acc;
    });
    if (acc <= 0) throw new TypeError('weights must not all be zero');
    for (let i = 0; i < this.#cum.length; i++) this.#cum[i]! /= acc;
  }

  pick(rng: Rng): K {
    const u = rng.next();
    for (let i = 0; i < this.#cum.length; i++) if (u < this.#cum[i]!) return this.#keys[i]!;
    return this.#keys[this.#keys.length - 1]!;
  }
}
