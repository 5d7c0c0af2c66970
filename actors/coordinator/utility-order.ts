/**
 * The policy's candidate order: utility descending, ties broken by a per-request hash of the video id,
 * then by the id. Every Recommend sorts its ~550 candidates this way on the coordinator's main thread,
 * the thread that bounds what one node process holds at the SLO; an Array#sort with a comparator
 * was ~10% of that thread's samples on a 16-core host (docs/capacity.md "A
 * 16-core machine again"), 69–81 µs per request on the dev box in isolation. {@link orderByUtility}
 * gives the same order as an Array#sort with {@link compareByUtility} (a stable sort: equal items
 * keep their input order; tested) in about a third of the time: a native numeric sort of the utilities
 * with each candidate's index in the lowest mantissa bits, then the exact comparator only inside
 * groups whose utilities those bits could not tell apart (ties, in practice).
 */
import { hashId } from '../../core/hash.js';

export interface UtilityOrdered {
  readonly videoId: number;
  readonly utility: number;
}

/** The order itself, as a comparator: what {@link orderByUtility} must agree with. */
export function compareByUtility(a: UtilityOrdered, b: UtilityOrdered, seed: number): number {
  return b.utility - a.utility || hashId(a.videoId, seed) - hashId(b.videoId, seed) || a.videoId - b.videoId;
}

/** Index bits packed into the low word of each key: the fast path takes at most 2^11 candidates. */
const INDEX_BITS = 11;
const INDEX_MASK = (1 << INDEX_BITS) - 1;
const MAX_FAST = 1 << INDEX_BITS;

// One scratch buffer, reused (the coordinator sorts on one thread; the function does not re-enter).
const keys = new Float64Array(MAX_FAST);
const words = new Uint32Array(keys.buffer);
// Little-endian hosts keep a double's low mantissa word first; big-endian ones second.
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

/** A new array of `candidates` in {@link compareByUtility} order. */
export function orderByUtility<T extends UtilityOrdered>(candidates: readonly T[], seed: number): T[] {
  const n = candidates.length;
  const cmp = (a: T, b: T): number => compareByUtility(a, b, seed);
  if (n > MAX_FAST) return [...candidates].sort(cmp);
  for (let i = 0; i < n; i++) {
    const u = candidates[i]!.utility;
    // ±Infinity has an all-zero mantissa (packing an index would make it NaN) and NaN has no order:
    // such a list takes the comparator (utilities are finite blends in practice).
    if (!Number.isFinite(u)) return [...candidates].sort(cmp);
    // -0 and +0 are one utility to the comparator: both become +0 here (else the sign bit would
    // order them before the tie-break could).
    keys[i] = u === 0 ? 0 : -u;
  }
  // Clearing a double's low mantissa bits moves it toward zero: monotone, so keys whose cleared
  // values differ keep their order, and the index in those bits only orders keys whose cleared
  // values are equal (0 becomes a tiny denormal: still in order against every other value).
  for (let i = 0; i < n; i++) words[2 * i + LOW] = ((words[2 * i + LOW]! & ~INDEX_MASK) | i) >>> 0;
  keys.subarray(0, n).sort();
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) order[i] = words[2 * i + LOW]! & INDEX_MASK;
  // Groups of equal cleared keys: in packed-index order so far (ascending or descending with the
  // key's sign); the comparator, then the input position (as a stable sort keeps equal items),
  // puts them in exact order.
  let start = 0;
  for (let i = 1; i <= n; i++) {
    if (i < n && sameGroup(i - 1, i)) continue;
    if (i - start > 1) {
      const group = order.slice(start, i).sort((x, y) => cmp(candidates[x]!, candidates[y]!) || x - y);
      for (let j = 0; j < group.length; j++) order[start + j] = group[j]!;
    }
    start = i;
  }
  const out = new Array<T>(n);
  for (let i = 0; i < n; i++) out[i] = candidates[order[i]!]!;
  return out;
}

function sameGroup(a: number, b: number): boolean {
  return words[2 * a + 1 - LOW] === words[2 * b + 1 - LOW] && ((words[2 * a + LOW]! ^ words[2 * b + LOW]!) & ~INDEX_MASK) === 0;
}
