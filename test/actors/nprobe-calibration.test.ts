/**
 * Per-model nprobe calibration (actors/item-shard/nprobe-calibration.ts) on real faiss: the exact
 * top-k it measures against, the nprobe it picks (meets the target, and the next smaller setting
 * tried does not), how an item shard uses it ('calibrated' vs the fixed 'rule' vs 'configured'),
 * and the snapshot rules that keep a restored shard at its target.
 */
import t from 'tap';
import { faissFromFactory } from '../../actors/item-shard/faiss.js';
import { nprobeFor, resolveIndexOptions } from '../../actors/item-shard/index-options.js';
import { BISECT_PRECISION, MIN_CALIBRATION_QUERIES, calibrateNprobe, exactTopK, pickCalibratedNprobe } from '../../actors/item-shard/nprobe-calibration.js';
import { CALIBRATION_K, DEFAULT_PER_SHARD_K, ItemShardIndex, calibratedNprobe } from '../../actors/item-shard/shard-index.js';
import type { ItemShardSnapshotMeta } from '../../actors/item-shard/snapshot.js';
import { snapshotRefusal } from '../../actors/item-shard/snapshot.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import { syntheticItems } from './fixtures.js';

const dim = 16;

/** Exact top-k by a plain JavaScript scan (the reference for the faiss-based one). */
function bruteTopK(vectors: Float32Array, queries: Float32Array, k: number): number[][] {
  const n = vectors.length / dim;
  const out: number[][] = [];
  for (let q = 0; q < queries.length / dim; q++) {
    const scores = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += queries[q * dim + j]! * vectors[i * dim + j]!;
      scores[i] = s;
    }
    out.push(Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!).slice(0, k));
  }
  return out;
}

/** recall of `index`'s top-fetch at `nprobe` against the JavaScript truth. */
function recallAt(vectors: Float32Array, queries: Float32Array, factory: string, nlist: number, nprobe: number, k: number, fetch: number): number {
  const idx = faissFromFactory(dim, factory);
  idx.trainF32(vectors.subarray(0, Math.min(vectors.length, nlist * 64 * dim)));
  idx.addWithIds(vectors, BigInt64Array.from({ length: vectors.length / dim }, (_, i) => BigInt(i)));
  idx.setParam('nprobe', nprobe);
  const truth = bruteTopK(vectors, queries, k);
  const found = idx.searchF32(queries, fetch).labels;
  let sum = 0;
  truth.forEach((want, q) => {
    const got = new Set(Array.from(found.subarray(q * fetch, (q + 1) * fetch), Number));
    sum += want.filter((id) => got.has(id)).length / want.length;
  });
  return sum / truth.length;
}

t.test('exactTopK: chunked faiss Flat merged = a plain scan, best first', async (t) => {
  const vectors = clusteredUnitVectors({ n: 3000, dim, clusters: 20, seed: 3 });
  const queries = clusteredUnitVectors({ n: 12, dim, clusters: 20, seed: 4 });
  const want = bruteTopK(vectors, queries, 25);
  for (const chunk of [3000, 1000, 777]) {
    const got = exactTopK(vectors, dim, queries, 25, chunk);
    t.same(Array.from({ length: 12 }, (_, q) => Array.from(got.subarray(q * 25, (q + 1) * 25), Number)), want, `chunks of ${chunk} rows`);
  }
  const few = exactTopK(vectors.subarray(0, 10 * dim), dim, queries, 25, 4);
  t.equal(Array.from(few.subarray(0, 25)).filter((l) => l >= 0n).length, 10, 'fewer rows than k: padded with -1');
});

t.test('calibrateNprobe: the smallest setting tried that meets the target, measured as a plain scan would', async (t) => {
  const n = 20_000;
  const nlist = 128;
  const factory = `IVF${nlist},Flat`;
  const vectors = clusteredUnitVectors({ n, dim, clusters: 64, spread: 0.25, seed: 11 });
  const queries = clusteredUnitVectors({ n: 64, dim, clusters: 64, spread: 0.25, seed: 12 });
  const faiss = faissFromFactory(dim, factory);
  faiss.trainF32(vectors.subarray(0, nlist * 64 * dim));
  faiss.addWithIds(vectors, BigInt64Array.from({ length: n }, (_, i) => BigInt(i)));
  const k = 50;
  const fetch = 100;
  for (const [target, start] of [[0.95, 16], [0.95, 2], [0.99, 16], [0.8, 64]] as const) {
    const c = calibrateNprobe({ faiss, nlist, start, vectors, dim, queries, target, k, fetch, refineFactor: null });
    t.ok(c.met, `target ${target} from ${start}: met at nprobe ${c.nprobe} (tried ${c.points.map((p) => `${p.nprobe}:${p.recall.toFixed(3)}`).join(' ')})`);
    t.ok(c.lower >= target && c.recall > c.lower, 'the lower bound met it');
    t.equal(c.queries, 64);
    t.same(c.points.map((p) => p.nprobe), [...c.points.map((p) => p.nprobe)].sort((a, b) => a - b), 'points ascending');
    const below = c.points.filter((p) => p.nprobe < c.nprobe);
    if (c.nprobe > 1) t.ok(below.length > 0 && below.every((p) => p.lower < target), 'a smaller setting was tried and missed');
    t.ok(c.points.filter((p) => p.nprobe > c.nprobe).every((p) => p.lower >= target), 'the larger settings tried (a walk down from the start) all met it');
    const below1 = below.at(-1);
    if (c.nprobe > 1) t.ok(below1 !== undefined && c.nprobe - below1.nprobe <= Math.max(1, Math.ceil(c.nprobe * BISECT_PRECISION)), `bisected: the largest miss (${below1?.nprobe}) is within ${BISECT_PRECISION * 100}% of the choice`);
    // Independent check: a fresh index, the truth by a plain scan.
    const independent = recallAt(vectors, queries, factory, nlist, c.nprobe, k, fetch);
    t.ok(Math.abs(independent - c.recall) < 0.02, `recall ${c.recall.toFixed(3)} matches a plain-scan measurement ${independent.toFixed(3)}`);
  }
  const lo = calibrateNprobe({ faiss, nlist, start: 16, vectors, dim, queries, target: 0.8, k, fetch, refineFactor: null });
  const hi = calibrateNprobe({ faiss, nlist, start: 16, vectors, dim, queries, target: 0.99, k, fetch, refineFactor: null });
  t.ok(lo.nprobe < hi.nprobe, `a lower target probes fewer lists (${lo.nprobe} < ${hi.nprobe})`);
  const all = calibrateNprobe({ faiss, nlist, start: 16, vectors, dim, queries, target: 1, k, fetch, refineFactor: null });
  t.equal(all.recall, 1, 'target 1: reached (at most by probing every list, which is exact on IVF Flat)');

  t.throws(() => calibrateNprobe({ faiss, nlist, start: 16, vectors, dim, queries: queries.subarray(0, (MIN_CALIBRATION_QUERIES - 1) * dim), target: 0.9, k, fetch, refineFactor: null }), /at least 32 needed/);
  t.throws(() => calibrateNprobe({ faiss, nlist, start: 16, vectors, dim, queries, target: 1.5, k, fetch, refineFactor: null }), /target must be in \(0, 1\]/);
});

t.test('pickCalibratedNprobe and calibratedNprobe (what a restore under another target uses)', async (t) => {
  const points = [{ nprobe: 8, recall: 0.91, lower: 0.9 }, { nprobe: 10, recall: 0.95, lower: 0.94 }, { nprobe: 13, recall: 0.97, lower: 0.96 }];
  t.equal(pickCalibratedNprobe(points, 0.95)?.nprobe, 13);
  t.equal(pickCalibratedNprobe(points, 0.9)?.nprobe, 8);
  t.equal(pickCalibratedNprobe(points, 0.97), undefined);
  const c = { nprobe: 13, recall: 0.97, lower: 0.96, target: 0.95, met: true, k: 100, fetch: 200, refineFactor: null, queries: 64, points, ms: 1 };
  t.equal(calibratedNprobe(c, 0.95), 13);
  t.equal(calibratedNprobe(c, 0.92), 10, 'a lower target picks from the settings tried');
  t.equal(calibratedNprobe(c, 0.9), 8);
  t.equal(calibratedNprobe(c, 0.97), undefined, 'a higher target than any tried met: unknown');
  const missed = { ...c, target: 0.99, met: false };
  t.equal(calibratedNprobe(missed, 0.99), 13, 'its own target, missed: the best it found');
  t.equal(calibratedNprobe(null, 0.95), undefined);
});

t.test("an item shard's 'auto' nprobe: calibrated on the model's queries, else the rule, else configured", async (t) => {
  const n = 30_000;
  const vectors = clusteredUnitVectors({ n, dim, clusters: 64, spread: 0.25, seed: 21 });
  const queries = clusteredUnitVectors({ n: 200, dim, clusters: 64, spread: 0.25, seed: 22 });
  const items = syntheticItems(n);
  const factory = 'IVF128,Flat';
  const source = { queries, fetch: DEFAULT_PER_SHARD_K, shardCount: 1 };

  const calibrated = ItemShardIndex.build(items, vectors, dim, { factory, calibrationQueries: 64 }, source);
  const c = calibrated.nprobeCalibration;
  t.ok(c !== null, 'an IVF index with nprobe auto and queries is calibrated');
  if (c === null) return;
  t.equal(c.queries, 64, 'at most calibrationQueries of the queries');
  t.equal(c.k, CALIBRATION_K, 'one shard: recall@100');
  const ofFour = ItemShardIndex.build(items, vectors, dim, { factory, calibrationQueries: 64 }, { ...source, shardCount: 4 });
  t.equal(ofFour.nprobeCalibration?.k, 25, 'a shard of four: recall@25, its average share of the top-100');
  t.equal(c.fetch, DEFAULT_PER_SHARD_K);
  t.equal(c.target, 0.95, 'default recallTarget');
  t.ok(c.met && c.lower >= 0.95, `met: ${c.recall.toFixed(3)} (lower bound ${c.lower.toFixed(3)}) at nprobe ${c.nprobe}`);
  t.same(calibrated.searchNprobe(DEFAULT_PER_SHARD_K), { nprobe: c.nprobe, source: 'calibrated' }, 'a perShardK search runs at the calibrated nprobe');
  t.equal(calibrated.searchNprobe(1).nprobe, c.nprobe, 'so does a smaller one');
  const bigK = 2000;
  t.equal(calibrated.searchNprobe(bigK).nprobe, nprobeFor(factory, resolveIndexOptions({ factory }), bigK, n, { nprobe: c.nprobe, fetch: c.fetch }), 'a search fetching more than it was measured at keeps the k rule');
  t.ok(calibrated.searchNprobe(bigK).nprobe! > c.nprobe, `(${calibrated.searchNprobe(bigK).nprobe} lists for k ${bigK})`);
  t.same(calibrated.buildFacts.nprobeCalibration, c, 'kept in the build facts (what a snapshot stores)');

  // The calibrated shard reaches the target on queries it was not calibrated on (same distribution).
  const held = queries.subarray(100 * dim);
  const truth = bruteTopK(vectors, held, CALIBRATION_K);
  let sum = 0;
  truth.forEach((want, q) => {
    const got = new Set(calibrated.search(held.subarray(q * dim, (q + 1) * dim), DEFAULT_PER_SHARD_K).videoIds);
    sum += want.filter((row) => got.has(items[row]!.videoId)).length / want.length;
  });
  t.ok(sum / truth.length >= 0.93, `held-out recall ${(sum / truth.length).toFixed(3)} near the target`);

  const strict = ItemShardIndex.build(items, vectors, dim, { factory, recallTarget: 0.99 }, source);
  t.ok(strict.nprobeCalibration!.nprobe > c.nprobe, 'a higher recallTarget probes more lists');

  const rule = ItemShardIndex.build(items, vectors, dim, { factory }, { queries: undefined, fetch: 200, shardCount: 1 });
  t.equal(rule.nprobeCalibration, null, 'a model without queries: no calibration');
  t.same(rule.searchNprobe(1), { nprobe: nprobeFor(factory, resolveIndexOptions({ factory }), 1, n), source: 'rule' });
  const off = ItemShardIndex.build(items, vectors, dim, { factory, calibrationQueries: 0 }, source);
  t.equal(off.nprobeCalibration, null, 'calibrationQueries 0: off');
  t.equal(off.searchNprobe(1).source, 'rule');
  const configured = ItemShardIndex.build(items, vectors, dim, { factory, nprobe: 7 }, source);
  t.equal(configured.nprobeCalibration, null, 'a configured nprobe is not calibrated');
  t.same(configured.searchNprobe(1), { nprobe: 7, source: 'configured' });
  const flat = ItemShardIndex.build(items.slice(0, 500), vectors.subarray(0, 500 * dim), dim, {}, source);
  t.equal(flat.nprobeCalibration, null, 'exact Flat: nothing to calibrate');
  t.equal(flat.searchNprobe(1).nprobe, undefined);
  const fewQueries = ItemShardIndex.build(items, vectors, dim, { factory }, { queries: queries.subarray(0, 10 * dim), fetch: 200, shardCount: 1 });
  t.equal(fewQueries.nprobeCalibration, null, `fewer than ${MIN_CALIBRATION_QUERIES} queries: the rule`);

  t.throws(() => resolveIndexOptions({ recallTarget: 0 }), /index.recallTarget must be a number in \(0, 1\]/);
  t.throws(() => resolveIndexOptions({ recallTarget: 1.01 }), /index.recallTarget/);
  t.throws(() => resolveIndexOptions({ calibrationQueries: 10 }), /index.calibrationQueries must be 0 \(off\) or at least 32/);
});

t.test("snapshotRefusal: a restored 'auto' IVF shard keeps to the recall target or is rebuilt", async (t) => {
  const KEY = { shard: 0, shardCount: 1, modelVersion: 'v1', featureSpecHash: 'spec-a', source: 'w@0' };
  const calibration = { nprobe: 13, recall: 0.965, lower: 0.96, target: 0.95, met: true, k: 100, fetch: 200, refineFactor: null, queries: 512, points: [{ nprobe: 10, recall: 0.945, lower: 0.94 }, { nprobe: 13, recall: 0.965, lower: 0.96 }], ms: 5 };
  const build = { requestedFactory: 'auto', flatMaxItems: 50, factory: 'IVF64,Flat', nlist: 64, trainPerList: 64, faissBuild: 'debian' as const, itemsAtBuild: 400, builtAtMs: 1, nprobeCalibration: calibration };
  const meta: ItemShardSnapshotMeta = { format: 2, ...KEY, dim, factory: 'IVF64,Flat', rows: 400, items: 400, createdAt: '', build };
  const options = resolveIndexOptions({ flatMaxItems: 50 });
  const accept = { options, faissBuild: 'debian' as const, calibration: { fetch: 200, hasQueries: true } };
  t.equal(snapshotRefusal(meta, KEY, accept), undefined, 'calibrated for this target and perShardK: restored');
  t.equal(snapshotRefusal(meta, KEY, { ...accept, options: resolveIndexOptions({ flatMaxItems: 50, recallTarget: 0.9 }) }), undefined, 'a lower target: picked from the settings tried');
  t.match(snapshotRefusal(meta, KEY, { ...accept, options: resolveIndexOptions({ flatMaxItems: 50, recallTarget: 0.97 }) }), /calibrated for recall 0.95 \(best lower bound 0.960\); index.recallTarget is now 0.97/);
  t.match(snapshotRefusal(meta, KEY, { ...accept, calibration: { fetch: 400, hasQueries: true } }), /calibrated for 200 results per shard search, the coordinator asks 400/);
  const uncalibrated = { ...meta, build: { ...build, nprobeCalibration: null } };
  t.match(snapshotRefusal(uncalibrated, KEY, accept), /not calibrated; the model ships retrieval queries, so the rebuild calibrates it/);
  const { nprobeCalibration: _absent, ...olderFacts } = build;
  t.match(snapshotRefusal({ ...meta, build: olderFacts }, KEY, accept), /not calibrated/, 'a snapshot from before calibration existed: rebuilt');
  t.equal(snapshotRefusal(uncalibrated, KEY, { ...accept, calibration: { fetch: 200, hasQueries: false } }), undefined, 'a model without queries: the rule either way');
  t.equal(snapshotRefusal(uncalibrated, KEY, { ...accept, options: resolveIndexOptions({ flatMaxItems: 50, nprobe: 32 }) }), undefined, 'a configured nprobe does not need one');
  t.equal(snapshotRefusal(uncalibrated, KEY, { ...accept, options: resolveIndexOptions({ flatMaxItems: 50, calibrationQueries: 0 }) }), undefined, 'calibration off');
  t.match(snapshotRefusal({ ...meta, build: { ...build, nprobeCalibration: { ...calibration, points: [{ nprobe: 999, recall: 1, lower: 1 }] } } }, KEY, accept), /malformed/);
  const { build: _facts, ...format1 } = meta;
  t.match(snapshotRefusal({ ...format1, format: 1, rows: 400 }, KEY, { ...accept, options: resolveIndexOptions({ flatMaxItems: 50, factory: 'IVF64,Flat' }) }), /not calibrated/, 'a format-1 IVF snapshot (no facts) is rebuilt too when the model ships queries');
  const refineFacts = { ...build, factory: 'IDMap,IVF64,PQ16x4fs,RFlat', requestedFactory: 'IDMap,IVF64,PQ16x4fs,RFlat', nprobeCalibration: { ...calibration, refineFactor: 2 } };
  const refineMeta = { ...meta, factory: refineFacts.factory, build: refineFacts };
  const refineOpts = (refineFactor: number) => ({ ...accept, options: resolveIndexOptions({ flatMaxItems: 50, factory: refineFacts.factory, refineFactor }) });
  t.equal(snapshotRefusal(refineMeta, KEY, refineOpts(2)), undefined, 'calibrated at the re-rank factor it serves at');
  t.match(snapshotRefusal(refineMeta, KEY, refineOpts(4)), /calibrated at re-rank factor 2, index.refineFactor is now 4/);
});

t.test("the item shard's default perShardK is the coordinator's", async (t) => {
  t.equal(DEFAULT_PER_SHARD_K, resolveCoordinatorConfig({}).perShardK);
});

t.test('a re-rank index is calibrated at the refine factor it serves at; a fetch above the shard size is recorded as asked', async (t) => {
  const n = 12_000;
  const vectors = clusteredUnitVectors({ n, dim, clusters: 32, spread: 0.25, seed: 31 });
  const queries = clusteredUnitVectors({ n: 96, dim, clusters: 32, spread: 0.25, seed: 32 });
  const items = syntheticItems(n);
  const factory = `IVF64,PQ${dim}x4fs,RFlat`;
  const index = ItemShardIndex.build(items, vectors, dim, { factory, refineFactor: 2, recallTarget: 0.9 }, { queries, fetch: 100, shardCount: 1 });
  const c = index.nprobeCalibration;
  t.ok(c !== null && c.refineFactor === 2, 'the refine factor is recorded');
  if (c === null) return;
  // What the calibration measured is what the serving searches get: the same queries through
  // ItemShardIndex.search (its constructor set k_factor_rf) against a plain scan.
  const truth = bruteTopK(vectors, queries, c.k);
  let sum = 0;
  truth.forEach((want, q) => {
    const got = new Set(index.search(queries.subarray(q * dim, (q + 1) * dim), 100).videoIds);
    sum += want.filter((row) => got.has(items[row]!.videoId)).length / want.length;
  });
  t.ok(Math.abs(sum / truth.length - c.recall) < 1e-9, `serving recall ${(sum / truth.length).toFixed(4)} = calibrated ${c.recall.toFixed(4)}`);

  const small = ItemShardIndex.build(items.slice(0, 3000), vectors.subarray(0, 3000 * dim), dim, { factory: 'IVF32,Flat' }, { queries, fetch: 5000, shardCount: 1 });
  t.equal(small.nprobeCalibration?.fetch, 5000, 'the perShardK asked, not the clamped search size (a restore compares it with the coordinator\'s)');
});
