/**
 * Batched shard search (ItemShardIndex.searchMany) answers exactly what one search per request
 * answers, and the `itemShard.searchBatch.maxQueries` knob is validated. Real faiss, synthetic unit
 * vectors, no worker, no NATS.
 */
import t from 'tap';
import { StatusCode } from '../../core/status.js';
import { describeConfig, resolveConfig } from '../../cluster/config.js';
import type { UpnextConfigInput } from '../../cluster/config.js';
import { resolveItemShardOptions } from '../../actors/item-shard/item-shard.js';
import { ItemShardIndex } from '../../actors/item-shard/shard-index.js';
import type { ShardQuery } from '../../actors/item-shard/shard-index.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';
import { syntheticItems } from '../actors/fixtures.js';

const dim = 64;

/** Queries with mixed k and exclusions; the excluded ids include each query's own top hits. */
function mixedQueries(index: ItemShardIndex, vecs: Float32Array): ShardQuery[] {
  const row = (r: number) => {
    if ((r + 1) * dim > vecs.length) throw new Error(`row ${r} is outside the vectors`);
    return vecs.subarray(r * dim, (r + 1) * dim);
  };
  const top = (r: number, k: number) => index.search(row(r), k).videoIds;
  return [
    { query: row(3), k: 10 },
    { query: row(3), k: 10, exclude: top(3, 4) }, // the same vector, its best four excluded
    { query: row(40), k: 1, exclude: top(40, 1) }, // its only answer excluded: the next one fills in
    { query: row(77), k: 200, exclude: [5, 6, 7, ...top(77, 30).filter((_, i) => i % 2 === 0)] },
    { query: row(300), k: 37, exclude: [] },
    { query: row(401), k: 3, exclude: [424_242] }, // an unknown id excludes nothing
  ];
}

t.test('searchMany on a Flat index = one search per request (mixed k, exclusions)', async (t) => {
  const n = 2000;
  const vecs = clusteredUnitVectors({ n, dim, seed: 11 });
  const index = ItemShardIndex.build(syntheticItems(n), vecs, dim);
  t.equal(index.factory, 'IDMap,Flat', 'exact index: the answers must match exactly');
  const queries = mixedQueries(index, vecs);
  const batched = index.searchMany(queries);
  t.equal(batched.length, queries.length, 'one answer per query, in order');
  queries.forEach((q, i) => {
    const alone = index.search(q.query, q.k, q.exclude);
    t.same(batched[i], alone, `query ${i} (k ${q.k}, ${q.exclude?.length ?? 0} excluded) as alone`);
    t.equal(batched[i]?.videoIds.length, q.k, `query ${i}: k results despite its exclusions`);
    t.notOk(batched[i]?.videoIds.some((id) => q.exclude?.includes(id)), `query ${i}: no excluded id`);
  });
  const own = index.search(queries[1]!.query, 1).videoIds[0];
  t.equal(own, 4, 'row 3 is video 4, its own best hit ...');
  t.notOk(batched[1]?.videoIds.includes(4), '... and is absent where excluded, though in the top k otherwise');
  t.ok(batched[0]?.videoIds.includes(4), 'while the same vector unexcluded in the same batch keeps it');
  t.same(index.searchMany([]), [], 'no queries, no answers');

  // Removed and replaced items (Flat removes from faiss) are absent from batched answers too.
  t.equal(index.remove([4, 41]), 2);
  index.upsert([{ videoId: 78, creatorId: 1, category: 2, durationS: 3, uploadTsMs: 4 }], clusteredUnitVectors({ n: 1, dim, seed: 99 }));
  const after = index.searchMany(queries);
  queries.forEach((q, i) => t.same(after[i], index.search(q.query, q.k, q.exclude), `after changes, query ${i} as alone`));
  t.notOk(after.some((b) => b.videoIds.includes(4) || b.videoIds.includes(41)), 'removed items never returned');
});

t.test('searchMany on HNSW (no faiss removal): tombstoned rows are filtered, k still filled', async (t) => {
  const n = 600;
  const vecs = clusteredUnitVectors({ n, dim, seed: 12 });
  // efSearch above every fetch: HNSW then explores the same beam whatever the batch's fetch.
  const index = ItemShardIndex.build(syntheticItems(n), vecs, dim, { factory: 'HNSW16', efSearch: 1024 });
  t.equal(index.factory, 'IDMap,HNSW16');
  const queries = mixedQueries(index, vecs);
  // Remove the top hits of several queries and replace one (its old vector stays in faiss, dead).
  const gone = [...index.search(queries[0]!.query, 5).videoIds, ...index.search(queries[4]!.query, 3).videoIds];
  t.equal(index.remove(gone), new Set(gone).size);
  const replaced = index.search(queries[2]!.query, 2).videoIds[1]!;
  index.upsert([{ videoId: replaced, creatorId: 7, category: 1, durationS: 9, uploadTsMs: 1 }], clusteredUnitVectors({ n: 1, dim, seed: 77 }));
  const batched = index.searchMany(queries);
  queries.forEach((q, i) => {
    t.same(batched[i], index.search(q.query, q.k, q.exclude), `query ${i} as alone`);
    t.equal(batched[i]?.videoIds.length, q.k, `query ${i}: k results despite ${gone.length} dead vectors`);
    t.notOk(batched[i]?.videoIds.some((id) => gone.includes(id)), `query ${i}: no removed item`);
    t.ok((batched[i]?.videoIds ?? []).filter((id) => id === replaced).length <= 1, `query ${i}: a replaced item at most once`);
  });
});

t.test('searchMany validates every query (INVALID_ARGUMENT naming the field) before searching', async (t) => {
  const vecs = clusteredUnitVectors({ n: 100, dim, seed: 13 });
  const index = ItemShardIndex.build(syntheticItems(100), vecs, dim);
  const good = { query: vecs.subarray(0, dim), k: 5 };
  t.throws(() => index.searchMany([good, { query: new Float32Array(3), k: 5 }]), { code: StatusCode.INVALID_ARGUMENT, details: 'user_vector' });
  t.throws(() => index.searchMany([good, { query: good.query, k: 0 }]), { code: StatusCode.INVALID_ARGUMENT, details: 'k' });
  t.throws(() => index.searchMany([{ ...good, exclude: Array.from({ length: 10_001 }, (_, i) => i) }, good]), {
    code: StatusCode.INVALID_ARGUMENT,
    details: 'exclude_video_ids',
  });
});

t.test('itemShard.searchBatch.maxQueries: default 16, 1..256, TypeError naming the key', async (t) => {
  t.same(resolveConfig().itemShard.searchBatch, { maxQueries: 16 });
  t.equal(resolveConfig({ itemShard: { searchBatch: { maxQueries: 1 } } }).itemShard.searchBatch.maxQueries, 1, '1 = batching off');
  t.equal(resolveConfig({ itemShard: { searchBatch: { maxQueries: 256 } } }).itemShard.searchBatch.maxQueries, 256);
  t.equal(resolveConfig({ itemShard: { searchBatch: {} } }).itemShard.searchBatch.maxQueries, 16, 'an empty section takes the default');
  for (const bad of [0, 257, 1.5, '16', -3]) {
    t.throws(
      () => resolveConfig({ itemShard: { searchBatch: { maxQueries: bad } } } as unknown as UpnextConfigInput),
      { name: 'TypeError', message: /^config itemShard\.searchBatch\.maxQueries must be an integer in 1\.\.256/ },
      `maxQueries ${JSON.stringify(bad)} refused`,
    );
  }
  t.throws(
    () => resolveConfig({ itemShard: { searchBatch: { maxDelayMs: 1 } } } as unknown as UpnextConfigInput),
    { name: 'TypeError', message: /^config itemShard\.searchBatch\.maxDelayMs is not a known option/ },
  );
  t.throws(() => resolveConfig({ itemShard: { searchBatch: 16 } } as unknown as UpnextConfigInput), { name: 'TypeError', message: /^config itemShard\.searchBatch must be an object/ });
  const row = describeConfig().find((r) => r.key === 'itemShard.searchBatch.maxQueries');
  t.equal(row?.default, '16', 'documented in the knob table with its default');
  const base = { cluster: 'c', shard: 0, shardCount: 1, worldDir: '/w', modelDir: '/m' };
  t.same(resolveItemShardOptions(base).searchBatch, { maxQueries: 16 }, 'the shard option defaults alike');
  t.throws(() => resolveItemShardOptions({ ...base, searchBatch: { maxQueries: 0 } }), { name: 'TypeError', message: /^option searchBatch\.maxQueries/ });
});
