/**
 * faiss search QPS per core at a configured recall@100, measured against exact brute force over
 * the same vectors: IVF (nprobe raised until the recall target is met) and HNSW32 (efSearch
 * raised likewise), normalised 64-d clustered vectors, one query at a time on one thread.
 * QPS per core is queries / CPU seconds of this process during the timed loop, so a stray OpenMP
 * thread would show as a lower figure, not a flattering one. Set OMP_NUM_THREADS=1 before faiss
 * loads (bench.ts does).
 */
import { faissFromFactory } from '../../actors/item-shard/faiss.js';
import type { FaissIndex } from '../../actors/item-shard/faiss.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';
import { cpuSecondsSince, printTable } from './table.js';
import { quantileSorted } from '../measure/quantile.js';

/** Options for {@link benchFaiss}; every field has a default. */
export interface FaissBenchOptions {
  /** Indexed vectors. Default 200,000. */
  readonly n?: number;
  /** Dimension. Default 64. */
  readonly dim?: number;
  /** Timed queries per setting. Default 500. */
  readonly queries?: number;
  /** Neighbours per query. Default 100. */
  readonly k?: number;
  /** Recall@k to reach. Default 0.95. */
  readonly targetRecall?: number;
  /** IVF lists; default ≈ 4·√n rounded to a power of two. */
  readonly nlist?: number;
  /** Cluster spread of the synthetic vectors. Default 0.15. */
  readonly spread?: number;
  readonly seed?: number;
  /** Skip HNSW (its build is the slow part: ~135 s per 1M). Default false. */
  readonly skipHnsw?: boolean;
}

/** One index type at the first setting that met the target recall (or the best tried). */
export interface FaissIndexResult {
  readonly index: string;
  /** "nprobe=8" / "efSearch=128". */
  readonly setting: string;
  readonly recallAtK: number;
  readonly metTarget: boolean;
  readonly qpsPerCore: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly buildS: number;
}

export interface FaissBenchResult {
  readonly results: readonly FaissIndexResult[];
  readonly conditions: { readonly n: number; readonly dim: number; readonly k: number; readonly queries: number; readonly targetRecall: number; readonly ompNumThreads: string; readonly exactMsPerQuery: number };
}

function searchAll(index: FaissIndex, queries: Float32Array, dim: number, k: number): { labels: BigInt64Array; perQueryMs: Float64Array; cpuS: number } {
  const nq = queries.length / dim;
  const labels = new BigInt64Array(nq * k);
  const perQueryMs = new Float64Array(nq);
  const cpu0 = process.cpuUsage();
  for (let q = 0; q < nq; q++) {
    const t0 = performance.now();
    const r = index.searchF32(queries.subarray(q * dim, (q + 1) * dim), k);
    perQueryMs[q] = performance.now() - t0;
    labels.set(r.labels.subarray(0, k), q * k);
  }
  return { labels, perQueryMs, cpuS: cpuSecondsSince(cpu0) };
}

/** recall@k of `got` against `truth` (both nq × k). */
export function recallAtK(truth: BigInt64Array, got: BigInt64Array, k: number): number {
  const nq = truth.length / k;
  let hit = 0;
  for (let q = 0; q < nq; q++) {
    const want = new Set(truth.subarray(q * k, (q + 1) * k));
    for (const l of got.subarray(q * k, (q + 1) * k)) if (l >= 0n && want.has(l)) hit++;
  }
  return hit / (nq * k);
}

function pct(v: Float64Array, p: number): number {
  return quantileSorted(Float64Array.from(v).sort(), p / 100);
}

export function benchFaiss(opts: FaissBenchOptions = {}): FaissBenchResult {
  const n = opts.n ?? 200_000;
  const dim = opts.dim ?? 64;
  const k = opts.k ?? 100;
  const nq = opts.queries ?? 500;
  const target = opts.targetRecall ?? 0.95;
  const spread = opts.spread ?? 0.15;
  const seed = opts.seed ?? 7;
  const data = clusteredUnitVectors({ n, dim, spread, seed });
  const queries = clusteredUnitVectors({ n: nq, dim, spread, seed: seed + 1 });
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));

  const exact = faissFromFactory(dim, 'IDMap,Flat');
  exact.addWithIds(data, ids);
  const truth = searchAll(exact, queries, dim, k);

  const results: FaissIndexResult[] = [];
  const sweep = (name: string, index: FaissIndex, buildS: number, param: string, values: readonly number[]) => {
    let last: FaissIndexResult | undefined;
    for (const v of values) {
      index.setParam(param, v);
      const r = searchAll(index, queries, dim, k);
      const recall = recallAtK(truth.labels, r.labels, k);
      last = { index: name, setting: `${param}=${v}`, recallAtK: recall, metTarget: recall >= target, qpsPerCore: nq / Math.max(r.cpuS, 1e-9), p50Ms: pct(r.perQueryMs, 50), p99Ms: pct(r.perQueryMs, 99), buildS };
      if (last.metTarget) break;
    }
    if (last) results.push(last);
  };

  const nlist = opts.nlist ?? 2 ** Math.round(Math.log2(4 * Math.sqrt(n)));
  const ivf = faissFromFactory(dim, `IVF${nlist},Flat`);
  let t0 = performance.now();
  ivf.trainF32(data.subarray(0, Math.min(n, nlist * 64) * dim));
  ivf.addWithIds(data, ids);
  sweep(`IVF${nlist},Flat`, ivf, (performance.now() - t0) / 1000, 'nprobe', [1, 2, 4, 8, 16, 32, 64, 128, 256].filter((p) => p <= nlist));

  if (!opts.skipHnsw) {
    const hnsw = faissFromFactory(dim, 'IDMap,HNSW32,Flat');
    hnsw.setParam('efConstruction', 80);
    t0 = performance.now();
    hnsw.addWithIds(data, ids);
    sweep('HNSW32', hnsw, (performance.now() - t0) / 1000, 'efSearch', [64, 128, 256, 512, 1024]);
  }
  return {
    results,
    conditions: { n, dim, k, queries: nq, targetRecall: target, ompNumThreads: process.env['OMP_NUM_THREADS'] ?? '(unset)', exactMsPerQuery: pct(truth.perQueryMs, 50) },
  };
}

export function printFaiss(r: FaissBenchResult): void {
  printTable(
    'faiss search, one query at a time, one thread',
    ['index', 'setting', `recall@${r.conditions.k}`, 'QPS/core', 'p50 ms', 'p99 ms', 'build s'],
    r.results.map((x) => [x.index, x.setting + (x.metTarget ? '' : ' (target not met)'), x.recallAtK, x.qpsPerCore, x.p50Ms, x.p99Ms, x.buildS]),
    r.conditions,
  );
}
