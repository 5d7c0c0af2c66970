/**
 * ANN index options of an item shard: defaults, validation, and the 'auto' factory rule.
 *
 * Chosen by measurement on the REAL vectors (docs/capacity.md "Index choice"): the 1M-video local
 * world's item-tower vectors (64-d, unit norm) split by `itemShardOf`, 400 user-tower queries,
 * recall@100 of the union of per-shard top-200 (the coordinator's perShardK) vs exact brute force,
 * CPU per whole-corpus query (summed over shards), one thread, OMP_NUM_THREADS=1, 2-vCPU EPYC:
 * - S=2 (500k per shard): IVF2048,Flat nprobe 128 → 0.922 @ 3.2 ms, **nprobe 256 → 0.968 @ 5.5 ms**;
 *   IVF1024 nprobe 128 → 0.954 @ 5.1 ms; IVF4096 nprobe 256 → 0.945 @ 3.7 ms, 320 → 0.958 @ 4.8 ms,
 *   384 → 0.968 @ 5.4 ms (same cost as IVF2048 at the same recall, 2.6× the build: 50 s vs 19 s);
 *   IVF2048,SQ8 nprobe 256 → 0.961 @ 8.9 ms (decoding SQ8 costs more CPU than it saves; it only
 *   saves memory: 64 vs 256 MiB of codes per 1M vectors).
 * - S=1 (1M): IVF4096 nprobe 256 → 0.948 @ 3.0 ms, 512 → 0.982 @ 5.3 ms; IVF2048 nprobe 256 →
 *   0.968 @ 4.9 ms. HNSW32 (efConstruction 40): efSearch 256 → 0.884 @ 2.2 ms, 512 → 0.940 @
 *   3.9 ms, and the build took 403 CPU-s (585 s wall on the loaded machine) for 1M vectors.
 * So HNSW loses on these embeddings (lower recall per ms, ~25× the build CPU of IVF, no faiss-side
 * removal, and S HNSW shards cost ~S× one index), and finer IVF lists or SQ8 buy nothing at equal
 * recall. 'auto' therefore stays: exact Flat up to 20k items (recall 1, ≤ ~0.7 ms), else
 * IVF{≈4√n},Flat with nprobe = nlist/8 (≈ 12% of the vectors scanned), raised so a search scans at
 * least 40·k vectors (small shards: at 6000 synthetic items, IVF256, nlist/16 gave recall@100 0.86;
 * with the k rule 0.9995). Recall is set by the fraction of vectors scanned (≈ 6% → 0.92–0.95,
 * 12% → 0.97), so retrieval CPU grows linearly with the corpus: at 1M items it is ~5 ms per
 * request, far above the ~1.5 ms the 400 QPS/core goal leaves; no index choice measured here meets
 * that goal at recall ≥ 0.95 (the lever left is the embeddings themselves, or fewer items per query).
 * HNSW stays available through `factory` (removal by tombstones: see shard-index.ts).
 *
 * Those figures are for Debian's libfaiss (baseline x86-64). With the opt-in AVX2 build
 * (scripts/build-faiss-avx2.sh, chosen at run time by faiss.ts) on the same corpus and queries
 * (S=2, perShardK 200, one thread, search CPU only, best of 3 passes):
 * IVF2048,Flat nprobe 128 → 0.922 @ 1.24 ms, 256 → 0.969 @ 2.20 ms (Debian: 2.73 / 5.23 ms), and
 * IVF-PQ fast-scan with an exact re-rank becomes the cheapest at every recall:
 * **IVF1024,PQ64x4fs,RFlat nprobe 128 refine 2 → 0.955 @ 0.73–0.78 ms**, nprobe 192 → 0.977 @
 * 0.97–1.03 ms, 256 → 0.987 @ 1.22 ms (Debian: the same recalls at 7.4 / 10.7 / 14.6 ms: its
 * fast-scan kernels are emulated). PQ32x4fs needs refine 4–8 for the same recall and costs more;
 * PQ16x4fs tops out near 0.78; without the RFlat stage PQ64x4fs reaches only 0.77. Memory: 291 MiB per 1M vectors (32 B
 * codes + the 256 B exact copy the refine stage keeps + ids) vs 253 MiB for IVF Flat; build 7 s
 * CPU per 1M (IVF2048,Flat: 17 s). So 'auto' picks that index when the AVX2 build serves the shard
(see {@link factoryFor}), with nprobe 3·nlist/16 for margin (0.977 instead of 0.955 at nlist/8), and
6·√nlist when that is less (shards above ~500k items: at 10M, 0.971 for 27% less search CPU than 3/16).
 *
 * Those nprobe shares are now only the fallback and the calibration's starting point: a later model
 * needed twice the share for the same recall, so 'auto' calibrates nprobe per model on the queries
 * it ships (nprobe-calibration.ts, shard-index.ts), and uses the fixed rule only for models without.
 */

import { MIN_CALIBRATION_QUERIES } from './nprobe-calibration.js';

/** Options of the ANN index (all optional; see {@link resolveIndexOptions} for defaults). */
export interface IndexOptions {
  /**
   * faiss factory string, or 'auto': `IDMap,Flat` when the shard holds at most `flatMaxItems`
   * items, else `IVF{nlist},Flat` with nlist = the power of two nearest 4·√n, in 64..65536.
   * A factory without native ids (e.g. HNSW) is wrapped in `IDMap,` automatically, and so is one
   * with a refine stage (`IVF…,PQ…x4fs,RFlat`: faiss's IndexRefine has no add_with_ids; our
   * faiss-node patch builds `IDMap,X` as IDMap around X). Such indexes cannot remove vectors: the
   * shard tombstones rows instead (shard-index.ts). Default 'auto'.
   */
  readonly factory?: 'auto' | string;
  /**
   * IVF lists probed per query, or 'auto': the smallest nprobe at which the model's own user vectors
   * reach {@link recallTarget} on the shard's index, measured when the index is built
   * (nprobe-calibration.ts), or, for a model that ships no such vectors, the fixed rule (nlist/8;
   * for re-rank indexes min(3·nlist/16, 6·√nlist)); either way raised so a search scans 40·k
   * vectors (see {@link nprobeFor}). Default 'auto'.
   */
  readonly nprobe?: number | 'auto';
  /**
   * Recall the 'auto' nprobe is calibrated to, in (0, 1]: a shard of S measures recall@⌈100/S⌉ in
   * its top-perShardK (its average share of the cluster's top-100; nprobe-calibration.ts). Default
   * 0.95 (the serving goal's recall@100).
   */
  readonly recallTarget?: number;
  /**
   * Most of the model's retrieval queries an 'auto' calibration runs on (fewer when the model
   * ships fewer); 0 turns calibration off (the fixed rule). At least
   * {@link MIN_CALIBRATION_QUERIES} when not 0. Default 1024 (what training ships).
   */
  readonly calibrationQueries?: number;
  /** HNSW search breadth (ignored by other indexes). Default 256. */
  readonly efSearch?: number;
  /** HNSW build breadth. Default 80. */
  readonly efConstruction?: number;
  /** Largest shard that 'auto' serves with exact Flat search. Default 20000 items. */
  readonly flatMaxItems?: number;
  /** Training vectors per IVF list (a sample of the shard). Default 64. */
  readonly trainPerList?: number;
  /**
   * Refine factor of a factory with an exact re-rank stage (`...,RFlat`, e.g.
   * `IVF2048,PQ32x4fs,RFlat`): the compressed index returns refineFactor·k candidates, which are
   * re-scored with their exact vectors (faiss `k_factor_rf`). Ignored by other indexes. Default 2
   * (enough for PQ{dim}x4fs codes: refine 4 and 8 gave the same recall at more CPU); coarser
   * codes need more (PQ{dim/2}x4fs: 4–8). At most {@link MAX_REFINE_FACTOR}.
   */
  readonly refineFactor?: number;
}

/** Largest {@link IndexOptions.refineFactor}: beyond it exact re-ranking costs more than Flat. */
export const MAX_REFINE_FACTOR = 64;

/** {@link IndexOptions} with every default filled in. */
export interface ResolvedIndexOptions {
  readonly factory: 'auto' | string;
  readonly nprobe: number | 'auto';
  readonly recallTarget: number;
  readonly calibrationQueries: number;
  readonly efSearch: number;
  readonly efConstruction: number;
  readonly flatMaxItems: number;
  readonly trainPerList: number;
  readonly refineFactor: number;
}

/** Defaults of {@link IndexOptions} (see the module comment for the measurements behind them). */
export const DEFAULT_INDEX_OPTIONS: ResolvedIndexOptions = Object.freeze({
  factory: 'auto',
  nprobe: 'auto',
  recallTarget: 0.95,
  calibrationQueries: 1024,
  efSearch: 256,
  efConstruction: 80,
  flatMaxItems: 20_000,
  trainPerList: 64,
  refineFactor: 2,
});

function positiveInt(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new TypeError(`option index.${name} must be a positive integer, got ${String(v)}`);
  }
}

/** Merges defaults and validates; throws a TypeError naming the bad option. */
export function resolveIndexOptions(opts: IndexOptions = {}): ResolvedIndexOptions {
  const r = { ...DEFAULT_INDEX_OPTIONS, ...stripUndefined(opts) };
  if (typeof r.factory !== 'string' || r.factory.length === 0) {
    throw new TypeError(`option index.factory must be 'auto' or a faiss factory string`);
  }
  if (r.nprobe !== 'auto') positiveInt('nprobe', r.nprobe);
  if (typeof r.recallTarget !== 'number' || !(r.recallTarget > 0 && r.recallTarget <= 1)) {
    throw new TypeError(`option index.recallTarget must be a number in (0, 1], got ${String(r.recallTarget)}`);
  }
  if (r.calibrationQueries !== 0) {
    positiveInt('calibrationQueries', r.calibrationQueries);
    if (r.calibrationQueries < MIN_CALIBRATION_QUERIES) {
      throw new TypeError(`option index.calibrationQueries must be 0 (off) or at least ${MIN_CALIBRATION_QUERIES}, got ${r.calibrationQueries}`);
    }
  }
  positiveInt('efSearch', r.efSearch);
  positiveInt('efConstruction', r.efConstruction);
  positiveInt('flatMaxItems', r.flatMaxItems);
  positiveInt('trainPerList', r.trainPerList);
  positiveInt('refineFactor', r.refineFactor);
  if (r.refineFactor > MAX_REFINE_FACTOR) {
    throw new TypeError(`option index.refineFactor must be at most ${MAX_REFINE_FACTOR}, got ${r.refineFactor}`);
  }
  return Object.freeze(r);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The concrete factory string for a shard of `n` items (see {@link IndexOptions.factory}). 'auto'
 * depends on the faiss build serving it (faiss.ts `faissBuild()`): exact `IDMap,Flat` up to
 * `flatMaxItems`; above it, on the AVX2 build, `IDMap,IVF{nlistFor(n)/2},PQ{dim}x4fs,RFlat` (one
 * 4-bit fast-scan code per dimension, exact re-rank of refineFactor·k' candidates: recall@100 0.977
 * at ~1.0 ms CPU per 1M-item query with the 'auto' nprobe), else `IVF{nlistFor(n)},Flat` (Debian's
 * baseline build emulates the fast-scan kernels: the same PQ index costs 7–15 ms there).
 */
export function factoryFor(n: number, opts: ResolvedIndexOptions, build: 'debian' | 'avx2' = 'debian', dim = 64): string {
  if (opts.factory !== 'auto') {
    if (opts.factory.startsWith('IDMap')) return opts.factory;
    return /^IVF/.test(opts.factory) && !hasRefine(opts.factory) ? opts.factory : `IDMap,${opts.factory}`;
  }
  if (n <= opts.flatMaxItems) return 'IDMap,Flat';
  if (build === 'avx2' && dim % 2 === 0) return `IDMap,IVF${Math.max(64, nlistFor(n) / 2)},PQ${dim}x4fs,RFlat`;
  return `IVF${nlistFor(n)},Flat`;
}

/**
 * Whether 'auto' could have picked `factory` on faiss build `build` for some shard size: exact
 * `IDMap,Flat`, or the build's IVF family at any nlist (the one {@link factoryFor} picks above
 * `flatMaxItems`). A snapshot restore asks this instead of {@link factoryFor} of the current count,
 * which upserts may have moved across `flatMaxItems` or an nlist step since the build.
 */
export function autoCouldPick(factory: string, build: 'debian' | 'avx2', dim: number): boolean {
  if (factory === 'IDMap,Flat') return true;
  if (build === 'avx2' && dim % 2 === 0) return new RegExp(`^IDMap,IVF\\d+,PQ${dim}x4fs,RFlat$`).test(factory);
  return /^IVF\d+,Flat$/.test(factory);
}

/** Whether a factory string ends in an exact re-rank stage (`,RFlat` or `,Refine(…)`). */
export function hasRefine(factory: string): boolean {
  return /,(RFlat|Refine\(.*\))$/.test(factory);
}

/**
 * Estimated faiss bytes per stored vector of a factory (codes + ids), without centroids:
 * Flat 4·dim, SQ8 dim, PQ{M}x{b} M·b/8, plus 4·dim for a refine stage's exact copy, plus 8 for the
 * IVF list id and 8 for an IDMap's id map.
 */
export function bytesPerVector(factory: string, dim: number): number {
  const pq = /PQ(\d+)(?:x(\d+))?/.exec(factory);
  let code = 4 * dim;
  if (pq?.[1] !== undefined) code = Math.ceil((Number(pq[1]) * Number(pq[2] ?? 8)) / 8);
  else if (/SQ8/.test(factory)) code = dim;
  else if (/SQfp16/.test(factory)) code = 2 * dim;
  const refine = hasRefine(factory) ? 4 * dim : 0;
  const ids = (/IVF/.test(factory) ? 8 : 0) + (factory.startsWith('IDMap') ? 8 : 0);
  return code + refine + ids;
}

/** Power of two nearest 4·√n, clamped to 64..65536. */
export function nlistFor(n: number): number {
  const target = 4 * Math.sqrt(Math.max(1, n));
  const p = Math.round(Math.log2(target));
  return 2 ** Math.min(16, Math.max(6, p));
}

/** IVF list count of a factory string, or undefined for non-IVF indexes. */
export function nlistOf(factory: string): number | undefined {
  const m = /IVF(\d+)/.exec(factory);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** A calibrated 'auto' base nprobe and the results per search it was measured at. */
export interface CalibratedNprobe {
  readonly nprobe: number;
  readonly fetch: number;
}

/**
 * Vectors an 'auto' IVF search scans per result wanted: a top-k spread over many lists needs the
 * scan to cover a multiple of k, which nlist/16 alone does not on small shards (6000 items,
 * IVF256: recall@100 0.86 at nprobe 16).
 */
export const AUTO_SCAN_PER_RESULT = 40;

/**
 * The nprobe for an IVF factory: the configured number, or for 'auto' the larger of a base (the
 * `calibrated` nprobe when the shard measured one, nprobe-calibration.ts; else the rule: nlist/8
 * for IVF Flat; min(3·nlist/16, 6·√nlist) for re-rank indexes; at least 8) and enough lists to scan
 * {@link AUTO_SCAN_PER_RESULT}·k vectors of `ntotal` (for a calibrated base, only when k is above
 * the fetch it was measured at). Measured at nlist 1024 and 4096; nlist 2048
 * (271 lists) lies between them and was not measured on its own.
 * Undefined for non-IVF indexes. `k` and `ntotal` default to 0 (the k-independent base).
 */
export function nprobeFor(factory: string, opts: ResolvedIndexOptions, k = 0, ntotal = 0, calibrated?: CalibratedNprobe): number | undefined {
  const nlist = nlistOf(factory);
  if (nlist === undefined) return undefined;
  if (opts.nprobe !== 'auto') return Math.min(nlist, opts.nprobe);
  const forK = ntotal > 0 ? Math.ceil((AUTO_SCAN_PER_RESULT * k * nlist) / ntotal) : 0;
  // Measured at `fetch` results: the k rule only guards searches that fetch more than that.
  if (calibrated !== undefined) return Math.min(nlist, Math.max(calibrated.nprobe, k > calibrated.fetch ? forK : 0));
  // Fast-scan codes lose a little to quantisation even after the exact re-rank: probe 3/16 of the
  // lists on shards up to nlist 1024 (IVF1024,PQ64x4fs,RFlat on the 1M corpus: 128 → 0.955, 192 →
  // 0.977 at +0.25 ms), and 6·√nlist beyond, where finer lists hold the neighbours in a smaller
  // share (10M corpus, two 5M shards of IVF4096: 384 → 0.971 at 5.8 ms, 768 → 0.987 at 7.9 ms per
  // query; four 2.5M shards: 256 → 0.963, 512 → 0.989). The two rules meet at nlist 1024.
  const base = Math.max(8, Math.floor(hasRefine(factory) ? Math.min((3 * nlist) / 16, 6 * Math.sqrt(nlist)) : nlist / 8));
  return Math.min(nlist, Math.max(base, forK));
}
