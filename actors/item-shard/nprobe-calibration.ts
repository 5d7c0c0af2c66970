/**
 * Per-model nprobe calibration: the smallest IVF nprobe at which a shard's index returns the
 * recall target on the model's own user vectors.
 *
 * Why: a fixed share of the lists ('auto''s rule in index-options.ts) was tuned on one trained
 * model. Recall at a given nprobe depends on how the user tower's vectors fall among the item
 * tower's lists, which moves from one training run to the next: the same world, code and seed gave
 * recall@100 0.977 in one round and 0.907 in another at the same 192 of 1,024 lists. So the shard
 * measures it, on the index it just built, with query vectors the offline pipeline wrote beside the
 * model (`retrieval_queries.f32`, see actors/model/retrieval-queries.ts).
 *
 * What is measured: for each query, the share of the shard's exact top-k (brute force over the
 * vectors just indexed) found in the index's top-`fetch` (the coordinator's perShardK), where the
 * caller passes k = ⌈100 / S⌉ for S shards: on average that is the part of the cluster's global
 * top-100 the shard holds, so the figure is a shard-local stand-in for the cluster's recall@100
 * (with one shard the two are the same number; on the 1M corpus, two 500k shards, the shards'
 * 0.955 matched the cluster's 0.955 on the same queries: docs/capacity.md "Per-model nprobe"). The
 * searches run at the index's serving refine factor, which moves recall as much as nprobe does.
 *
 * A setting meets the target when the mean recall less {@link CONFIDENCE_SIGMAS} standard errors
 * does (the queries are a sample: with 1024 of them the margin is ~0.005 at recall 0.95).
 *
 * The search for the nprobe starts at the rule's value and walks by ×{@link NPROBE_STEP}: down while
 * the target still holds, or up until it does (at most nlist), then bisects between the last miss
 * and the first hit to within {@link BISECT_PRECISION}. Every setting tried is kept, so a
 * snapshot restored under another target can pick from them without the vectors (see
 * {@link pickCalibratedNprobe}).
 */
import type { FaissIndex } from './faiss.js';
import { faissFromFactory } from './faiss.js';

/** Ratio between consecutive nprobe settings tried. */
export const NPROBE_STEP = 1.25;
/** Bisection stops when the smallest hit is within this share of the largest miss below it. */
export const BISECT_PRECISION = 0.03;
/** Fewest queries a calibration runs on: below it one query moves recall by more than 0.5%. */
export const MIN_CALIBRATION_QUERIES = 32;
/** Rows per temporary exact (Flat) index while computing the truth: 32 MiB of 64-d vectors. */
const EXACT_CHUNK_ROWS = 131_072;

/** One nprobe setting tried and the recall it gave. */
export interface NprobePoint {
  readonly nprobe: number;
  /** Mean over queries of |index top-fetch ∩ exact top-k| / k. */
  readonly recall: number;
  /**
   * {@link recall} less {@link CONFIDENCE_SIGMAS} standard errors of that mean (per-query spread /
   * √queries): what the target is checked against, so a setting is not chosen on a lucky sample.
   */
  readonly lower: number;
}

/** Standard errors below the measured mean that must still meet the target (~98% one-sided). */
export const CONFIDENCE_SIGMAS = 2;

/** What a calibration found (kept in the shard's build facts and its snapshot). */
export interface NprobeCalibration {
  /** The nprobe chosen: the smallest tried whose lower bound met the target, or the best tried when none did. */
  readonly nprobe: number;
  /** Recall measured at {@link nprobe}. */
  readonly recall: number;
  /** Its lower bound ({@link NprobePoint.lower}). */
  readonly lower: number;
  /** Recall target it was chosen for. */
  readonly target: number;
  /** Whether {@link lower} ≥ {@link target} (false: even the largest setting tried missed it). */
  readonly met: boolean;
  /** k of recall@k (the shard's exact top-k). */
  readonly k: number;
  /**
   * Results asked of the index per query as requested (the coordinator's perShardK; the searches
   * ask min(max(fetch, k), shard size)).
   */
  readonly fetch: number;
  /** Re-rank factor (faiss `k_factor_rf`) the searches ran at; null for an index without a re-rank stage. */
  readonly refineFactor: number | null;
  /** Query vectors used. */
  readonly queries: number;
  /** Every setting tried, ascending nprobe. */
  readonly points: readonly NprobePoint[];
  /** Wall ms: the exact top-k plus every search. */
  readonly ms: number;
}

/** Inputs of {@link calibrateNprobe}. */
export interface NprobeCalibrationInput {
  /** The trained, filled IVF index (labels = row numbers 0..n-1 of `vectors`). */
  readonly faiss: FaissIndex;
  /** Its IVF list count. */
  readonly nlist: number;
  /** nprobe to start from (the rule's value). */
  readonly start: number;
  /** The indexed vectors, `n × dim`, row i labelled i. */
  readonly vectors: Float32Array;
  readonly dim: number;
  /** Query vectors, `nq × dim` (nq ≥ {@link MIN_CALIBRATION_QUERIES}). */
  readonly queries: Float32Array;
  /** Recall target in (0, 1]. */
  readonly target: number;
  /** k of recall@k. */
  readonly k: number;
  /** Results asked of the index per query (≥ k). */
  readonly fetch: number;
  /**
   * Re-rank factor of an index with a re-rank stage (`...,RFlat`): set on the index before
   * measuring, since it moves recall as much as nprobe does; null for other indexes.
   */
  readonly refineFactor: number | null;
}

/**
 * Measures recall at nprobe settings from `start` (see the module comment) and returns the
 * smallest that meets the target. Leaves the index's nprobe at the chosen value.
 */
export function calibrateNprobe(o: NprobeCalibrationInput): NprobeCalibration {
  const t0 = performance.now();
  const n = Math.floor(o.vectors.length / o.dim);
  const nq = Math.floor(o.queries.length / o.dim);
  if (nq < MIN_CALIBRATION_QUERIES) throw new RangeError(`calibrateNprobe: ${nq} queries, at least ${MIN_CALIBRATION_QUERIES} needed`);
  if (!(o.target > 0 && o.target <= 1)) throw new RangeError(`calibrateNprobe: target must be in (0, 1], got ${o.target}`);
  const k = Math.min(o.k, n);
  const fetch = Math.min(Math.max(o.fetch, k), n);
  if (o.refineFactor !== null) o.faiss.setParam('k_factor_rf', o.refineFactor);
  const queries = o.queries.subarray(0, nq * o.dim);
  const truth = exactTopK(o.vectors, o.dim, queries, k);
  const tried = new Map<number, { recall: number; lower: number }>();
  const lowerBoundAt = (nprobe: number): number => {
    let r = tried.get(nprobe);
    if (r === undefined) {
      o.faiss.setParam('nprobe', nprobe);
      r = recallOf(truth, k, o.faiss.searchF32(queries, fetch).labels, fetch, nq);
      tried.set(nprobe, r);
    }
    return r.lower;
  };
  let p = Math.min(o.nlist, Math.max(1, Math.round(o.start)));
  if (lowerBoundAt(p) >= o.target) {
    for (;;) {
      const lower = Math.floor(p / NPROBE_STEP);
      if (lower < 1 || lower === p || lowerBoundAt(lower) < o.target) break;
      p = lower;
    }
  } else {
    while (p < o.nlist) {
      p = Math.min(o.nlist, Math.ceil(p * NPROBE_STEP));
      if (lowerBoundAt(p) >= o.target) break;
    }
  }
  // Bisect between the largest miss below and the smallest hit: a ×1.25 step alone could overshoot
  // the cost by up to 25%. Stops within BISECT_PRECISION of the hit (search cost is ~linear in nprobe).
  let hit = pickCalibratedNprobe(toPoints(tried), o.target)?.nprobe;
  if (hit !== undefined) {
    let miss = 0;
    for (const [nprobe, r] of tried) if (nprobe < hit && r.lower < o.target && nprobe > miss) miss = nprobe;
    while (miss > 0 && hit - miss > Math.max(1, Math.ceil(hit * BISECT_PRECISION))) {
      const mid = Math.floor((miss + hit) / 2);
      if (lowerBoundAt(mid) >= o.target) hit = mid;
      else miss = mid;
    }
  }
  const points = toPoints(tried);
  const chosen = pickCalibratedNprobe(points, o.target) ?? bestOf(points);
  o.faiss.setParam('nprobe', chosen.nprobe);
  return {
    nprobe: chosen.nprobe,
    recall: chosen.recall,
    lower: chosen.lower,
    target: o.target,
    met: chosen.lower >= o.target,
    k,
    fetch: o.fetch,
    refineFactor: o.refineFactor,
    queries: nq,
    points,
    ms: performance.now() - t0,
  };
}

function toPoints(tried: ReadonlyMap<number, { readonly recall: number; readonly lower: number }>): NprobePoint[] {
  return [...tried].map(([nprobe, r]) => ({ nprobe, recall: r.recall, lower: r.lower })).sort((a, b) => a.nprobe - b.nprobe);
}

/** The smallest-nprobe point whose lower bound meets `target`, or undefined when none does. */
export function pickCalibratedNprobe(points: readonly NprobePoint[], target: number): NprobePoint | undefined {
  let best: NprobePoint | undefined;
  for (const p of points) if (p.lower >= target && (best === undefined || p.nprobe < best.nprobe)) best = p;
  return best;
}

function bestOf(points: readonly NprobePoint[]): NprobePoint {
  let best = points[0];
  for (const p of points) if (best === undefined || p.lower > best.lower || (p.lower === best.lower && p.nprobe < best.nprobe)) best = p;
  if (best === undefined) throw new Error('calibrateNprobe tried no setting');
  return best;
}

/**
 * Exact top-k row numbers per query (`nq × k`, best first, -1 padded) over `vectors` by inner
 * product, through temporary faiss Flat indexes of at most `chunkRows` rows (default
 * {@link EXACT_CHUNK_ROWS}: bounded extra memory on a 5M-item shard), merged.
 */
export function exactTopK(vectors: Float32Array, dim: number, queries: Float32Array, k: number, chunkRows = EXACT_CHUNK_ROWS): BigInt64Array {
  const n = Math.floor(vectors.length / dim);
  const nq = Math.floor(queries.length / dim);
  const labels = new BigInt64Array(nq * k).fill(-1n);
  const scores = new Float32Array(nq * k).fill(-Infinity);
  // One Flat index, emptied between chunks: the addon frees native memory only when the GC
  // finalises an index, so a new one per chunk could hold every chunk of a 5M-item shard at once.
  const flat = faissFromFactory(dim, 'IDMap,Flat');
  for (let first = 0; first < n; first += chunkRows) {
    const rows = Math.min(chunkRows, n - first);
    const ids = new BigInt64Array(rows);
    for (let i = 0; i < rows; i++) ids[i] = BigInt(first + i);
    flat.addWithIds(vectors.subarray(first * dim, (first + rows) * dim), ids);
    const kk = Math.min(k, rows);
    const r = flat.searchF32(queries, kk);
    for (let q = 0; q < nq; q++) mergeTopK(labels, scores, q * k, k, r.labels, r.distances, q * kk, kk);
    flat.removeIdsI64(ids);
  }
  return labels;
}

/** Merges `kk` (label, score) pairs at `from` into the sorted top-k at `at` (both best first). */
function mergeTopK(labels: BigInt64Array, scores: Float32Array, at: number, k: number, newLabels: BigInt64Array, newScores: Float32Array, from: number, kk: number): void {
  const outL = new BigInt64Array(k);
  const outS = new Float32Array(k);
  let i = 0;
  let j = 0;
  for (let o = 0; o < k; o++) {
    const a = i < k ? (scores[at + i] ?? -Infinity) : -Infinity;
    const jl = j < kk ? (newLabels[from + j] ?? -1n) : -1n;
    const b = jl >= 0n ? (newScores[from + j] ?? -Infinity) : -Infinity;
    if (a >= b && i < k && (labels[at + i] ?? -1n) >= 0n) {
      outL[o] = labels[at + i]!;
      outS[o] = a;
      i++;
    } else if (jl >= 0n) {
      outL[o] = jl;
      outS[o] = b;
      j++;
    } else {
      outL[o] = -1n;
      outS[o] = -Infinity;
    }
  }
  labels.set(outL, at);
  scores.set(outS, at);
}

/**
 * Mean over queries of |found top-fetch ∩ truth top-k| / (truth size), and that mean less
 * {@link CONFIDENCE_SIGMAS} standard errors.
 */
function recallOf(truth: BigInt64Array, k: number, found: BigInt64Array, fetch: number, nq: number): { recall: number; lower: number } {
  let sum = 0;
  let sumSq = 0;
  let counted = 0;
  for (let q = 0; q < nq; q++) {
    const want = new Set<bigint>();
    for (let i = 0; i < k; i++) {
      const l = truth[q * k + i] ?? -1n;
      if (l >= 0n) want.add(l);
    }
    if (want.size === 0) continue;
    let hits = 0;
    for (let i = 0; i < fetch; i++) {
      const l = found[q * fetch + i] ?? -1n;
      if (l >= 0n && want.has(l)) hits++;
    }
    const r = hits / want.size;
    sum += r;
    sumSq += r * r;
    counted++;
  }
  if (counted === 0) return { recall: 1, lower: 1 };
  const mean = sum / counted;
  const variance = counted > 1 ? Math.max(0, (sumSq - counted * mean * mean) / (counted - 1)) : 0;
  return { recall: mean, lower: mean - CONFIDENCE_SIGMAS * Math.sqrt(variance / counted) };
}
