/**
 * End to end on a tiny synthetic world: generate, train every model, export ONNX, and check that
 * the published version is complete, loadable by onnxruntime, refused under another feature spec,
 * and better than the popularity baseline.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { specHash } from '../../core/features/index.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { MODEL_FILES, RETRIEVAL_QUERIES_FILE, TENSORS } from '../../core/model/contract.js';
import { readRetrievalQueries } from '../../actors/model/retrieval-queries.js';
import { DEFAULT_RETRIEVAL_QUERIES, attachRetrievalQueries, onnxRetrievalQueries } from '../../offline/pipeline/retrieval-queries.js';
import { SplitId, indicesOf } from '../../offline/pipeline/examples.js';
import { StatusCode } from '../../core/status.js';
import { PopularityRecommender } from '../../offline/baselines/popularity.js';
import { evaluateRetrieval } from '../../offline/eval/retrieval.js';
import { loadModelManifest, readLatestVersion } from '../../offline/onnx/load.js';
import { PARITY_TOLERANCE } from '../../offline/onnx/parity.js';
import { SINGLE_TASK_RANKER_FILE } from '../../offline/onnx/sessions.js';
import { trainModels } from '../../offline/pipeline/train.js';
import { generateWorld } from '../../offline/world/generate.js';
import { FIXED_RANKER_EPOCHS } from '../../offline/pipeline/fit.js';

t.test('tiny world: train, export, load, and beat popularity', { timeout: 300_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upnext-e2e-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const world = await generateWorld({ name: 'tiny', outDir: join(root, 'worlds'), videos: 2000, users: 1000, days: 5, seed: 7, createdAt: '2024-01-01T00:00:00Z' });
  const models = join(root, 'models');
  const res = await trainModels({ worldDir: world.dir, outDir: models, seed: 3, version: 'v-tiny' });

  t.equal(res.version, 'v-tiny');
  t.equal(await readLatestVersion(models), 'v-tiny', 'LATEST names the version');
  for (const f of [MODEL_FILES.userTower, MODEL_FILES.itemTower, MODEL_FILES.ranker, MODEL_FILES.manifest, SINGLE_TASK_RANKER_FILE]) {
    t.ok((await stat(join(models, 'v-tiny', f))).size > 0, `${f} written`);
  }
  const manifest = await loadModelManifest(join(models, 'v-tiny'), specHash(DEFAULT_FEATURE_SPEC));
  t.equal(manifest.featureSpecHash, specHash(DEFAULT_FEATURE_SPEC));
  t.ok(['isotonic', 'temperature', 'identity'].includes(manifest.calibration.click.type), 'calibration stored');
  t.equal(manifest.trainingData['world'], 'tiny');
  t.match(manifest.trainingData['rankerShape'], /^\d+-64-4x32-16$/, 'the manifest names the ranker\'s widths');
  t.equal(manifest.trainingData['rankerEpochsFrom'], 'fixed', 'by default the rankers train a fixed count of epochs');
  t.equal(manifest.trainingData['rankerEpochs'], FIXED_RANKER_EPOCHS, 'the epochs are recorded');
  t.equal(manifest.trainingData['singleWatchEpochs'], FIXED_RANKER_EPOCHS);
  const parity = manifest.metrics['onnx_parity'] ?? {};
  for (const file of [MODEL_FILES.userTower, MODEL_FILES.itemTower, MODEL_FILES.ranker]) {
    t.type(parity[file.replace('.onnx', '_max_abs_diff')], 'number', `parity of ${file} recorded`);
  }
  for (const [k, v] of Object.entries(parity)) t.ok(v <= PARITY_TOLERANCE, `${k} = ${v}`);
  t.same(JSON.parse(await readFile(join(models, 'v-tiny', MODEL_FILES.manifest), 'utf8')).tensors, manifest.tensors);

  // Retrieval queries for the item shards' nprobe calibration: the trained user tower's vectors of
  // a sample of users; `cli.js queries` computes the same rows from user_tower.onnx.
  const rq = manifest.retrievalQueries;
  t.ok(rq !== undefined && rq.file === RETRIEVAL_QUERIES_FILE && rq.dim === DEFAULT_FEATURE_SPEC.embeddingDim, 'the manifest names the retrieval queries');
  t.equal(rq?.count, Math.min(DEFAULT_RETRIEVAL_QUERIES, indicesOf(res.trained.set, SplitId.TEST).length), 'one per sampled test-day impression');
  const written = await readRetrievalQueries(join(models, 'v-tiny'), manifest);
  const d = DEFAULT_FEATURE_SPEC.embeddingDim;
  t.ok(written !== undefined && written.length === (rq?.count ?? 0) * d);
  const norms = Array.from({ length: rq?.count ?? 0 }, (_, r) => Math.hypot(...written!.subarray(r * d, (r + 1) * d)));
  t.ok(norms.every((n) => Math.abs(n - 1) < 1e-3), 'unit vectors');
  const fromOnnx = await onnxRetrievalQueries(res.trained.set, await readFile(join(models, 'v-tiny', MODEL_FILES.userTower)), DEFAULT_RETRIEVAL_QUERIES, 3);
  const maxDiff = written!.reduce((m, v, i) => Math.max(m, Math.abs(v - fromOnnx!.vectors[i]!)), 0);
  t.ok(maxDiff <= PARITY_TOLERANCE, `user_tower.onnx gives the same rows (max |diff| ${maxDiff.toExponential(2)})`);
  const attached = await attachRetrievalQueries(join(models, 'v-tiny'), manifest, { ...fromOnnx!, info: { ...fromOnnx!.info, source: 'rewritten' } });
  t.equal((await loadModelManifest(join(models, 'v-tiny'), specHash(DEFAULT_FEATURE_SPEC))).retrievalQueries?.source, 'rewritten', 'attach rewrites the manifest entry');
  t.same(await readRetrievalQueries(join(models, 'v-tiny'), attached), fromOnnx!.vectors, 'and the file');
  t.not(attached.retrievalQueries?.file, RETRIEVAL_QUERIES_FILE, 'replacing rows writes a new file (a reader never pairs the new entry with the old file)');
  t.notOk(existsSync(join(models, 'v-tiny', RETRIEVAL_QUERIES_FILE)), 'and removes the old one after the manifest moved on');
  await t.rejects(loadModelManifest(join(models, 'v-tiny'), specHash({ ...DEFAULT_FEATURE_SPEC, historyLength: 10 })), { code: StatusCode.FAILED_PRECONDITION });

  // The exported item tower runs in onnxruntime and returns unit vectors of the contract's width.
  const session = await ort.InferenceSession.create(join(models, 'v-tiny', MODEL_FILES.itemTower));
  const it = TENSORS.itemTower;
  const out = await session.run({
    [it.itemIds]: new ort.Tensor('int64', BigInt64Array.from([5n, 9n]), [1, 2]),
    [it.creatorIds]: new ort.Tensor('int64', BigInt64Array.from([3n]), [1]),
    [it.itemDense]: new ort.Tensor('float32', new Float32Array(manifest.tensors.itemTower.inputs[2]!.shape[1]!), [1, manifest.tensors.itemTower.inputs[2]!.shape[1]!]),
  });
  await session.release();
  const v = out[it.itemVec]!.data as Float32Array;
  t.equal(v.length, DEFAULT_FEATURE_SPEC.embeddingDim);
  t.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4, 'item vector is L2-normalised');

  // Better than popularity on the same split and rule.
  const pop = await PopularityRecommender.fit(world.dir);
  const popRecall = await evaluateRetrieval(world.dir, (u, k, ex) => pop.recommend(u, k, ex));
  const tt = res.metrics['two_tower']!;
  t.ok(tt['recall_at_100']! > popRecall.recall_at_100, `two-tower Recall@100 ${tt['recall_at_100']} > popularity ${popRecall.recall_at_100}`);
  const mmoe = res.metrics['mmoe']!;
  t.ok(mmoe['click_auc']! > 0.6, `MMoE click AUC ${mmoe['click_auc']} well above chance`);
  t.ok(Number.isFinite(mmoe['watch_mae_log1p']), 'watch MAE reported');
  const popClick = res.metrics['popularity']!;
  t.ok(mmoe['click_auc']! > popClick['click_auc']!, `MMoE click AUC ${mmoe['click_auc']} > popularity (item CTR) ${popClick['click_auc']}`);
});
