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
 */

/** Options of the ANN index (all optional; see {@link resolveIndexOptions} for defaults). */
export interface IndexOptions {
  /**
   * faiss factory string, or 'auto': `IDMap,Flat` when the shard holds at most `flatMaxItems`
   * items, else `IVF{nlist},Flat` with nlist = the power of two nearest 4·√n, in 64..65536.
   * A factory without native ids (e.g. HNSW) is wrapped in `IDMap,` automatically. Default 'auto'.
   */
  readonly factory?: 'auto' | string;
  /**
   * IVF lists probed per query, or 'auto' = max(8, nlist/8, lists holding 40·k vectors) per
   * search (see {@link nprobeFor}). Default 'auto'.
   */
  readonly nprobe?: number | 'auto';
  /** HNSW search breadth (ignored by other indexes). Default 256. */
  readonly efSearch?: number;
  /** HNSW build breadth. Default 80. */
  readonly efConstruction?: number;
  /** Largest shard that 'auto' serves with exact Flat search. Default 20000 items. */
  readonly flatMaxItems?: number;
  /** Training vectors per IVF list (a sample of the shard). Default 64. */
  readonly trainPerList?: number;
}

/** {@link IndexOptions} with every default filled in. */
export interface ResolvedIndexOptions {
  readonly factory: 'auto' | string;
  readonly nprobe: number | 'auto';
  readonly efSearch: number;
  readonly efConstruction: number;
  readonly flatMaxItems: number;
  readonly trainPerList: number;
}

/** Defaults of {@link IndexOptions} (see the module comment for the measurements behind them). */
export const DEFAULT_INDEX_OPTIONS: ResolvedIndexOptions = Object.freeze({
  factory: 'auto',
  nprobe: 'auto',
  efSearch: 256,
  efConstruction: 80,
  flatMaxItems: 20_000,
  trainPerList: 64,
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
  positiveInt('efSearch', r.efSearch);
  positiveInt('efConstruction', r.efConstruction);
  positiveInt('flatMaxItems', r.flatMaxItems);
  positiveInt('trainPerList', r.trainPerList);
  return Object.freeze(r);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The concrete factory string for a shard of `n` items (see {@link IndexOptions.factory}). */
export function factoryFor(n: number, opts: ResolvedIndexOptions): string {
  if (opts.factory !== 'auto') {
    return /^(IVF|IDMap)/.test(opts.factory) ? opts.factory : `IDMap,${opts.factory}`;
  }
  if (n <= opts.flatMaxItems) return 'IDMap,Flat';
  return `IVF${nlistFor(n)},Flat`;
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

/**
 * Vectors an 'auto' IVF search scans per result wanted: a top-k spread over many lists needs the
 * scan to cover a multiple of k, which nlist/16 alone does not on small shards (6000 items,
 * IVF256: recall@100 0.86 at nprobe 16).
 */
export const AUTO_SCAN_PER_RESULT = 40;

/**
 * The nprobe for an IVF factory: the configured number, or for 'auto' the larger of nlist/8 (at
 * least 8) and enough lists to scan {@link AUTO_SCAN_PER_RESULT}·k vectors of `ntotal`.
 * Undefined for non-IVF indexes. `k` and `ntotal` default to 0 (the k-independent base).
 */
export function nprobeFor(factory: string, opts: ResolvedIndexOptions, k = 0, ntotal = 0): number | undefined {
  const nlist = nlistOf(factory);
  if (nlist === undefined) return undefined;
  if (opts.nprobe !== 'auto') return Math.min(nlist, opts.nprobe);
  const base = Math.max(8, Math.floor(nlist / 8));
  const forK = ntotal > 0 ? Math.ceil((AUTO_SCAN_PER_RESULT * k * nlist) / ntotal) : 0;
  return Math.min(nlist, Math.max(base, forK));
}
