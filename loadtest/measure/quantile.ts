/**
 * The p-quantile of an ascending array by the nearest-rank rule used across the load test's own
 * tables: the element at floor(p × n), clamped to the last; 0 for an empty array. (HDR histograms,
 * recorder.ts, have their own; this is for plain arrays of a bench's samples.)
 */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`p must be in 0..1, got ${p}`);
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}
