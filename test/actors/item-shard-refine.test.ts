/**
 * IVF-PQ fast-scan with an exact refine stage (`IVF…,PQ…x4fs,RFlat`) in the item shard: the
 * factory is wrapped as IDMap(IndexRefine(…)) by our faiss-node patch so add_with_ids works, the
 * refine factor reaches faiss through IDMap, removal falls back to tombstones, and snapshots
 * round-trip. Real faiss (whichever build faiss.ts picks), synthetic unit vectors.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ItemFeatures } from '../../core/features/item.js';
import { faissFromFactory, faissRead } from '../../actors/item-shard/faiss.js';
import {
  bytesPerVector,
  factoryFor,
  hasRefine,
  nprobeFor,
  MAX_REFINE_FACTOR,
  resolveIndexOptions,
} from '../../actors/item-shard/index-options.js';
import { ItemShardIndex } from '../../actors/item-shard/shard-index.js';
import { readItemSnapshot, writeItemSnapshot } from '../../actors/item-shard/snapshot.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';
import { syntheticItems } from './fixtures.js';

const dim = 32;
const FACTORY = 'IVF32,PQ8x4fs,RFlat';


/** Mean fraction of the exact top-k (by brute force over `vecs`) that `search` returns. */
function recall(index: ItemShardIndex, vecs: Float32Array, queries: Float32Array, k: number): number {
  const n = vecs.length / dim;
  const nq = queries.length / dim;
  let hits = 0;
  for (let q = 0; q < nq; q++) {
    const query = queries.subarray(q * dim, (q + 1) * dim);
    const scores = Array.from({ length: n }, (_, i) => {
      let s = 0;
      for (let c = 0; c < dim; c++) s += (query[c] ?? 0) * (vecs[i * dim + c] ?? 0);
      return { id: i + 1, s };
    });
    scores.sort((a, b) => b.s - a.s);
    const want = new Set(scores.slice(0, k).map((x) => x.id));
    for (const id of index.search(query, k).videoIds) if (want.has(id)) hits++;
  }
  return hits / (nq * k);
}

t.test('refine factories: IDMap wrapping, option validation, memory estimate', async (t) => {
  const opts = resolveIndexOptions({ factory: FACTORY });
  t.equal(opts.refineFactor, 2, 'refineFactor defaults to 2');
  t.equal(factoryFor(1000, opts), `IDMap,${FACTORY}`, 'a refine factory is wrapped in IDMap (IndexRefine has no add_with_ids)');
  t.equal(factoryFor(1000, resolveIndexOptions({ factory: 'IVF32,Flat' })), 'IVF32,Flat', 'plain IVF keeps its own ids');
  t.equal(factoryFor(1000, resolveIndexOptions({ factory: `IDMap,${FACTORY}` })), `IDMap,${FACTORY}`);
  t.ok(hasRefine(FACTORY) && hasRefine('IVF8,PQ4,Refine(SQ8)') && !hasRefine('IVF8,Flat'), 'hasRefine');
  t.throws(() => resolveIndexOptions({ refineFactor: 0 }), { name: 'TypeError', message: /index\.refineFactor/ });
  t.throws(() => resolveIndexOptions({ refineFactor: 2.5 }), { name: 'TypeError', message: /index\.refineFactor/ });
  t.throws(() => resolveIndexOptions({ refineFactor: MAX_REFINE_FACTOR + 1 }), { name: 'TypeError', message: /at most/ });
  t.equal(resolveIndexOptions({ refineFactor: 8 }).refineFactor, 8);
  // PQ32x4fs: 16 B codes + 256 B exact copy + 8 B IVF id + 8 B IDMap id; Flat under IVF: 256 + 8.
  t.equal(bytesPerVector('IDMap,IVF2048,PQ32x4fs,RFlat', 64), 16 + 256 + 8 + 8);
  t.equal(bytesPerVector('IVF2048,Flat', 64), 256 + 8);
  t.equal(bytesPerVector('IDMap,Flat', 64), 256 + 8);
  const d = resolveIndexOptions();
  t.equal(factoryFor(20_000, d, 'avx2'), 'IDMap,Flat', 'small shards stay exact on either build');
  t.equal(factoryFor(500_000, d, 'avx2', 64), 'IDMap,IVF1024,PQ64x4fs,RFlat', 'AVX2 auto: the measured 500k-item configuration');
  t.equal(factoryFor(500_000, d, 'debian', 64), 'IVF2048,Flat', 'Debian auto keeps IVF Flat (its fast-scan kernels are emulated)');
  t.equal(factoryFor(25_000, d, 'avx2', 32), 'IDMap,IVF256,PQ32x4fs,RFlat', 'half of nlistFor, one code per dimension');
  t.equal(factoryFor(200, resolveIndexOptions({ flatMaxItems: 100 }), 'avx2', 16), 'IDMap,IVF64,PQ16x4fs,RFlat', 'at least 64 lists');
  t.equal(nprobeFor('IDMap,IVF1024,PQ64x4fs,RFlat', d), 192, 'refine indexes probe 3/16 of the lists');
  t.equal(nprobeFor('IDMap,IVF4096,PQ64x4fs,RFlat', d), 384, 'and 6·√nlist on finer lists (5M-item shards: 0.971 instead of 768 lists for 0.987)');
  t.equal(nprobeFor('IDMap,IVF256,PQ64x4fs,RFlat', d), 48, 'coarse lists keep 3/16');
  t.equal(nprobeFor('IVF2048,Flat', d), 256, 'Flat IVF probes 1/8');
});

t.test('raw faiss: IDMap,IVF…,RFlat takes explicit ids, k_factor_rf changes results, write/read keeps them', async (t) => {
  const n = 3000;
  const data = clusteredUnitVectors({ n, dim, spread: 0.15, seed: 21 });
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(10_000 + 3 * i));
  const index = faissFromFactory(dim, `IDMap,${FACTORY}`);
  index.trainF32(data);
  index.addWithIds(data, ids); // threw "not implemented" before the patch peeled off IDMap
  t.equal(index.ntotal(), n);
  index.setParam('nprobe', 32);
  const queries = clusteredUnitVectors({ n: 30, dim, spread: 0.15, seed: 22 });
  index.setParam('k_factor_rf', 1);
  const rf1 = index.searchF32(queries, 20);
  index.setParam('k_factor_rf', 16);
  const rf16 = index.searchF32(queries, 20);
  t.ok(rf1.labels.every((l) => l === -1n || (l >= 10_000n && (l - 10_000n) % 3n === 0n)), 'labels are our ids');
  t.notSame([...rf16.labels], [...rf1.labels], 'a larger refine factor changes the result lists');
  // Refined scores are exact inner products, so more candidates can only raise the k-th score.
  let better = 0;
  for (let q = 0; q < 30; q++) if ((rf16.distances[q * 20 + 19] ?? 0) >= (rf1.distances[q * 20 + 19] ?? 0) - 1e-6) better++;
  t.equal(better, 30, 'k-th exact score is never lower with refine 16 than with 1');
  const self = index.searchF32(data.subarray(5 * dim, 6 * dim), 1);
  t.equal(self.labels[0], 10_015n, 'a stored vector finds itself under its explicit id');
  t.ok(Math.abs((self.distances[0] ?? 0) - 1) < 1e-4, 'refined distance is the exact inner product (1)');
  t.throws(() => index.removeIdsI64(BigInt64Array.of(10_000n)), 'IndexRefine cannot remove (the shard tombstones)');
  t.equal(index.ntotal(), n, 'a failed removal leaves the index intact');

  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-refine-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'x.faiss');
  index.write(file);
  const back = faissRead(file);
  back.setParam('nprobe', 32);
  back.setParam('k_factor_rf', 16);
  t.equal(back.ntotal(), n);
  const again = back.searchF32(queries, 20);
  t.same([...again.labels], [...rf16.labels], 'read-back index returns the same ids');
  t.same([...again.distances], [...rf16.distances], 'and the same scores');
});

t.test('ItemShardIndex over IVF-PQ fast-scan + RFlat: refineFactor, tombstones, snapshot', async (t) => {
  const n = 3000;
  const its = syntheticItems(n);
  const vecs = clusteredUnitVectors({ n, dim, spread: 0.15, seed: 31 });
  const queries = clusteredUnitVectors({ n: 25, dim, spread: 0.15, seed: 32 });
  const k = 20;
  const coarse = ItemShardIndex.build(its, vecs, dim, { factory: FACTORY, nprobe: 32, refineFactor: 1, trainPerList: 90 });
  const fine = ItemShardIndex.build(its, vecs, dim, { factory: FACTORY, nprobe: 32, refineFactor: 16, trainPerList: 90 });
  t.equal(fine.factory, `IDMap,${FACTORY}`);
  const r1 = recall(coarse, vecs, queries, k);
  const r16 = recall(fine, vecs, queries, k);
  t.ok(r16 > r1 + 0.05, `refineFactor 16 recalls more than 1 (${r16.toFixed(3)} vs ${r1.toFixed(3)})`);
  t.ok(r16 > 0.9, `refined recall@${k} with every list probed is high (${r16.toFixed(3)})`);

  const q = vecs.subarray(40 * dim, 41 * dim);
  t.equal(fine.search(q, 5).videoIds[0], 41, 'an item is its own nearest neighbour');
  t.equal(fine.remove([41]), 1);
  t.notOk(fine.search(q, 50).videoIds.includes(41), 'removed item is filtered out (tombstoned row)');
  t.equal(fine.faiss.ntotal(), n, 'its vector stays in faiss');
  const moved = clusteredUnitVectors({ n: 1, dim, seed: 99 });
  fine.upsert([its[99] as ItemFeatures], moved);
  const hit = fine.search(moved, 3);
  t.equal(hit.videoIds[0], 100, 'an upserted item is found at its new vector');
  t.equal(hit.videoIds.filter((id) => id === 100).length, 1, 'and only once (old row tombstoned)');
  t.equal(fine.size, n - 1);
  const full = fine.search(q, 100);
  t.equal(full.videoIds.length, 100, 'over-fetch covers the dead vectors: still k results');
  t.equal(new Set(full.videoIds).size, 100, 'distinct');

  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-refine-snap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const key = { shard: 0, shardCount: 1, modelVersion: 'v1', featureSpecHash: 'h', source: 'test@1' };
  await writeItemSnapshot(dir, key, fine);
  const restored = await readItemSnapshot(dir, key, { factory: FACTORY, nprobe: 32, refineFactor: 16 });
  if (restored === undefined) throw new Error('no snapshot restored');
  t.equal(restored.factory, fine.factory);
  t.equal(restored.size, n - 1);
  for (let i = 0; i < 10; i++) {
    const query = queries.subarray(i * dim, (i + 1) * dim);
    t.same(restored.search(query, k), fine.search(query, k), `query ${i}: identical after the round trip`);
  }
  t.notOk(restored.search(q, 50).videoIds.includes(41), 'tombstones survive the snapshot');
  const restoredCoarse = await readItemSnapshot(dir, key, { factory: FACTORY, nprobe: 32, refineFactor: 1 });
  t.ok(
    restoredCoarse !== undefined && recall(restoredCoarse, vecs, queries, k) < r16 - 0.05,
    'the refine factor comes from the options, not the snapshot file',
  );
});
