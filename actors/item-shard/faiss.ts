/**
 * Typed adapter over our patched faiss-node (native/faiss-node/upnext-faiss-node.patch). Only the
 * patched, typed-array entry points are used: the package's own `add`/`search` take `number[]`,
 * which costs ~11 s and doubles peak memory for 1M×64 vectors (docs: shared/ENVIRONMENT.md).
 *
 * The addon is loaded lazily with `createRequire`, once per thread: the patch keeps one constructor
 * per napi_env (thread_local), so every worker thread loads its own copy safely.
 */
import { createRequire } from 'node:module';

/** faiss `MetricType`: only inner product is used (vectors are L2-normalised, so IP = cosine). */
export const METRIC_INNER_PRODUCT = 0;

/** Result of {@link FaissIndex.searchF32}: `nq × k` entries, padded with label -1. */
export interface FaissSearchResult {
  readonly distances: Float32Array;
  readonly labels: BigInt64Array;
}

/** The subset of a faiss index that upnext uses (all methods run synchronously on the caller's thread). */
export interface FaissIndex {
  ntotal(): number;
  getDimension(): number;
  isTrained(): boolean;
  trainF32(vectors: Float32Array): void;
  addWithIds(vectors: Float32Array, ids: BigInt64Array): void;
  /** Returns how many ids were removed (IVF and Flat under IDMap support it; HNSW throws). */
  removeIdsI64(ids: BigInt64Array): number;
  searchF32(queries: Float32Array, k: number): FaissSearchResult;
  /** `nprobe`, `efSearch` (faiss ParameterSpace names) or `efConstruction` (HNSW only). */
  setParam(name: string, value: number): void;
  write(path: string): void;
}

interface FaissIndexStatic {
  fromFactory(dims: number, descriptor: string, metric?: number): FaissIndex;
  read(path: string): FaissIndex;
}

let cached: FaissIndexStatic | undefined;

/**
 * Makes faiss single-threaded unless the operator chose otherwise: sets OMP_NUM_THREADS=1 in the
 * process environment when it is unset. libgomp reads it once, when the addon is first loaded, so
 * this must run on the main thread before any thread loads faiss (a worker's `process.env` is a
 * private copy that libgomp never sees). Why: with OpenMP's default of one thread per core, a
 * single-query search on this 2-vCPU machine took a 20 ms p50 instead of 0.85 ms (20k items, Flat,
 * k=100, loaded machine): the threads fight each other and every other actor. Shards scale by
 * replicas, not by OpenMP threads.
 */
export function pinFaissToOneThread(): void {
  if (process.env.OMP_NUM_THREADS === undefined) process.env.OMP_NUM_THREADS = '1';
}

function faissIndexClass(): FaissIndexStatic {
  if (cached === undefined) {
    pinFaissToOneThread();
    const mod = createRequire(import.meta.url)('faiss-node') as { Index: FaissIndexStatic };
    if (typeof (mod.Index as unknown as { prototype: { searchF32?: unknown } }).prototype.searchF32 !== 'function') {
      throw new Error('faiss-node is not built with the upnext patch (run scripts/build-faiss-node.sh)');
    }
    cached = mod.Index;
  }
  return cached;
}

/** Creates an index from a faiss factory string with the inner-product metric. */
export function faissFromFactory(dims: number, descriptor: string): FaissIndex {
  return faissIndexClass().fromFactory(dims, descriptor, METRIC_INNER_PRODUCT);
}

/** Reads an index written by {@link FaissIndex.write}. */
export function faissRead(path: string): FaissIndex {
  return faissIndexClass().read(path);
}
