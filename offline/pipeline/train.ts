/**
 * `trainModels`: world directory in, model version out. Replays the world into examples, trains the
 * two-tower, fills retrieval scores, trains the MMoE and the single-task baselines, calibrates
 * P(click) on the validation days, evaluates on the test days, exports the three ONNX files,
 * checks ONNX-vs-TypeScript parity and writes `models/<version>/manifest.json` and `models/LATEST`.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { specHash } from '../../core/features/index.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { DEFAULT_FEATURE_SPEC, validateFeatureSpec } from '../../core/features/spec.js';
import type { Calibration, ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import type { MmoeOptions } from '../models/mmoe.js';
import { mmoeShape } from '../models/mmoe.js';
import type { TwoTowerOptions } from '../models/two-tower.js';
import { exportItemTower, exportMmoeRanker, exportSingleTaskRanker, exportUserTower } from '../onnx/export.js';
import { SINGLE_TASK_RANKER_FILE } from '../onnx/sessions.js';
import { LATEST_FILE } from '../onnx/load.js';
import { manifestTensors } from '../onnx/manifest.js';
import { PARITY_TOLERANCE, itemTowerParity, mmoeParity, rankerParity, userTowerParity } from '../onnx/parity.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { buildExamples } from './examples.js';
import type { ExampleSet } from './examples.js';
import { evaluateAll } from './evaluate.js';
import { fitCalibrations } from './calibrate.js';
import { trainedScoring } from './scoring.js';
import type { FitStats, RankerEpochs, Rankers } from './fit.js';
import { DEFAULT_RANKER_EPOCHS, DEFAULT_TWO_TOWER_EPOCHS, catalogueVectors, fillOutOfFoldScores, fillRetrievalScores, fitRankers, fitTwoTower } from './fit.js';
import { SplitId, indicesOf } from './examples.js';
import type { TwoTowerModel } from '../models/two-tower.js';
import { DEFAULT_RETRIEVAL_QUERIES, trainedRetrievalQueries, writeRetrievalQueries } from './retrieval-queries.js';
import type { RetrievalQueries } from './retrieval-queries.js';

/** Options of {@link trainModels}; every field but `worldDir` and `outDir` has a default. */
export interface TrainOptions {
  /** World directory (world.json, videos.ndjson, users.ndjson, events/). */
  readonly worldDir: string;
  /** Models directory: the version goes to `<outDir>/<version>/`, its name to `<outDir>/LATEST`. */
  readonly outDir: string;
  /** Seed of every initialisation and shuffle. Default 1. */
  readonly seed?: number;
  /** Two-tower epochs. Default DEFAULT_TWO_TOWER_EPOCHS (1). */
  readonly epochs?: number;
  /** Ranker epochs (MMoE and single-task): a number, or 'validation' (the default, DEFAULT_RANKER_EPOCHS). */
  readonly rankerEpochs?: RankerEpochs;
  /** Version name. Default `v<UTC yyyymmdd-HHMMSS>-<world name>`. */
  readonly version?: string;
  /** Feature spec. Default DEFAULT_FEATURE_SPEC (what serving runs). */
  readonly spec?: FeatureSpec;
  /** Write `<outDir>/LATEST`. Default true. */
  readonly setLatest?: boolean;
  /** Export and parity-check ONNX files. Default true (false: metrics only, e.g. for KuaiRand). */
  readonly exportOnnx?: boolean;
  /** Progress bars on stderr. Default false. */
  readonly progress?: boolean;
  readonly twoTower?: TwoTowerOptions & { readonly batchSize?: number };
  readonly mmoe?: MmoeOptions;
  /**
   * Score the rankers' training rows with two-tower models trained on the other half of the users
   * (see fillOutOfFoldScores). Costs a second two-tower training. Default true.
   */
  readonly outOfFoldScores?: boolean;
  /** Test users scored for Recall@K. Default DEFAULT_EVAL_USERS (3000). */
  readonly evalUsers?: number;
  /**
   * User vectors shipped for the item shards' nprobe calibration (`retrieval_queries.f32`), at most
   * this many users; 0 ships none. Default DEFAULT_RETRIEVAL_QUERIES (1024).
   */
  readonly retrievalQueries?: number;
  /** Called with one line per phase (e.g. console.error). Default silent. */
  readonly log?: (line: string) => void;
}

/** What {@link trainModels} returns. */
export interface TrainResult {
  readonly version: string;
  /** Absolute directory of the version (undefined when nothing was exported). */
  readonly dir: string | undefined;
  readonly manifest: ModelManifest;
  /** Same as manifest.metrics. */
  readonly metrics: ModelManifest['metrics'];
  /** Wall seconds per phase and throughput of each training loop. */
  readonly timings: Readonly<Record<string, number>>;
  readonly throughput: { readonly twoTower: FitStats; readonly mmoe: FitStats; readonly singleTask: FitStats };
  /** The replayed examples and trained models, for callers that evaluate further (eval command). */
  readonly trained: { readonly set: ExampleSet; readonly twoTower: TwoTowerModel; readonly rankers: Rankers; readonly itemVectors: Float32Array };
}

function indicesOfSplits(set: ExampleSet, splits: readonly SplitId[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < set.count; i++) if (splits.includes(set.split[i] as SplitId)) out.push(i);
  return out;
}

function defaultVersion(world: string): string {
  const iso = new Date().toISOString();
  return `v${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}-${world.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/** Trains every model on the world at `opts.worldDir` and publishes a model version. */
export async function trainModels(opts: TrainOptions): Promise<TrainResult> {
  const spec = validateFeatureSpec(opts.spec ?? DEFAULT_FEATURE_SPEC);
  const seed = opts.seed ?? 1;
  const log = opts.log ?? ((): void => undefined);
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string): void => {
    const now = performance.now();
    timings[name] = Math.round(now - t) / 1000;
    t = now;
    log(`${name}: ${timings[name]} s`);
  };

  const set = await buildExamples(opts.worldDir, spec);
  lap('examples');
  log(`examples: ${set.count} impressions, ${set.catalogue.videos.length} videos`);
  if (set.count === 0) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `world ${opts.worldDir} has no impressions to train on`);

  const ttOpts = { seed, epochs: opts.epochs ?? DEFAULT_TWO_TOWER_EPOCHS, progress: opts.progress ?? false, ...opts.twoTower };
  const tt = fitTwoTower(set, ttOpts);
  const itemVectors = catalogueVectors(tt.model, set);
  fillRetrievalScores(tt.model, set, itemVectors, Int32Array.from(indicesOfSplits(set, [SplitId.VALID, SplitId.TEST, SplitId.OTHER])));
  lap('two_tower');
  if (opts.outOfFoldScores ?? true) {
    fillOutOfFoldScores(set, ttOpts);
    lap('two_tower_folds');
  } else {
    fillRetrievalScores(tt.model, set, itemVectors, indicesOf(set, SplitId.TRAIN));
  }
  const rankers = fitRankers(set, { seed, epochs: opts.rankerEpochs ?? DEFAULT_RANKER_EPOCHS, progress: opts.progress ?? false, ...(opts.mmoe ? { mmoe: opts.mmoe } : {}) });
  lap('rankers');
  const scoring = trainedScoring(tt.model, rankers);
  const calibrations = await fitCalibrations(set, scoring, itemVectors);
  const calibration: Calibration = calibrations['mmoe'] ?? { type: 'identity' };
  const metrics: ModelManifest['metrics'] = {
    ...(await evaluateAll({ set, scoring, calibration: calibrations, itemVectors, ...(opts.evalUsers === undefined ? {} : { evalUsers: opts.evalUsers }) })),
    training: {
      two_tower_examples_per_cpu_s: tt.stats.examplesPerCpuSecond,
      mmoe_examples_per_cpu_s: rankers.stats.mmoe.examplesPerCpuSecond,
      single_task_examples_per_cpu_s: rankers.stats.singleTask.examplesPerCpuSecond,
      two_tower_final_loss: tt.stats.finalLoss,
      mmoe_final_loss: rankers.stats.mmoe.finalLoss,
    },
  };
  lap('evaluate');

  const version = opts.version ?? defaultVersion(set.manifest.name ?? basename(opts.worldDir));
  const manifest: ModelManifest = {
    version,
    createdAt: new Date().toISOString(),
    featureSpec: spec,
    featureSpecHash: specHash(spec),
    files: MODEL_FILES,
    tensors: manifestTensors(spec),
    calibration: { click: calibration },
    trainingData: {
      world: set.manifest.name,
      source: set.manifest.source ?? 'unknown',
      worldSeed: set.manifest.seed ?? 0,
      videos: set.catalogue.videos.length,
      users: set.manifest.numUsers,
      days: set.manifest.days,
      impressions: set.count,
      trainDays: set.manifest.split.trainDays.join(','),
      validDays: set.manifest.split.validDays.join(','),
      testDays: set.manifest.split.testDays.join(','),
      seed,
      twoTowerEpochs: tt.stats.epochs,
      // The epoch each ranker's weights are from; 'validation': each its best on the validation days.
      rankerEpochs: rankers.epochs.mmoe.epoch,
      rankerEpochsFrom: rankers.epochs.mmoe.validationLoss === undefined ? 'fixed' : 'validation',
      singleClickEpochs: rankers.epochs.singleClick.epoch,
      singleWatchEpochs: rankers.epochs.singleWatch.epoch,
      rankerShape: mmoeShape(rankers.mmoe),
    },
    metrics,
  };

  let dir: string | undefined;
  let published = manifest;
  if (opts.exportOnnx ?? true) {
    dir = resolve(opts.outDir, version);
    const queries = trainedRetrievalQueries(set, tt.model, opts.retrievalQueries ?? DEFAULT_RETRIEVAL_QUERIES, seed);
    published = await publish(dir, opts.outDir, version, manifest, set, tt.model, rankers, opts.setLatest ?? true, queries);
    lap('export');
  }
  return {
    version,
    dir,
    manifest: published,
    metrics: published.metrics,
    timings,
    throughput: { twoTower: tt.stats, mmoe: rankers.stats.mmoe, singleTask: rankers.stats.singleTask },
    trained: { set, twoTower: tt.model, rankers, itemVectors },
  };
}

/**
 * Exports the ONNX files into a staging directory, checks parity on up to 1,000 rows each, writes
 * the manifest, renames the directory into place and then updates LATEST, so a reader never sees a
 * half-written version.
 */
async function publish(
  dir: string,
  outDir: string,
  version: string,
  manifest: ModelManifest,
  set: ExampleSet,
  tt: TwoTowerModel,
  rankers: Rankers,
  setLatest: boolean,
  queries: RetrievalQueries | undefined,
): Promise<ModelManifest> {
  const staging = `${dir}.staging-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const user = exportUserTower(tt);
  const item = exportItemTower(tt);
  const ranker = exportMmoeRanker(rankers.mmoe);
  const f = rankerRowWidth(set.spec);
  const single = exportSingleTaskRanker(rankers.singleClick, rankers.singleWatch, f);
  const singlePredict = (x: Float32Array, b: number): { pClick: Float32Array; watchLog1p: Float32Array } => ({
    pClick: rankers.singleClick.predict(x, b),
    watchLog1p: rankers.singleWatch.predict(x, b),
  });
  const checks = [
    { file: MODEL_FILES.userTower, ...(await userTowerParity(tt, user, set.users)) },
    { file: MODEL_FILES.itemTower, ...(await itemTowerParity(tt, item, set.catalogue)) },
    { file: MODEL_FILES.ranker, ...(await mmoeParity(rankers.mmoe, ranker, set.ranker)) },
    { file: SINGLE_TASK_RANKER_FILE, ...(await rankerParity(singlePredict, f, single, set.ranker)) },
  ];
  for (const c of checks) {
    if (!(c.maxAbsDiff <= PARITY_TOLERANCE)) {
      await rm(staging, { recursive: true, force: true });
      throw new UpnextError(StatusCode.INTERNAL, `ONNX parity failed for ${c.file}: max |TS − ONNX| = ${c.maxAbsDiff} over ${c.rows} rows (tolerance ${PARITY_TOLERANCE})`);
    }
  }
  const withParity: ModelManifest = {
    ...manifest,
    ...(queries !== undefined ? { retrievalQueries: queries.info } : {}),
    metrics: { ...manifest.metrics, onnx_parity: Object.fromEntries(checks.map((c) => [c.file.replace('.onnx', '_max_abs_diff'), c.maxAbsDiff])) },
  };
  await writeFile(join(staging, MODEL_FILES.userTower), user);
  await writeFile(join(staging, MODEL_FILES.itemTower), item);
  await writeFile(join(staging, MODEL_FILES.ranker), ranker);
  await writeFile(join(staging, SINGLE_TASK_RANKER_FILE), single);
  if (queries !== undefined) await writeRetrievalQueries(staging, queries);
  await writeFile(join(staging, MODEL_FILES.manifest), JSON.stringify(withParity, null, 2) + '\n');
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  if (setLatest) {
    const tmp = join(outDir, `${LATEST_FILE}.tmp-${process.pid}`);
    await writeFile(tmp, version + '\n');
    await rename(tmp, join(outDir, LATEST_FILE));
  }
  return withParity;
}
