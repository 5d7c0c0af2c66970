/**
 * In-process item shard core (ItemShardIndex, snapshots, index options) with real faiss and
 * synthetic unit vectors: no NATS, no model.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StatusCode } from '../../core/status.js';
import { faissBuild, faissFromFactory } from '../../actors/item-shard/faiss.js';
import { factoryFor, nlistFor, nprobeFor, resolveIndexOptions } from '../../actors/item-shard/index-options.js';
import { ItemShardIndex } from '../../actors/item-shard/shard-index.js';
import { readItemSnapshot, writeItemSnapshot } from '../../actors/item-shard/snapshot.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';
import { syntheticItems } from './fixtures.js';

const dim = 64;



t.test('search: at most k distinct items, sorted by score, excluded ids absent, features attached', async (t) => {
  const n = 2000;
  const its = syntheticItems(n);
  const vecs = clusteredUnitVectors({ n, dim, seed: 1 });
  const index = ItemShardIndex.build(its, vecs, dim);
  t.equal(index.factory, 'IDMap,Flat', 'a small shard is served exactly');
  t.equal(index.size, n);
  const q = vecs.subarray(10 * dim, 11 * dim);
  const first = index.search(q, 50);
  t.equal(first.videoIds.length, 50);
  t.equal(first.videoIds[0], 11, 'the item whose vector is the query comes first');
  t.equal(new Set(first.videoIds).size, 50, 'distinct');
  for (let i = 1; i < first.scores.length; i++) t.ok((first.scores[i - 1] ?? 0) >= (first.scores[i] ?? 0), `sorted at ${i}`);
  const row = first.videoIds.indexOf(11);
  t.equal(first.creatorIds[row], 500 + (10 % 13), 'creator travels with the candidate');
  t.equal(first.impressions[row], 10, 'counters travel with the candidate');
  const exclude = first.videoIds.slice(0, 20);
  const second = index.search(q, 50, exclude);
  t.equal(second.videoIds.length, 50, 'over-fetch keeps k results despite 20 exclusions');
  t.notOk(second.videoIds.some((id) => exclude.includes(id)), 'no excluded id');
  t.same(second.videoIds.slice(0, 30), first.videoIds.slice(20, 50), 'the next best fill in, in order');
  t.equal(index.search(q, 2000).videoIds.length, 2000);
});

t.test('upsert is findable at once, keeps counters on update; remove makes an item disappear', async (t) => {
  const n = 1000;
  const vecs = clusteredUnitVectors({ n, dim, seed: 2 });
  const index = ItemShardIndex.build(syntheticItems(n), vecs, dim);
  const fresh = clusteredUnitVectors({ n: 1, dim, seed: 99 });
  t.equal(index.upsert([{ videoId: 77_777, creatorId: 1, category: 3, durationS: 12, uploadTsMs: 5 }], fresh), 1);
  const hit = index.search(fresh, 5);
  t.equal(hit.videoIds[0], 77_777, 'cold-start item is the top hit for its own vector');
  t.equal(hit.impressions[0], 0, 'new items start with zero counters');
  // Update item 5 (impressions 4) with a new vector: counters stay, the old vector is gone.
  const moved = clusteredUnitVectors({ n: 1, dim, seed: 123 });
  index.upsert([{ videoId: 5, creatorId: 9, category: 1, durationS: 40, uploadTsMs: 1 }], moved);
  t.equal(index.size, n + 1);
  const again = index.search(moved, 3);
  t.equal(again.videoIds[0], 5);
  t.equal(again.impressions[0], 4, 'counters survive a metadata update');
  t.equal(again.creatorIds[0], 9, 'metadata updated');
  const oldVec = vecs.subarray(4 * dim, 5 * dim);
  t.equal(index.search(oldVec, n + 1).videoIds.filter((id) => id === 5).length, 1, 'no duplicate from the old vector');
  t.equal(index.remove([5, 77_777, 424_242]), 2, 'unknown ids are ignored');
  t.equal(index.size, n - 1);
  t.notOk(index.search(moved, n).videoIds.includes(5), 'removed item never returned');
  t.notOk(index.search(fresh, n).videoIds.includes(77_777));
});

t.test('HNSW (no remove in faiss): removed and replaced items are filtered by tombstones', async (t) => {
  const n = 600;
  const vecs = clusteredUnitVectors({ n, dim, seed: 4 });
  const index = ItemShardIndex.build(syntheticItems(n), vecs, dim, { factory: 'HNSW16', efSearch: 128 });
  t.equal(index.factory, 'IDMap,HNSW16');
  const q = vecs.subarray(0, dim);
  t.equal(index.search(q, 1).videoIds[0], 1);
  t.equal(index.remove([1]), 1);
  const r = index.search(q, 10);
  t.equal(r.videoIds.length, 10, 'still k results');
  t.notOk(r.videoIds.includes(1));
});

t.test('recall@100 >= 0.95 vs exact brute force with the default IVF parameters', async (t) => {
  const n = 6000;
  const nq = 100;
  const k = 100;
  const vecs = clusteredUnitVectors({ n, dim, spread: 0.06, seed: 7 });
  const queries = clusteredUnitVectors({ n: nq, dim, spread: 0.06, seed: 8 });
  // flatMaxItems lowered so 'auto' picks IVF at this test size (the default rule otherwise).
  const index = ItemShardIndex.build(syntheticItems(n), vecs, dim, { flatMaxItems: 1000 });
  // Which IVF kind 'auto' picks depends on the faiss build loaded here (fast-scan PQ + exact
  // re-rank on the AVX2 build, IVF Flat on Debian's); both must meet the recall bar.
  t.equal(index.factory, factoryFor(n, resolveIndexOptions({ flatMaxItems: 1000 }), faissBuild(), dim), `auto chose ${index.factory} (${faissBuild()} build)`);
  t.match(index.factory, /IVF\d+,/, 'an IVF index');
  const exact = faissFromFactory(dim, 'IDMap,Flat');
  exact.addWithIds(vecs, BigInt64Array.from({ length: n }, (_, i) => BigInt(i + 1)));
  let hit = 0;
  for (let q = 0; q < nq; q++) {
    const query = queries.subarray(q * dim, (q + 1) * dim);
    const truth = new Set(Array.from(exact.searchF32(query, k).labels, Number));
    for (const id of index.search(query, k).videoIds) if (truth.has(id)) hit++;
  }
  const recall = hit / (nq * k);
  t.comment(`recall@100 = ${recall.toFixed(4)} (${index.factory}, n=${n})`);
  t.ok(recall >= 0.95, `recall ${recall.toFixed(4)} >= 0.95`);
});

t.test('snapshot restore gives identical search results (after upserts and removes)', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-item-snap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const n = 3000;
  const vecs = clusteredUnitVectors({ n, dim, seed: 9 });
  const index = ItemShardIndex.build(syntheticItems(n), vecs, dim, { flatMaxItems: 1000 });
  index.remove([3, 4]);
  index.upsert([{ videoId: 99_999, creatorId: 2, category: 2, durationS: 9, uploadTsMs: 2 }], clusteredUnitVectors({ n: 1, dim, seed: 3 }));
  const key = { shard: 1, shardCount: 4, modelVersion: 'v/1', featureSpecHash: 'abc', source: 'w@0' };
  const written = await writeItemSnapshot(dir, key, index);
  t.match(path.basename(written), 'item-shard-1-of-4-v_1');
  t.equal(await readItemSnapshot(dir, key, {}), undefined, 'options that pick another index kind (flatMaxItems 20000 → exact Flat): rebuilt, not restored');
  const restored = await readItemSnapshot(dir, key, { flatMaxItems: 1000 });
  if (restored === undefined) throw new Error('no snapshot restored');
  t.equal(restored.size, index.size);
  t.equal(restored.factory, index.factory);
  const queries = clusteredUnitVectors({ n: 20, dim, seed: 10 });
  for (let q = 0; q < 20; q++) {
    const query = queries.subarray(q * dim, (q + 1) * dim);
    t.same(restored.search(query, 100), index.search(query, 100), `query ${q} identical`);
  }
  t.equal(await readItemSnapshot(dir, { ...key, modelVersion: 'v/2' }, { flatMaxItems: 1000 }), undefined, 'other model version: no snapshot');
  t.equal(await readItemSnapshot(dir, { ...key, source: 'other@1' }, { flatMaxItems: 1000 }), undefined, 'other world: ignored');
});

t.test('bad searches are INVALID_ARGUMENT naming the field', async (t) => {
  const index = ItemShardIndex.build(syntheticItems(10), clusteredUnitVectors({ n: 10, dim }), dim);
  t.throws(() => index.search(new Float32Array(dim - 1), 10), { code: StatusCode.INVALID_ARGUMENT, details: 'user_vector' });
  t.throws(() => index.search(new Float32Array(dim), 0), { code: StatusCode.INVALID_ARGUMENT, details: 'k' });
  t.throws(() => index.search(new Float32Array(dim), 2001), { code: StatusCode.INVALID_ARGUMENT, details: 'k' });
  t.equal(index.search(new Float32Array(dim).fill(0.125), 100).videoIds.length, 10, 'k above shard size returns what there is');
});

t.test('index options: defaults, auto rule, validation naming the option', async (t) => {
  const d = resolveIndexOptions();
  t.equal(factoryFor(20_000, d), 'IDMap,Flat');
  t.equal(factoryFor(100_000, d), 'IVF1024,Flat');
  t.equal(nlistFor(1_250_000), 4096);
  t.equal(nprobeFor('IVF1024,Flat', d), 128);
  t.equal(nprobeFor("IVF64,Flat", d), 8);
  t.equal(nprobeFor("IVF256,Flat", d, 100, 6000), 171, "small shard: scan 40·k vectors");
  t.equal(nprobeFor("IVF4096,Flat", d, 100, 1_250_000), 512, "large shard: nlist/8");
  t.equal(nprobeFor('IVF64,Flat', resolveIndexOptions({ nprobe: 500 })), 64, 'clamped to nlist');
  t.equal(nprobeFor('IDMap,Flat', d), undefined);
  t.equal(factoryFor(10, resolveIndexOptions({ factory: 'HNSW32' })), 'IDMap,HNSW32');
  t.throws(() => resolveIndexOptions({ nprobe: 0 }), { name: 'TypeError', message: /index\.nprobe/ });
  t.throws(() => resolveIndexOptions({ efSearch: 1.5 }), { message: /index\.efSearch/ });
  t.throws(() => resolveIndexOptions({ factory: '' }), { message: /index\.factory/ });
  t.throws(() => resolveIndexOptions({ flatMaxItems: -1 }), { message: /index\.flatMaxItems/ });
});
