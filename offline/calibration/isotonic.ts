/**
 * Isotonic calibration fitted by pool-adjacent-violators (PAV) on validation (raw probability,
 * label) pairs, stored as a piecewise-linear {@link IsotonicCalibration} that
 * core/model/calibration.ts `calibrate` applies.
 */
import type { IsotonicCalibration } from '../../core/model/contract.js';

/** One PAV block: a run of consecutive (sorted) points sharing one fitted value. */
export interface PavBlock {
  /** Weighted mean raw score of the block (its knot position). */
  readonly x: number;
  /** Fitted value: weighted mean label of the block. */
  readonly y: number;
  /** Total weight (count when unweighted). */
  readonly weight: number;
}

/**
 * Pool-adjacent-violators over points already sorted by x: the least-squares non-decreasing fit.
 * O(n). Returns blocks in ascending x with strictly increasing y.
 */
export function pav(xs: ArrayLike<number>, ys: ArrayLike<number>, weights?: ArrayLike<number>): PavBlock[] {
  const bx: number[] = [];
  const by: number[] = [];
  const bw: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    const w = weights === undefined ? 1 : (weights[i] as number);
    if (!(w > 0)) continue;
    let x = (xs[i] as number) * w;
    let y = (ys[i] as number) * w;
    let ww = w;
    // Merge backwards while the previous block's mean is ≥ this one's (a violation; ties pooled too).
    while (by.length > 0 && (by[by.length - 1] as number) / (bw[bw.length - 1] as number) >= y / ww) {
      x += bx.pop() as number;
      y += by.pop() as number;
      ww += bw.pop() as number;
    }
    bx.push(x);
    by.push(y);
    bw.push(ww);
  }
  return bx.map((x, i) => ({ x: x / (bw[i] as number), y: (by[i] as number) / (bw[i] as number), weight: bw[i] as number }));
}

/** Options of {@link fitIsotonic}. */
export interface IsotonicOptions {
  /** Most knots kept. Default 200. */
  readonly maxKnots?: number;
}

/**
 * Fits isotonic calibration on (raw probability, 0/1 label) pairs. Knots are PAV block centres; when
 * there are more than `maxKnots`, knots are kept at evenly spaced cumulative weight (plus both
 * ends), which keeps the map monotone and spends knots where the data are.
 */
export function fitIsotonic(probs: ArrayLike<number>, labels: ArrayLike<number>, opts: IsotonicOptions = {}): IsotonicCalibration {
  if (probs.length !== labels.length) throw new TypeError(`fitIsotonic: length mismatch (${probs.length} vs ${labels.length})`);
  const maxKnots = opts.maxKnots ?? 200;
  if (!Number.isInteger(maxKnots) || maxKnots < 2) throw new TypeError(`fitIsotonic: maxKnots must be an integer >= 2, got ${maxKnots}`);
  if (probs.length === 0) return { type: 'isotonic', x: [0, 1], y: [0, 1] };
  const order = Array.from({ length: probs.length }, (_, i) => i).sort((a, b) => (probs[a] as number) - (probs[b] as number) || a - b);
  const xs = order.map((i) => probs[i] as number);
  const ys = order.map((i) => ((labels[i] as number) > 0 ? 1 : 0));
  const blocks = pav(xs, ys);
  let kept = blocks;
  if (blocks.length > maxKnots) {
    const cum: number[] = [];
    let acc = 0;
    for (const blk of blocks) cum.push((acc += blk.weight));
    const picked = new Set<number>();
    let i = 0;
    for (let j = 0; j < maxKnots; j++) {
      const target = (j / (maxKnots - 1)) * acc;
      while (i < blocks.length - 1 && (cum[i] as number) < target) i++;
      picked.add(j === 0 ? 0 : i);
    }
    kept = [...picked].sort((p, q) => p - q).map((k) => blocks[k] as PavBlock);
  }
  return { type: 'isotonic', x: kept.map((b) => b.x), y: kept.map((b) => b.y) };
}
