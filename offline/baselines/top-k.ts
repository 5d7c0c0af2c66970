/**
 * Top-k selection over a dense score array with a size-k min-heap: O(n log k), no full sort, so
 * ranking a full corpus per user stays cheap. Reusable by any brute-force recommender.
 */

/**
 * Indices of the `k` highest `scores` (best first, ties by lower index), skipping indices for which
 * `skip(i)` is true and scores that are NaN.
 */
export function topK(scores: ArrayLike<number>, k: number, skip?: (index: number) => boolean): number[] {
  if (k <= 0) return [];
  const heapIdx: number[] = [];
  const heapVal: number[] = [];
  // "a is worse than b": lower score, or equal score and higher index.
  const worse = (va: number, ia: number, vb: number, ib: number): boolean => va < vb || (va === vb && ia > ib);
  const swap = (a: number, b: number): void => {
    [heapIdx[a], heapIdx[b]] = [heapIdx[b] as number, heapIdx[a] as number];
    [heapVal[a], heapVal[b]] = [heapVal[b] as number, heapVal[a] as number];
  };
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i] as number;
    if (Number.isNaN(v) || (skip !== undefined && skip(i))) continue;
    if (heapIdx.length < k) {
      heapIdx.push(i);
      heapVal.push(v);
      let c = heapIdx.length - 1;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!worse(heapVal[c] as number, heapIdx[c] as number, heapVal[p] as number, heapIdx[p] as number)) break;
        swap(c, p);
        c = p;
      }
    } else if (worse(heapVal[0] as number, heapIdx[0] as number, v, i)) {
      heapIdx[0] = i;
      heapVal[0] = v;
      let c = 0;
      for (;;) {
        const l = 2 * c + 1;
        const r = l + 1;
        let m = c;
        if (l < k && worse(heapVal[l] as number, heapIdx[l] as number, heapVal[m] as number, heapIdx[m] as number)) m = l;
        if (r < k && worse(heapVal[r] as number, heapIdx[r] as number, heapVal[m] as number, heapIdx[m] as number)) m = r;
        if (m === c) break;
        swap(c, m);
        c = m;
      }
    }
  }
  const order = heapIdx.map((idx, j) => ({ idx, v: heapVal[j] as number }));
  order.sort((a, b) => b.v - a.v || a.idx - b.idx);
  return order.map((o) => o.idx);
}
