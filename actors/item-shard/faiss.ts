/**
 * Typed adapter over our patched faiss-node (native/faiss-node/upnext-faiss-node.patch). Only the
 * patched, typed-array entry points are used: the package's own `add`/`search` take `number[]`,
 * which costs ~11 s and doubles peak memory for 1M×64 vectors (docs: shared/ENVIRONMENT.md).
 *
 * Two builds of the same addon exist: `debian` (node_modules/faiss-node, linked against Debian's
 * libfaiss 1.7.3, compiled for baseline x86-64) and, opt-in, `avx2` (scripts/build-faiss-avx2.sh:
 * the same faiss source compiled with AVX2+FMA, where the fast-scan PQ kernels and flat scans use
 * 256-bit SIMD instead of emulated/SSE code). {@link faissBuild} says which one this thread loaded;
 * `UPNEXT_FAISS=debian|avx2|auto` (default auto) chooses (see {@link chooseFaissBuild}).
 *
 * The addon is loaded lazily with `createRequire`, once per thread: the patch keeps one constructor
 * per napi_env (thread_local), so every worker thread loads its own copy safely. Both builds link
 * faiss with `--exclude-libs,ALL` (faiss's symbols stay private to each addon), so two threads of
 * one process may load different builds; one thread never loads both (the addon's per-thread
 * constructor is a process-unique TLS symbol shared by both files).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

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
  /**
   * Returns how many ids were removed (IVF and Flat under IDMap support it; HNSW throws). Linear in
   * the index size: the patch selects with faiss's hash-set IDSelectorBatch (its IDSelectorArray
   * scanned the id list for every row: 16 s for 131k ids of a 131k Flat).
   */
  removeIdsI64(ids: BigInt64Array): number;
  searchF32(queries: Float32Array, k: number): FaissSearchResult;
  /**
   * `nprobe`, `efSearch`, `k_factor_rf` (refine factor of a `...,RFlat` index; faiss ParameterSpace
   * names, reaching through IDMap and the refine wrapper) or `efConstruction` (HNSW only).
   */
  setParam(name: string, value: number): void;
  write(path: string): void;
}

interface FaissIndexStatic {
  fromFactory(dims: number, descriptor: string, metric?: number): FaissIndex;
  read(path: string): FaissIndex;
}

/** Which compiled faiss a thread uses (see the module comment). */
export type FaissBuild = 'debian' | 'avx2';

/** Value of `UPNEXT_FAISS`: a build, or 'auto' = avx2 when it is built and the CPU can run it. */
export type FaissBuildPreference = 'auto' | FaissBuild;

/** Environment variable that overrides the faiss build ({@link FaissBuildPreference}; default auto). */
export const FAISS_BUILD_ENV = 'UPNEXT_FAISS';

/** What {@link chooseFaissBuild} decides from (all facts, no I/O: unit tests pass fakes). */
export interface FaissBuildFacts {
  readonly preference: FaissBuildPreference;
  /** Whether the AVX2 addon file exists ({@link avx2AddonPath}). */
  readonly avx2AddonBuilt: boolean;
  /** Whether the CPU reports both `avx2` and `fma` (the AVX2 build executes both). */
  readonly cpuHasAvx2Fma: boolean;
}

/**
 * The build to load. 'auto' takes avx2 only when it is built and the CPU can run it, else debian
 * (CI and machines that never ran scripts/build-faiss-avx2.sh). An explicit 'avx2' that cannot be
 * honoured throws instead of falling back: a benchmark asked for it, and a silent fallback would
 * mislabel its numbers (and an AVX2 addon on a CPU without AVX2 dies of SIGILL).
 */
export function chooseFaissBuild(facts: FaissBuildFacts): FaissBuild {
  if (facts.preference === 'debian') return 'debian';
  if (facts.preference === 'avx2') {
    if (!facts.cpuHasAvx2Fma) throw new Error(`${FAISS_BUILD_ENV}=avx2, but this CPU lacks avx2/fma`);
    if (!facts.avx2AddonBuilt) {
      throw new Error(`${FAISS_BUILD_ENV}=avx2, but ${avx2AddonPath()} is missing (run scripts/build-faiss-avx2.sh)`);
    }
    return 'avx2';
  }
  return facts.avx2AddonBuilt && facts.cpuHasAvx2Fma ? 'avx2' : 'debian';
}

/** Parses `UPNEXT_FAISS` (undefined or empty = 'auto'); throws a TypeError naming the variable. */
export function parseFaissBuildPreference(value: string | undefined): FaissBuildPreference {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'debian' || value === 'avx2') return value;
  throw new TypeError(`${FAISS_BUILD_ENV} must be debian, avx2 or auto, got ${JSON.stringify(value)}`);
}

/** Whether a /proc/cpuinfo text lists both `avx2` and `fma` among the first CPU's flags. */
export function cpuinfoHasAvx2Fma(cpuinfo: string): boolean {
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? [];
  return flags.includes('avx2') && flags.includes('fma');
}

let cpuHasAvx2FmaCached: boolean | undefined;

/** {@link cpuinfoHasAvx2Fma} of this machine, read once per thread; false where /proc is absent. */
export function cpuHasAvx2Fma(): boolean {
  if (cpuHasAvx2FmaCached === undefined) {
    let text = '';
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      // Not Linux: no way to tell cheaply, so never pick the AVX2 build automatically.
    }
    cpuHasAvx2FmaCached = cpuinfoHasAvx2Fma(text);
  }
  return cpuHasAvx2FmaCached;
}

/**
 * Where scripts/build-faiss-avx2.sh leaves the AVX2 addon: `native/faiss-avx2/addon/build/Release/
 * faiss-node.node` under the project root (the folder that holds node_modules/faiss-node).
 */
export function avx2AddonPath(): string {
  const pkgJson = createRequire(import.meta.url).resolve('faiss-node/package.json');
  const root = dirname(dirname(dirname(pkgJson)));
  return join(root, 'native', 'faiss-avx2', 'addon', 'build', 'Release', 'faiss-node.node');
}

interface Loaded {
  readonly build: FaissBuild;
  readonly Index: FaissIndexStatic;
}

let cached: Loaded | undefined;

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

function loaded(): Loaded {
  if (cached === undefined) {
    pinFaissToOneThread();
    const path = avx2AddonPath();
    const build = chooseFaissBuild({
      preference: parseFaissBuildPreference(process.env[FAISS_BUILD_ENV]),
      avx2AddonBuilt: existsSync(path),
      cpuHasAvx2Fma: cpuHasAvx2Fma(),
    });
    const req = createRequire(import.meta.url);
    const mod = (build === 'avx2' ? req(path) : req('faiss-node')) as { Index: FaissIndexStatic };
    if (typeof (mod.Index as unknown as { prototype: { searchF32?: unknown } }).prototype.searchF32 !== 'function') {
      const script = build === 'avx2' ? 'scripts/build-faiss-avx2.sh' : 'scripts/build-faiss-node.sh';
      throw new Error(`the ${build} faiss-node is not built with the upnext patch (run ${script})`);
    }
    cached = { build, Index: mod.Index };
  }
  return cached;
}

/**
 * The faiss build this thread uses, loading it if needed (benchmarks print it next to timings).
 * Throws when `UPNEXT_FAISS` is invalid or asks for an AVX2 build that cannot load here.
 */
export function faissBuild(): FaissBuild {
  return loaded().build;
}

/** Creates an index from a faiss factory string with the inner-product metric. */
export function faissFromFactory(dims: number, descriptor: string): FaissIndex {
  return loaded().Index.fromFactory(dims, descriptor, METRIC_INNER_PRODUCT);
}

/** Reads an index written by {@link FaissIndex.write}. */
export function faissRead(path: string): FaissIndex {
  return loaded().Index.read(path);
}
