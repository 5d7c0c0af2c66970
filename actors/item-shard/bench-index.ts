/**
 * Index-choice benchmark (single thread): recall@k vs exact brute force and per-query latency for
 * Flat, IVF (several nlist/nprobe) and HNSW32 (several efSearch) on synthetic clustered unit vectors.
 * Run: `OMP_NUM_THREADS=1 node dist/actors/item-shard/bench-index.js [n] [spread]`.
 * The numbers behind the defaults in options.ts came from this script.
 */
import { faissFromFactory } from './faiss.js';
import type { FaissIndex } from './faiss.js';
import { clusteredUnitVectors } from './synthetic.js';

const n = Number(process.argv[2] ?? 200_000);
const spread = Number(process.argv[3] ?? 0.15);
const dim = 64;
const k = 100;
const nq = 200;
const data = clusteredUnitVectors({ n, dim, spread, seed: 7 });
const queries = clusteredUnitVectors({ n: nq, dim, spread, seed: 7 + 1 });
const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));

function timeSearch(index: FaissIndex): { labels: BigInt64Array; msPerQuery: number } {
  const labels = new BigInt64Array(nq * k);
  const t0 = performance.now();
  for (let q = 0; q < nq; q++) {
    const r = index.searchF32(queries.subarray(q * dim, (q + 1) * dim), k);
    labels.set(r.labels, q * k);
  }
  return { labels, msPerQuery: (performance.now() - t0) / nq };
}

function recall(truth: BigInt64Array, got: BigInt64Array): number {
  let hit = 0;
  for (let q = 0; q < nq; q++) {
    const want = new Set(truth.subarray(q * k, (q + 1) * k));
    for (const l of got.subarray(q * k, (q + 1) * k)) if (want.has(l)) hit++;
  }
  return hit / (nq * k);
}

const exact = faissFromFactory(dim, 'IDMap,Flat');
exact.addWithIds(data, ids);
const truth = timeSearch(exact);
console.log(`n=${n} spread=${spread} Flat exact: ${truth.msPerQuery.toFixed(3)} ms/query`);

for (const nlist of [256, 1024, 4096].filter((x) => x * 39 <= n)) {
  const idx = faissFromFactory(dim, `IVF${nlist},Flat`);
  const t0 = performance.now();
  idx.trainF32(data.subarray(0, Math.min(n, nlist * 64) * dim));
  idx.addWithIds(data, ids);
  const buildMs = performance.now() - t0;
  for (const nprobe of [1, 4, 8, 16, 32, 64]) {
    if (nprobe > nlist) continue;
    idx.setParam('nprobe', nprobe);
    const r = timeSearch(idx);
    console.log(`IVF${nlist},Flat build ${buildMs.toFixed(0)} ms nprobe=${nprobe}: recall@${k}=${recall(truth.labels, r.labels).toFixed(3)} ${r.msPerQuery.toFixed(3)} ms/query`);
  }
}
if (process.env.BENCH_HNSW !== '0') {
  const idx = faissFromFactory(dim, 'IDMap,HNSW32,Flat');
  idx.setParam('efConstruction', 80);
  const t0 = performance.now();
  idx.addWithIds(data, ids);
  const buildMs = performance.now() - t0;
  for (const ef of [64, 128, 256]) {
    idx.setParam('efSearch', ef);
    const r = timeSearch(idx);
    console.log(`HNSW32 build ${buildMs.toFixed(0)} ms efSearch=${ef}: recall@${k}=${recall(truth.labels, r.labels).toFixed(3)} ${r.msPerQuery.toFixed(3)} ms/query`);
  }
}
