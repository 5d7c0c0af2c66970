/**
 * An item shard calibrates its 'auto' nprobe on the queries its model ships, through the real
 * start-up path (openItemShard, and the worker behind startItemShard): the calibration is reported
 * in stats and kept in the snapshot; a restart restores it; a model that gains queries later makes
 * an uncalibrated snapshot rebuild; a broken queries file fails the start with a clear error.
 * Real faiss, real ONNX towers (tiny, untrained), real worker thread, real nats-server.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { openItemShard } from '../../actors/item-shard/bootstrap.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import { ItemTower } from '../../actors/item-shard/item-tower.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';
import { readRetrievalQueries } from '../../actors/model/retrieval-queries.js';
import { MODEL_FILES, RETRIEVAL_QUERIES_FILE } from '../../core/model/contract.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { StatusCode } from '../../core/status.js';
import { natsFixture } from '../fixtures/nats.js';
import { readModelDirAt } from '../../cluster/node/model.js';
import { renderMetrics } from '../../cluster/node/metrics.js';
import { TINY_SPEC, writeTinyModel, writeTinyWorld } from './fixtures.js';

/** Gives the model in `dir` `count` query vectors (unit norm) and names them in its manifest. */
async function shipQueries(dir: string, count: number, dim: number): Promise<Float32Array> {
  const vectors = clusteredUnitVectors({ n: count, dim, clusters: 8, spread: 0.3, seed: 5 });
  await writeFile(path.join(dir, RETRIEVAL_QUERIES_FILE), new Uint8Array(vectors.buffer));
  const manifest = JSON.parse(await readFile(path.join(dir, MODEL_FILES.manifest), 'utf8')) as ModelManifest;
  const next: ModelManifest = { ...manifest, retrievalQueries: { file: RETRIEVAL_QUERIES_FILE, count, dim, source: 'test vectors' } };
  await writeFile(path.join(dir, MODEL_FILES.manifest), JSON.stringify(next));
  return vectors;
}

t.test('openItemShard: calibrated from the model, kept through a snapshot, recalibrated when the model gains queries', async (t) => {
  const root = t.testdir();
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 3000, numUsers: 10, days: 1 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const snapshotDir = path.join(root, 'snap');
  const common = { worldDir: world.dir, shard: 0, shardCount: 1, snapshotDir, towerBatchRows: 1024, index: { flatMaxItems: 100 } };

  let tower = await ItemTower.load(modelDir);
  const rule = await openItemShard({ ...common, tower });
  t.match(rule.index.factory, /IVF/, 'an IVF index at this size');
  t.equal(rule.index.nprobeCalibration, null, 'a model without queries: the rule');
  t.equal(rule.index.searchNprobe(200).source, 'rule');
  await tower.close();

  await shipQueries(modelDir, 64, TINY_SPEC.embeddingDim);
  tower = await ItemTower.load(modelDir);
  t.teardown(() => tower.close());
  const rebuilt = await openItemShard({ ...common, tower, perShardK: 150 });
  t.equal(rebuilt.restored, false, 'the uncalibrated snapshot is refused once the model ships queries');
  t.match(rebuilt.snapshotRefused, /not calibrated; the model ships retrieval queries/);
  const c = rebuilt.index.nprobeCalibration;
  t.ok(c !== null && c.queries === 64 && c.fetch === 150 && c.met, `calibrated on the model's 64 queries for perShardK 150: nprobe ${c?.nprobe}, recall ${c?.recall.toFixed(3)}`);
  t.equal(rebuilt.index.searchNprobe(150).source, 'calibrated');

  const restored = await openItemShard({ ...common, tower, perShardK: 150 });
  t.equal(restored.restored, true, 'its own calibrated snapshot is restored');
  t.same(restored.index.nprobeCalibration, c, 'with the calibration it was built with');
  t.same(restored.index.searchNprobe(150), rebuilt.index.searchNprobe(150));

  const otherK = await openItemShard({ ...common, tower, perShardK: 300 });
  t.equal(otherK.restored, false, 'another perShardK: rebuilt and recalibrated');
  t.equal(otherK.index.nprobeCalibration?.fetch, 300);
});

t.test('retrieval queries that do not match the manifest fail loudly', async (t) => {
  const root = t.testdir();
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const manifest = (): Promise<ModelManifest> => readFile(path.join(modelDir, MODEL_FILES.manifest), 'utf8').then((s) => JSON.parse(s) as ModelManifest);
  t.equal(await readRetrievalQueries(modelDir, await manifest()), undefined, 'no entry: none');
  const vectors = await shipQueries(modelDir, 40, TINY_SPEC.embeddingDim);
  t.same(await readRetrievalQueries(modelDir, await manifest()), vectors, 'read back as written');
  const m = await manifest();
  const bad = async (change: Partial<NonNullable<ModelManifest['retrievalQueries']>>, re: RegExp, what: string) => {
    await t.rejects(readRetrievalQueries(modelDir, { ...m, retrievalQueries: { ...m.retrievalQueries!, ...change } }), { code: StatusCode.FAILED_PRECONDITION, message: re }, what);
  };
  await bad({ count: 41 }, /retrieval_queries.f32 holds 2560 bytes, count × dim × 4 = 2624/, 'a size that is not count × dim × 4');
  await bad({ dim: 32 }, /retrievalQueries.dim is 32, the model's embedding width is 16/, 'another width');
  await bad({ file: '../manifest.json' }, /retrievalQueries.file must be a file name in the version directory/, 'a path out of the version');
  await bad({ file: 'missing.f32' }, /cannot read missing.f32/, 'a missing file');
  await bad({ count: 0 }, /retrievalQueries.count must be a positive integer/, 'count 0');
  const nan = new Float32Array(vectors);
  nan[16 * 3 + 2] = Number.NaN;
  await writeFile(path.join(modelDir, RETRIEVAL_QUERIES_FILE), new Uint8Array(nan.buffer));
  await bad({}, /row 3 holds a non-finite value/, 'a NaN');
});

t.test('item shard worker: the calibration shows in stats; a broken queries file fails the start', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-item-calib');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 3000, numUsers: 10, days: 1 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  await shipQueries(modelDir, 64, TINY_SPEC.embeddingDim);
  const base = { nc, cluster: `calib${process.pid}`, shard: 0, shardCount: 1, worldDir: world.dir, modelDir, index: { flatMaxItems: 100 }, perShardK: 120 };
  const shard = await startItemShard(base);
  const s = shard.stats().nprobe;
  t.equal(s.source, 'calibrated');
  t.equal(s.calibration?.fetch, 120, 'calibrated for the perShardK it was given');
  t.equal(s.calibration?.queries, 64);
  t.equal(s.nprobe, s.calibration?.nprobe, 'stats name the nprobe a perShardK search runs at');
  // What an operator alerts on: the node's /metrics renders the same stats.
  const metrics = renderMetrics({ node: 'n1', cluster: 'c', mapVersion: 1, modelVersion: 'v', process: { cpuSecondsTotal: 0, rssBytes: 0, heapUsedBytes: 0, eventLoopDelayP99Ms: 0, uptimeSeconds: 0 }, actors: [{ kind: 'item_shard', index: 0, stats: shard.stats() }] });
  t.match(metrics, /upnext_item_shard_nprobe_source_info\{cluster="c",node="n1",index="0",value="calibrated"\} 1/);
  t.match(metrics, /upnext_item_shard_nprobe_calibration_met\{cluster="c",node="n1",index="0"\} 1/);
  t.match(metrics, new RegExp(`upnext_item_shard_nprobe_nprobe\\{cluster="c",node="n1",index="0"\\} ${s.nprobe}`));
  await shard.stop();

  const flat = await startItemShard({ ...base, index: {} });
  t.same(flat.stats().nprobe, { nprobe: null, source: 'none', calibration: null }, 'exact Flat: no lists');
  await flat.stop();

  await writeFile(path.join(modelDir, RETRIEVAL_QUERIES_FILE), new Uint8Array(12));
  await t.rejects(startItemShard(base), /retrieval_queries.f32 holds 12 bytes/, 'a broken model is refused at start, not calibrated on garbage');
  const off = await startItemShard({ ...base, index: { flatMaxItems: 100, calibrationQueries: 0 } });
  t.equal(off.stats().nprobe.source, 'rule', 'calibration off: the file is not read, the shard starts on the rule');
  await off.stop();
  await t.rejects(readModelDirAt(modelDir), { code: StatusCode.FAILED_PRECONDITION, message: /retrieval_queries.f32 holds 12 bytes/ }, 'a node refuses the version before it starts on it or switches to it');
});
