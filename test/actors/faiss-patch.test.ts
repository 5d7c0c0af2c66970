/**
 * Tests of upnext's faiss-node patch (native/faiss-node/upnext-faiss-node.patch): typed-array add /
 * search / remove with explicit ids, setParam, and use from a worker thread (the patch makes the
 * addon's constructor per-thread).
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { faissFromFactory } from '../../actors/item-shard/faiss.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';

const dim = 32;

function recallAt(k: number, truth: BigInt64Array, got: BigInt64Array, nq: number): number {
  let hit = 0;
  for (let q = 0; q < nq; q++) {
    const want = new Set(truth.subarray(q * k, (q + 1) * k));
    for (const l of got.subarray(q * k, (q + 1) * k)) if (want.has(l)) hit++;
  }
  return hit / (nq * k);
}

t.test('addWithIds + searchF32 return our ids; removeIdsI64 removes them', async (t) => {
  const n = 500;
  const data = clusteredUnitVectors({ n, dim, seed: 11 });
  const index = faissFromFactory(dim, 'IDMap,Flat');
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(1_000_000 + i * 3));
  index.addWithIds(data, ids);
  t.equal(index.ntotal(), n);
  const q = data.subarray(7 * dim, 8 * dim);
  const r = index.searchF32(q, 5);
  t.ok(r.labels instanceof BigInt64Array && r.distances instanceof Float32Array, 'typed arrays back');
  t.equal(r.labels[0], BigInt(1_000_000 + 7 * 3), 'a vector is its own nearest neighbour, under its explicit id');
  t.ok(Math.abs((r.distances[0] ?? 0) - 1) < 1e-4, 'inner product with itself is 1 (unit vectors)');
  t.equal(index.removeIdsI64(BigInt64Array.of(BigInt(1_000_000 + 7 * 3))), 1);
  const after = index.searchF32(q, 5);
  t.not(after.labels[0], BigInt(1_000_000 + 7 * 3), 'removed id no longer returned');
  t.equal(index.ntotal(), n - 1);
  const padded = faissFromFactory(dim, 'IDMap,Flat');
  padded.addWithIds(data.subarray(0, 2 * dim), BigInt64Array.of(1n, 2n));
  t.same([...padded.searchF32(q, 4).labels.slice(2)], [-1n, -1n], 'short results are padded with -1');
  t.throws(() => index.addWithIds(new Float32Array(dim + 1), BigInt64Array.of(1n)), 'length mismatch throws');
  t.throws(() => index.searchF32(new Float32Array(dim), 0), 'k 0 throws');
});

t.test('removeIdsI64 of a large batch removes exactly those ids (a hash-set selector: linear, not ids × rows)', async (t) => {
  const n = 60_000;
  const data = clusteredUnitVectors({ n, dim, seed: 12 });
  const index = faissFromFactory(dim, 'IDMap,Flat');
  index.addWithIds(data, BigInt64Array.from({ length: n }, (_, i) => BigInt(i)));
  // Every even id, plus ids that were never added.
  const gone = BigInt64Array.from({ length: n / 2 + 100 }, (_, i) => (i < n / 2 ? BigInt(2 * i) : BigInt(n + i)));
  const t0 = performance.now();
  t.equal(index.removeIdsI64(gone), n / 2, 'only ids present count');
  t.comment(`removed ${n / 2} of ${n} rows in ${(performance.now() - t0).toFixed(0)} ms (IDSelectorArray took ~16 s for 131k of 131k)`);
  t.equal(index.ntotal(), n / 2);
  const r = index.searchF32(data.subarray(2 * dim, 3 * dim), 3);
  t.ok([...r.labels].every((l) => l % 2n === 1n), 'no removed id is returned');
  t.equal(r.labels.includes(2n), false);
});

t.test('setParam nprobe changes IVF recall (1 vs nlist)', async (t) => {
  const n = 4000;
  const nq = 50;
  const k = 20;
  const data = clusteredUnitVectors({ n, dim, spread: 0.12, seed: 5 });
  const queries = clusteredUnitVectors({ n: nq, dim, spread: 0.12, seed: 6 });
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
  const exact = faissFromFactory(dim, 'IDMap,Flat');
  exact.addWithIds(data, ids);
  const ivf = faissFromFactory(dim, 'IVF64,Flat');
  t.notOk(ivf.isTrained());
  ivf.trainF32(data);
  ivf.addWithIds(data, ids);
  const truth = exact.searchF32(queries, k).labels;
  ivf.setParam('nprobe', 1);
  const r1 = recallAt(k, truth, ivf.searchF32(queries, k).labels, nq);
  ivf.setParam('nprobe', 64);
  const rAll = recallAt(k, truth, ivf.searchF32(queries, k).labels, nq);
  t.ok(r1 < 0.9, `nprobe 1 misses neighbours (recall ${r1.toFixed(3)})`);
  t.ok(rAll > 0.999, `nprobe = nlist is exact (recall ${rAll.toFixed(3)})`);
  t.throws(() => ivf.setParam('efConstruction', 40), 'efConstruction is HNSW-only');
  t.throws(() => ivf.setParam('no_such_param', 1), 'unknown parameter throws');
  const hnsw = faissFromFactory(dim, 'IDMap,HNSW16,Flat');
  hnsw.setParam('efConstruction', 40);
  hnsw.setParam('efSearch', 64);
  hnsw.addWithIds(data.subarray(0, 200 * dim), ids.subarray(0, 200));
  t.equal(hnsw.searchF32(data.subarray(0, dim), 1).labels[0], 0n, 'HNSW under IDMap finds the query itself');
});

t.test('the patched addon works inside worker threads (two at once)', async (t) => {
  const faissPath = createRequire(import.meta.url).resolve('faiss-node');
  const code = `
    const { parentPort } = require('node:worker_threads');
    const { Index } = require(${JSON.stringify(faissPath)});
    const dim = 8;
    const index = Index.fromFactory(dim, 'IDMap,Flat', 0);
    const v = new Float32Array(3 * dim);
    for (let i = 0; i < 3; i++) v[i * dim + i] = 1;
    index.addWithIds(v, BigInt64Array.of(10n, 20n, 30n));
    const before = index.searchF32(v.subarray(dim, 2 * dim), 1).labels[0];
    const removed = index.removeIdsI64(BigInt64Array.of(20n));
    const after = index.searchF32(v.subarray(dim, 2 * dim), 3).labels;
    parentPort.postMessage({ before: String(before), removed, after: Array.from(after, String), ntotal: index.ntotal() });
  `;
  const run = () =>
    new Promise<{ before: string; removed: number; after: string[]; ntotal: number }>((resolve, reject) => {
      const w = new Worker(code, { eval: true });
      w.once('message', (m) => {
        resolve(m as { before: string; removed: number; after: string[]; ntotal: number });
        void w.terminate();
      });
      w.once('error', reject);
    });
  const [a, b] = await Promise.all([run(), run()]);
  for (const r of [a, b]) {
    t.equal(r.before, '20');
    t.equal(r.removed, 1);
    t.equal(r.ntotal, 2);
    t.notOk(r.after.includes('20'));
    t.same(r.after.slice(2), ['-1'], 'two left, third slot padded');
  }
  // The main thread's own addon instance still works after the workers loaded theirs.
  const idx = faissFromFactory(4, 'IDMap,Flat');
  idx.addWithIds(Float32Array.of(1, 0, 0, 0), BigInt64Array.of(5n));
  t.equal(idx.searchF32(Float32Array.of(1, 0, 0, 0), 1).labels[0], 5n);
});
