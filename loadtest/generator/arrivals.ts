/**
 * The open-loop arrival process, as pure code: intended send times of a Poisson process whose rate
 * is piecewise constant (a ramp step, a flash-crowd spike). No I/O and no timers: the generator
 * asks for the next intended time and sleeps until it; tests walk the schedule without sleeping.
 */
import type { Rng } from '../../core/clock.js';

/** From `startMs` (relative to the phase start) on, arrivals come at `rate` per second. */
export interface RateSegment {
  readonly startMs: number;
  /** Arrivals per second, >= 0 (0 = a pause). */
  readonly rate: number;
}

/**
 * Poisson arrivals with exponential inter-arrival times. At a segment boundary the draw restarts
 * from the boundary with the new rate, which is exact for a Poisson process (it is memoryless).
 */
export class PoissonSchedule {
  readonly #segments: readonly RateSegment[];
  readonly #rng: Rng;
  #t = 0;
  #seg = 0;

  /** `segments` must start at 0 and ascend; a single rate is `[{ startMs: 0, rate }]`. */
  constructor(segments: readonly RateSegment[], rng: Rng) {
    if (segments.length === 0 || segments[0]!.startMs !== 0) throw new TypeError('segments must start at startMs 0');
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      if (!(s.rate >= 0) || !Number.isFinite(s.rate)) throw new TypeError(`segments[${i}].rate must be a finite number >= 0, got ${s.rate}`);
      if (i > 0 && !(s.startMs > segments[i - 1]!.startMs)) throw new TypeError(`segments[${i}].startMs must ascend`);
    }
    this.#segments = segments;
    this.#rng = rng;
  }

  /** Convenience for a constant rate. */
  static constant(rate: number, rng: Rng): PoissonSchedule {
    return new PoissonSchedule([{ startMs: 0, rate }], rng);
  }

  /** The rate in force at `tMs` (arrivals/s). */
  rateAt(tMs: number): number {
    let rate = this.#segments[0]!.rate;
    for (const s of this.#segments) if (s.startMs <= tMs) rate = s.rate;
    return rate;
  }

  /** Intended time of the next arrival, ms from the phase start (Infinity when the rate stays 0). */
  next(): number {
    for (;;) {
      const seg = this.#segments[this.#seg]!;
      const nextStart = this.#segments[this.#seg + 1]?.startMs ?? Infinity;
      if (seg.rate <= 0) {
        if (nextStart === Infinity) return Infinity;
        this.#t = nextStart;
        this.#seg++;
        continue;
      }
      // 1 - u is in (0, 1], so the log is finite.
      const gapMs = (-Math.log(1 - this.#rng.next()) / seg.rate) * 1000;
      const t = this.#t + gapMs;
      if (t < nextStart) {
        this.#t = t;
        return t;
      }
      this.#t = nextStart;
      this.#seg++;
    }
  }
}

/** Expected number of arrivals in [0, durationMs) for these segments. */
export function expectedArrivals(segments: readonly RateSegment[], durationMs: number): number {
  let total = 0;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const end = Math.min(segments[i + 1]?.startMs ?? Infinity, durationMs);
    if (end > s.startMs) total += (s.rate * (end - s.startMs)) / 1000;
  }
  return total;
}
