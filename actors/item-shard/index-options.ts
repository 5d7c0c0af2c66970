/**
 * ANN index options of an item shard: defaults, validation, and the 'auto' factory rule.
 *
 * Why IVF by default (measured with bench-index.ts on this 2-vCPU machine, one thread, 64-d unit
 * vectors in 256 Gaussian clusters, k=100, 200 queries):
 * - 100k vectors, spread 0.06: exact Flat 3.5 ms/query; IVF1024,Flat nprobe 32 → recall@100 0.967
 *   at 0.20 ms, nprobe 64 → 0.994 at 0.34 ms; build (train + add) 1.5 s.
 * - HNSW32 (efConstruction 80) on the same 100k took 28.5 s to build and reached only 0.745 recall at
 *   efSearch 256 (1.2 ms) on near-uniform data (spread 0.15), where IVF1024 nprobe 64 gave 0.774 at
 *   0.35 ms. HNSW also cannot remove vectors (cold-start churn), and its cost grows with shard count.
 * So: exact Flat for small shards (recall 1, ≤ ~0.7 ms below 20k items), IVF above, with
 * nprobe = nlist/8 (≈ 12% of the vectors scanned), raised so a search scans at least 40·k vectors
 * (small shards: at 6000 items, IVF256, nlist/16 alone gave recall@100 0.86; with the k rule 0.9995).
 * Real two-tower embeddings are harder than the synthetic clusters: on the 1M-video local world
 * (2 shards of IVF2048, 200 candidates per shard, `make bench`) nlist/16 = 128 gave sharded
 * recall@100 0.922 vs exact, nlist/8 = 256 gave 0.969 at 1.7x the search cost; hence nlist/8.
 * HNSW stays available through `factory`.
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
