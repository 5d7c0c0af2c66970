/**
 * Offline commands:
 *   node dist/offline/cli.js train [--world default] [--videos N --users N --days N] [--out models]
 *   node dist/offline/cli.js eval  [--world default] [--models models] [--version V]
 *   node dist/offline/cli.js queries [--world default] [--models models] [--version V] [--count 1024] [--force]
 *   node dist/offline/cli.js skew  --nats <url> --cluster <name> --world <dir|name> [--models <dir>] [--max-rows N] [--out reports/skew.json]
 *   node dist/offline/cli.js train-logged --nats <url> --cluster <name> [--from-model models/<version>] [--since T] [--wait-ms 1800000] [--out models]
 *
 * `train` generates the synthetic world if it is missing, converts KuaiRand if it is missing,
 * trains on both (the synthetic world's models are published to models/<version> and LATEST;
 * KuaiRand's are evaluated only), and merges every metric, with the popularity and MF baselines,
 * into reports/eval.json. `eval` re-evaluates the current version's ONNX files (what serving runs)
 * on its world and updates the report. `queries` adds the retrieval queries item shards calibrate
 * their nprobe on to a version that has none (trained before they existed, or elsewhere), from its
 * own ONNX user tower. `skew` compares the ranker rows a cluster's coordinators
 * logged (the feature log) with the world's training rows, per feature (offline/skew/).
 * `train-logged` retrains the ranker on the rows the cluster logged, joined with the events that
 * followed (offline/logged/), and publishes a version with the serving towers. `retrain-loop` does
 * that on a schedule and, with --promote, switches the cluster to a candidate that passes the gate.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { specHash } from '../core/features/index.js';
import { DEFAULT_FEATURE_SPEC } from '../core/features/spec.js';
import { DEFAULT_REPORT_PATH, formatReport, mergeIntoReport } from './eval/report.js';
import { convertKuaiRand } from './kuairand/convert.js';
import { loadModelManifest, readLatestVersion } from './onnx/load.js';
import { onnxScoring } from './onnx/sessions.js';
import { fitCalibrations } from './pipeline/calibrate.js';
import { evaluateAll } from './pipeline/evaluate.js';
import { buildExamples } from './pipeline/examples.js';
import { DEFAULT_RETRIEVAL_QUERIES, attachRetrievalQueries, onnxRetrievalQueries } from './pipeline/retrieval-queries.js';
import { MODEL_FILES } from '../core/model/contract.js';
import { DEFAULT_MAX_RANKER_EPOCHS, DEFAULT_RANKER_EPOCHS, DEFAULT_TWO_TOWER_EPOCHS } from './pipeline/fit.js';
import type { RankerEpochs } from './pipeline/fit.js';
import { baselineRows, mergeRows, oracleRows, reportDatasetKey, reportFor, reportRows, reportedModel } from './pipeline/report.js';
import { trainModels } from './pipeline/train.js';
import type { MmoeOptions } from './models/mmoe.js';
import { DEFAULT_MMOE_WIDTHS } from './models/mmoe.js';
import { checkModelVersionName } from '../actors/model/embedding-space.js';
import { measureSkew } from './skew/measure.js';
import { DEFAULT_MAX_SERVED_ROWS } from './skew/reader.js';
import { DEFAULT_KL_THRESHOLD, DEFAULT_SKEW_REPORT_PATH, flagged, formatSkewTable, writeSkewReport } from './skew/report.js';
import type { SkewSplit } from './skew/training-rows.js';
import { DEFAULT_MAX_TRAINING_ROWS, SKEW_SPLITS } from './skew/training-rows.js';
import { DEFAULT_WAIT_MS } from './logged/join.js';
import { DEFAULT_MAX_LOGGED_ROWS } from './logged/read-served.js';
import { DEFAULT_MIN_SPLIT_ROWS, DEFAULT_TEST_SHARE, DEFAULT_VALID_SHARE } from './logged/split.js';
import { DEFAULT_LOGGED_EPOCHS } from './logged/fit.js';
import { formatLoggedTable } from './logged/table.js';
import { trainOnLoggedRows } from './logged/train-logged.js';
import { servingModelDir } from './logged/serving-version.js';
import { DEFAULT_PROMOTION_GATE, DEFAULT_RETRAIN_REPORT, parseDuration, runRetrainLoop } from './logged/retrain-loop.js';
import type { PromotionGate, RetrainLoopOptions } from './logged/retrain-loop.js';
import { ShardMapStore } from '../shardmap/kv-store.js';
import { formatModelSwitch, switchModel } from '../shardmap/model-switch.js';
import { StatusCode, UpnextError } from '../core/status.js';
import { generateWorld } from './world/generate.js';
import { progressBar } from './world/progress.js';
import { worldExists } from './world/reader.js';
import { describeNatsAccessError, natsAuthOptions } from '../cluster/nats/auth.js';
import { natsTlsOptions, tlsSectionFromFlags } from '../cluster/tls.js';

/** Size of the default synthetic world when `train` has to generate it. */
const DEFAULT_WORLD_SIZE = { videos: 20_000, users: 10_000, days: 7 } as const;

/**
 * Two-tower epochs on KuaiRand. One epoch (the synthetic default, where more passes memorise the
 * training pairs) underfits KuaiRand's 33k positives: Recall@100 0.049 at 1 epoch vs 0.069 at 3
 * (popularity 0.043), measured 2026-11-25.
 */
const KUAIRAND_TWO_TOWER_EPOCHS = 3;

/**
 * Ranker epochs on KuaiRand: stopped on its validation day. The fixed 2 of the synthetic worlds are
 * 132 Adam steps on KuaiRand's 33,526 training rows: stopping each model on its own validation loss
 * raised the MMoE's click AUC by 0.014–0.022 (4–5 epochs) and the single-task click model's by 0.008
 * (3), and lowered the MMoE's watch MAE (docs/offline.md "Ranker epochs"). KuaiRand is evaluated
 * only, never served.
 */
const KUAIRAND_RANKER_EPOCHS: RankerEpochs = 'validation';

const USAGE = `usage: cli.js train [--world default] [--worlds-dir data/worlds] [--videos ${DEFAULT_WORLD_SIZE.videos}] [--users ${DEFAULT_WORLD_SIZE.users}] [--days ${DEFAULT_WORLD_SIZE.days}]
                    [--seed 1] [--epochs ${DEFAULT_TWO_TOWER_EPOCHS}] [--ranker-epochs ${DEFAULT_RANKER_EPOCHS}|validation (at most ${DEFAULT_MAX_RANKER_EPOCHS} epochs)]
                    [--mmoe-shared ${DEFAULT_MMOE_WIDTHS.sharedDim}] [--mmoe-experts ${DEFAULT_MMOE_WIDTHS.experts}] [--mmoe-expert-dim ${DEFAULT_MMOE_WIDTHS.expertDim}] [--mmoe-tower ${DEFAULT_MMOE_WIDTHS.towerDim}] [--mmoe-seed SEED]
                    [--version V] [--out models] [--report ${DEFAULT_REPORT_PATH}] [--kuairand-epochs ${KUAIRAND_TWO_TOWER_EPOCHS}] [--kuairand-ranker-epochs ${KUAIRAND_RANKER_EPOCHS}|N] [--no-kuairand] [--quiet]
       cli.js eval  [--world default] [--worlds-dir data/worlds] [--models models] [--version V] [--report ${DEFAULT_REPORT_PATH}]
       cli.js queries [--world NAME] [--worlds-dir data/worlds] [--models models] [--version V] [--count ${DEFAULT_RETRIEVAL_QUERIES}] [--seed the training seed] [--force]
       cli.js skew  --nats nats://127.0.0.1:4222 --cluster NAME --world DIR|NAME [--worlds-dir data/worlds] [--models DIR [--version V]]
                    [--max-rows ${DEFAULT_MAX_SERVED_ROWS}] [--training-rows ${DEFAULT_MAX_TRAINING_ROWS}] [--split train|valid|test] [--since ISO-TIME]
                    [--kl-threshold ${DEFAULT_KL_THRESHOLD}] [--out ${DEFAULT_SKEW_REPORT_PATH}] [--fail-on-skew] [--creds reader.nk]
       cli.js train-logged --nats nats://127.0.0.1:4222 --cluster NAME [--from-model models/VERSION | --models models] [--since ISO-TIME|EPOCH-MS] [--wait-ms ${DEFAULT_WAIT_MS}]
                    [--out models] [--version V] [--epochs ${DEFAULT_LOGGED_EPOCHS}] [--seed 1] [--lr X] [--from-scratch] [--max-rows ${DEFAULT_MAX_LOGGED_ROWS}]
                    [--valid-share ${DEFAULT_VALID_SHARE}] [--test-share ${DEFAULT_TEST_SHARE}] [--min-split-rows ${DEFAULT_MIN_SPLIT_ROWS}] [--skip-other-specs] [--all-served] [--now ISO-TIME|EPOCH-MS] [--creds reader.nk]
       cli.js retrain-loop --nats nats://127.0.0.1:4222 --cluster NAME --every 6h [--rounds N] [--promote] [--window 7d] [--models models]
                    [--min-test-rows ${DEFAULT_PROMOTION_GATE.minTestRows}] [--max-auc-drop ${DEFAULT_PROMOTION_GATE.maxAucDrop}] [--max-ece-rise ${DEFAULT_PROMOTION_GATE.maxEceRise}] [--max-watch-error-rise ${DEFAULT_PROMOTION_GATE.maxWatchErrorRise}]
                    [--keep-rejected] [--report ${DEFAULT_RETRAIN_REPORT}] [--creds admin.nk] + the train-logged training flags
       skew, train-logged, retrain-loop: [--tls-ca ca.pem --tls-cert client.pem --tls-key client.key] for a NATS server that requires TLS`;

/** nats.js TLS options from `--tls-ca/--tls-cert/--tls-key` (a cluster whose config sets `tls`); {} without them. */
function natsTlsFromFlags(values: Record<string, string | boolean | undefined>): ReturnType<typeof natsTlsOptions> {
  return natsTlsOptions(tlsSectionFromFlags((flag) => {
    const v = values[flag.slice(2)];
    return typeof v === 'string' ? v : undefined;
  }));
}

/** `--ranker-epochs` and `--kuairand-ranker-epochs`: a positive integer, or `validation` (stop on the validation days). */
function rankerEpochsOption(name: string, v: string | undefined, dflt: RankerEpochs): RankerEpochs {
  if (v === undefined) return dflt;
  if (v === 'validation') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`--${name} must be a positive integer or 'validation', got ${JSON.stringify(v)}`);
  return n;
}

function intOption(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * The MMoE ranker's widths from `--mmoe-shared/--mmoe-experts/--mmoe-expert-dim/--mmoe-tower`
 * (defaults: DEFAULT_MMOE_WIDTHS). The ranker's size is a capacity knob: the ranking stage was a
 * third of the in-process ceiling's CPU per request (docs/capacity.md "A smaller ranker"). `--mmoe-seed` re-draws only the
 * ranker's initial weights (default: `--seed`), so two rankers over the same towers show how much
 * of an A/B difference is the draw.
 */
function mmoeOptionsFromFlags(values: Record<string, string | boolean | undefined>): MmoeOptions {
  const width = (flag: string): number | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? intOption(flag, v, 1) : undefined;
  };
  const shared = width('mmoe-shared');
  const experts = width('mmoe-experts');
  const expertDim = width('mmoe-expert-dim');
  const tower = width('mmoe-tower');
  const seed = width('mmoe-seed');
  return {
    ...(seed === undefined ? {} : { seed }),
    ...(shared === undefined ? {} : { sharedDim: shared }),
    ...(experts === undefined ? {} : { experts }),
    ...(expertDim === undefined ? {} : { expertDim }),
    ...(tower === undefined ? {} : { towerDim: tower }),
  };
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

async function train(values: Record<string, string | boolean | undefined>): Promise<void> {
  const worldsDir = String(values['worlds-dir'] ?? 'data/worlds');
  const name = String(values['world'] ?? 'default');
  const worldDir = join(worldsDir, name);
  const seed = intOption('seed', values['seed'] as string | undefined, 1);
  const progress = values['quiet'] !== true;
  // Every flag is checked before any work: a bad width must not cost a world's generation first.
  const common = {
    seed,
    epochs: intOption('epochs', values['epochs'] as string | undefined, DEFAULT_TWO_TOWER_EPOCHS),
    rankerEpochs: rankerEpochsOption('ranker-epochs', values['ranker-epochs'] as string | undefined, DEFAULT_RANKER_EPOCHS),
    mmoe: mmoeOptionsFromFlags(values),
    progress,
    log,
  };
  const kuairandEpochs = intOption('kuairand-epochs', values['kuairand-epochs'] as string | undefined, KUAIRAND_TWO_TOWER_EPOCHS);
  const kuairandRankerEpochs = rankerEpochsOption('kuairand-ranker-epochs', values['kuairand-ranker-epochs'] as string | undefined, KUAIRAND_RANKER_EPOCHS);
  const outDir = String(values['out'] ?? 'models');
  const version = typeof values['version'] === 'string' ? checkModelVersionName(values['version']) : undefined;
  // A named version is never replaced: a cluster may serve it, and its feature-log rows carry its name.
  if (version !== undefined && existsSync(join(outDir, version))) {
    throw new TypeError(`--version ${version}: ${join(outDir, version)} exists; pick another name or delete it`);
  }
  if (!(await worldExists(worldDir))) {
    log(`generating world ${worldDir}`);
    await generateWorld({
      name,
      outDir: worldsDir,
      videos: intOption('videos', values['videos'] as string | undefined, DEFAULT_WORLD_SIZE.videos),
      users: intOption('users', values['users'] as string | undefined, DEFAULT_WORLD_SIZE.users),
      days: intOption('days', values['days'] as string | undefined, DEFAULT_WORLD_SIZE.days),
      seed,
      ...(progress ? { onProgress: progressBar() } : {}),
    });
  } else if (values['videos'] !== undefined || values['users'] !== undefined || values['days'] !== undefined) {
    log(`world ${worldDir} exists: --videos/--users/--days ignored (delete it or pick another --world to regenerate)`);
  }
  const reportPath = String(values['report'] ?? DEFAULT_REPORT_PATH);
  const res = await trainModels({ worldDir, outDir, ...(version === undefined ? {} : { version }), ...common });
  log(`published ${res.dir} (timings ${JSON.stringify(res.timings)})`);
  let report = await mergeIntoReport(reportFor(reportDatasetKey(name), mergeRows(reportRows(res.metrics, reportedModel(res.manifest, res.dir !== undefined)), await baselineRows(worldDir), await oracleRows(worldDir, log))), reportPath);

  if (values['no-kuairand'] !== true) {
    const kuaiDir = join(worldsDir, 'kuairand');
    if (!(await worldExists(kuaiDir))) {
      log(`converting KuaiRand into ${kuaiDir}`);
      await convertKuaiRand({ outDir: kuaiDir });
    }
    // KuaiRand has other ids and no serving use: evaluate only, publish nothing.
    const kr = await trainModels({
      worldDir: kuaiDir,
      outDir,
      exportOnnx: false,
      ...common,
      epochs: kuairandEpochs,
      rankerEpochs: kuairandRankerEpochs,
    });
    report = await mergeIntoReport(reportFor(reportDatasetKey('kuairand'), mergeRows(reportRows(kr.metrics, reportedModel(kr.manifest, false)), await baselineRows(kuaiDir), await oracleRows(kuaiDir, log))), reportPath);
  }
  process.stdout.write(`${formatReport(report)}\n`);
}

async function evaluate(values: Record<string, string | boolean | undefined>): Promise<void> {
  const modelsDir = String(values['models'] ?? 'models');
  const version = typeof values['version'] === 'string' ? values['version'] : await readLatestVersion(modelsDir);
  const dir = join(modelsDir, version);
  const manifest = await loadModelManifest(dir, specHash(DEFAULT_FEATURE_SPEC));
  const name = String(values['world'] ?? manifest.trainingData['world'] ?? 'default');
  const worldDir = join(String(values['worlds-dir'] ?? 'data/worlds'), name);
  log(`evaluating ${dir} on ${worldDir}`);
  const set = await buildExamples(worldDir, manifest.featureSpec);
  const scoring = await onnxScoring(dir, manifest.featureSpec);
  try {
    const itemVecs = await scoring.itemVectors(set.catalogue);
    // The MMoE's calibration is the manifest's; the baselines' is refitted on the same validation day.
    const calibration = { ...(await fitCalibrations(set, scoring, itemVecs)), mmoe: manifest.calibration.click };
    const metrics = await evaluateAll({ set, scoring, calibration });
    const report = await mergeIntoReport(reportFor(reportDatasetKey(name), mergeRows(reportRows(metrics, reportedModel(manifest, true)), await baselineRows(worldDir), await oracleRows(worldDir, log))), String(values['report'] ?? DEFAULT_REPORT_PATH));
    process.stdout.write(`${formatReport(report)}\n`);
  } finally {
    await scoring.close();
  }
}

/** The seed the version was trained with (training draws its queries with it), else 1. */
function trainedSeed(manifest: { readonly trainingData: Readonly<Record<string, unknown>> }): number {
  const s = manifest.trainingData['seed'];
  return typeof s === 'number' && Number.isInteger(s) && s >= 1 ? s : 1;
}

/**
 * `queries`: writes `retrieval_queries.f32` into a published version from its own user_tower.onnx
 * (a sample of its world's test-day impressions) and names it in the manifest. A version that
 * has them is left alone unless `--force`.
 */
async function queries(values: Record<string, string | boolean | undefined>): Promise<void> {
  const modelsDir = String(values['models'] ?? 'models');
  const version = typeof values['version'] === 'string' ? values['version'] : await readLatestVersion(modelsDir);
  const dir = join(modelsDir, version);
  const manifest = await loadModelManifest(dir, specHash(DEFAULT_FEATURE_SPEC));
  if (manifest.retrievalQueries !== undefined && values['force'] !== true) {
    log(`${dir} already has ${manifest.retrievalQueries.count} retrieval queries (--force writes new ones)`);
    return;
  }
  const name = String(values['world'] ?? manifest.trainingData['world'] ?? 'default');
  const worldDir = join(String(values['worlds-dir'] ?? 'data/worlds'), name);
  if (!(await worldExists(worldDir))) throw new TypeError(`--world: no world at ${worldDir}`);
  log(`replaying ${worldDir} for its users`);
  const set = await buildExamples(worldDir, manifest.featureSpec);
  const bytes = await readFile(join(dir, MODEL_FILES.userTower));
  const q = await onnxRetrievalQueries(set, bytes, intOption('count', values['count'] as string | undefined, DEFAULT_RETRIEVAL_QUERIES), intOption('seed', values['seed'] as string | undefined, trainedSeed(manifest)));
  if (q === undefined) throw new TypeError(`world ${worldDir} has no impressions: nothing to write`);
  await attachRetrievalQueries(dir, manifest, q);
  process.stdout.write(`wrote ${q.info.count} retrieval queries to ${join(dir, q.info.file)} (${q.info.source})\n`);
}

/**
 * `skew`: the cluster's feature log against the world's training rows. `--world` is a world
 * directory, or a name under `--worlds-dir`. With `--models`, the version (LATEST unless
 * `--version`) gives the feature spec and scores retrieval_score; without, the build's default spec
 * and retrieval_score is reported as unscored. `--fail-on-skew` exits 2 when a feature is flagged.
 */
async function skew(values: Record<string, string | boolean | undefined>): Promise<void> {
  const natsUrl = values['nats'];
  const cluster = values['cluster'];
  const world = values['world'];
  if (typeof natsUrl !== 'string' || typeof cluster !== 'string' || typeof world !== 'string') throw new TypeError('skew needs --nats, --cluster and --world');
  const worldDir = (await worldExists(world)) ? world : join(String(values['worlds-dir'] ?? 'data/worlds'), world);
  if (!(await worldExists(worldDir))) throw new TypeError(`--world: no world at ${world} or ${worldDir}`);
  const split = String(values['split'] ?? 'train');
  if (!(split in SKEW_SPLITS)) throw new TypeError(`--split must be one of ${Object.keys(SKEW_SPLITS).join(', ')}, got ${JSON.stringify(split)}`);
  let startTimeMs: number | undefined;
  if (typeof values['since'] === 'string') {
    startTimeMs = Date.parse(values['since']);
    if (!Number.isFinite(startTimeMs)) throw new TypeError(`--since must be an ISO time, got ${JSON.stringify(values['since'])}`);
  }
  const klThreshold = values['kl-threshold'] === undefined ? DEFAULT_KL_THRESHOLD : Number(values['kl-threshold']);
  if (!(Number.isFinite(klThreshold) && klThreshold >= 0)) throw new TypeError(`--kl-threshold must be a number >= 0, got ${JSON.stringify(values['kl-threshold'])}`);
  let modelDir: string | undefined;
  if (typeof values['models'] === 'string') {
    const version = typeof values['version'] === 'string' ? values['version'] : await readLatestVersion(values['models']);
    modelDir = join(values['models'], version);
  }
  // --creds: the reader role's NKey seed file, for a NATS server that requires credentials.
  const nc = await connect({ servers: natsUrl, name: 'upnext-skew', ...natsTlsFromFlags(values), ...natsAuthOptions(typeof values['creds'] === 'string' ? values['creds'] : undefined, '--creds') });
  try {
    const report = await measureSkew({
      nc,
      cluster,
      worldDir,
      split: split as SkewSplit,
      maxServingRows: intOption('max-rows', values['max-rows'] as string | undefined, DEFAULT_MAX_SERVED_ROWS),
      maxTrainingRows: intOption('training-rows', values['training-rows'] as string | undefined, DEFAULT_MAX_TRAINING_ROWS),
      klThreshold,
      ...(modelDir !== undefined ? { modelDir } : {}),
      ...(startTimeMs !== undefined ? { startTimeMs } : {}),
      log,
    });
    const out = String(values['out'] ?? DEFAULT_SKEW_REPORT_PATH);
    await writeSkewReport(report, out);
    process.stdout.write(`${formatSkewTable(report)}\nwrote ${out}\n`);
    if (values['fail-on-skew'] === true && flagged(report, 'skew').length > 0) process.exitCode = 2;
  } finally {
    await nc.close();
  }
}

/** A time flag: epoch ms (digits) or an ISO time. */
function timeOption(name: string, v: string | boolean | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms)) throw new TypeError(`--${name} must be an ISO time or epoch ms, got ${JSON.stringify(v)}`);
  return ms;
}

/** A number flag in (lo, hi), or undefined when absent. */
function numberOption(name: string, v: string | boolean | undefined, lo: number, hi: number): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > lo && n < hi)) throw new TypeError(`--${name} must be a number in (${lo}, ${hi}), got ${JSON.stringify(v)}`);
  return n;
}

/**
 * `train-logged`: retrain the ranker on the cluster's logged rows (offline/logged/), compare it with
 * the serving one on the latest rows, publish `<out>/<version>/` with the serving towers. Prints the
 * table; the new version's name is its last line.
 */
/** The training flags `train-logged` and `retrain-loop` share (epochs, lr, wait window, splits …). */
function loggedTrainingOptions(values: Record<string, string | boolean | undefined>): NonNullable<RetrainLoopOptions['train']> {
  let waitMs: number | undefined;
  if (typeof values['wait-ms'] === 'string') {
    waitMs = Number(values['wait-ms']);
    if (!(Number.isInteger(waitMs) && waitMs >= 0)) throw new TypeError(`--wait-ms must be an integer >= 0, got ${JSON.stringify(values['wait-ms'])}`);
  }
  const lr = numberOption('lr', values['lr'], 0, 1);
  const validShare = numberOption('valid-share', values['valid-share'], 0, 1);
  const testShare = numberOption('test-share', values['test-share'], 0, 1);
  return {
    epochs: intOption('epochs', values['epochs'] as string | undefined, DEFAULT_LOGGED_EPOCHS),
    seed: intOption('seed', values['seed'] as string | undefined, 1),
    maxRows: intOption('max-rows', values['max-rows'] as string | undefined, DEFAULT_MAX_LOGGED_ROWS),
    minSplitRows: intOption('min-split-rows', values['min-split-rows'] as string | undefined, DEFAULT_MIN_SPLIT_ROWS),
    warmStart: values['from-scratch'] !== true,
    skipOtherSpecs: values['skip-other-specs'] === true,
    ...(values['all-served'] === true ? { requireImpression: false } : {}),
    ...(waitMs !== undefined ? { waitMs } : {}),
    ...(lr !== undefined ? { lr } : {}),
    ...(validShare !== undefined ? { validShare } : {}),
    ...(testShare !== undefined ? { testShare } : {}),
  };
}

async function trainLogged(values: Record<string, string | boolean | undefined>): Promise<void> {
  const natsUrl = values['nats'];
  const cluster = values['cluster'];
  if (typeof natsUrl !== 'string' || typeof cluster !== 'string') throw new TypeError('train-logged needs --nats and --cluster');
  const sinceMs = timeOption('since', values['since']);
  const nowMs = timeOption('now', values['now']);
  const training = loggedTrainingOptions(values);
  // --creds: the reader role's NKey seed file, for a NATS server that requires credentials.
  const nc = await connect({ servers: natsUrl, name: 'upnext-train-logged', ...natsTlsFromFlags(values), ...natsAuthOptions(typeof values['creds'] === 'string' ? values['creds'] : undefined, '--creds') });
  try {
    // Without --from-model: the version the cluster serves, under --models (the models root, as for eval and skew).
    let fromModel = values['from-model'];
    if (typeof fromModel !== 'string') {
      const serving = await servingModelDir({ nc, cluster, modelsDir: typeof values['models'] === 'string' ? values['models'] : 'models' });
      log(`retraining ${serving.version}, the version the cluster serves (from its ${serving.source}): ${serving.dir}`);
      fromModel = serving.dir;
    }
    const res = await trainOnLoggedRows({
      nc,
      cluster,
      fromModelDir: fromModel,
      outDir: String(values['out'] ?? 'models'),
      ...training,
      ...(sinceMs !== undefined ? { sinceMs } : {}),
      ...(nowMs !== undefined ? { nowMs } : {}),
      ...(typeof values['version'] === 'string' ? { version: values['version'] } : {}),
      ...(values['quiet'] === true ? {} : { log }),
    });
    process.stdout.write(`${formatLoggedTable(res, cluster)}\n`);
  } finally {
    await nc.close();
  }
}

/**
 * `retrain-loop`: train-logged on a schedule, promoting a candidate that passes the gate
 * (offline/logged/retrain-loop.ts). One JSON line per round on stdout and in --report. SIGINT or
 * SIGTERM stop it after the round in progress.
 */
async function retrainLoop(values: Record<string, string | boolean | undefined>): Promise<void> {
  const natsUrl = values['nats'];
  const cluster = values['cluster'];
  if (typeof natsUrl !== 'string' || typeof cluster !== 'string') throw new TypeError('retrain-loop needs --nats and --cluster');
  if (typeof values['every'] !== 'string') throw new TypeError('retrain-loop needs --every (e.g. 6h)');
  for (const f of ['since', 'from-model', 'version', 'now', 'out']) {
    if (values[f] !== undefined) throw new TypeError(`retrain-loop takes no --${f}: each round retrains what the cluster serves, on the rows of the last --window (default all the feature log holds), and writes under --models, the nodes' models root`);
  }
  const everyMs = parseDuration('--every', values['every']);
  const windowMs = typeof values['window'] === 'string' ? parseDuration('--window', values['window']) : undefined;
  const roundCount = typeof values['rounds'] === 'string' ? intOption('rounds', values['rounds'], 1) : undefined;
  const gate: PromotionGate = {
    minTestRows: intOption('min-test-rows', values['min-test-rows'] as string | undefined, DEFAULT_PROMOTION_GATE.minTestRows),
    maxAucDrop: numberOption('max-auc-drop', values['max-auc-drop'], -1, 1) ?? DEFAULT_PROMOTION_GATE.maxAucDrop,
    maxEceRise: numberOption('max-ece-rise', values['max-ece-rise'], -1, 1) ?? DEFAULT_PROMOTION_GATE.maxEceRise,
    maxWatchErrorRise: numberOption('max-watch-error-rise', values['max-watch-error-rise'], -1, 10) ?? DEFAULT_PROMOTION_GATE.maxWatchErrorRise,
  };
  // Candidates go under the models root the nodes read (a switch finds versions there).
  const modelsDir = typeof values['models'] === 'string' ? values['models'] : 'models';
  const report = typeof values['report'] === 'string' ? values['report'] : DEFAULT_RETRAIN_REPORT;
  const promote = values['promote'] === true;
  // --creds: the reader role reads the logs; --promote writes the model key, which needs the admin role.
  const creds = typeof values['creds'] === 'string' ? values['creds'] : undefined;
  const nc = await connect({ servers: natsUrl, name: 'upnext-retrain-loop', ...natsTlsFromFlags(values), ...natsAuthOptions(creds, '--creds') });
  const stop = new AbortController();
  const onSignal = () => {
    log('retrain-loop: stopping after the round in progress');
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const store = await ShardMapStore.open(nc, cluster, { create: false });
    await mkdir(dirname(report), { recursive: true });
    const rounds = await runRetrainLoop({
      nc,
      cluster,
      modelsDir,
      everyMs,
      gate,
      promote,
      train: loggedTrainingOptions(values),
      signal: stop.signal,
      ...(roundCount !== undefined ? { rounds: roundCount } : {}),
      ...(windowMs !== undefined ? { windowMs } : {}),
      ...(values['keep-rejected'] === true ? { keepRejected: true } : {}),
      ...(values['quiet'] === true ? {} : { log }),
      onRound: async (r) => {
        const line = JSON.stringify(r);
        process.stdout.write(`${line}\n`);
        await appendFile(report, `${line}\n`);
      },
      deps: {
        switchTo: async (version, expectedRevision) => {
          let r: Awaited<ReturnType<typeof switchModel>>;
          try {
            r = await switchModel({ nc, store, cluster, version, modelsDir, expectedRevision, by: 'retrain-loop' });
          } catch (err) {
            const access = describeNatsAccessError(err, creds !== undefined ? `--creds ${creds}` : 'no credentials (--creds not given)');
            if (access !== undefined) throw new UpnextError(StatusCode.PERMISSION_DENIED, `${access}; --promote needs the admin role`);
            throw err;
          }
          if (!r.ok) throw new UpnextError(StatusCode.ABORTED, formatModelSwitch(r));
        },
      },
    });
    // For schedulers: a loop whose last round failed exits non-zero.
    if (rounds.at(-1)?.outcome === 'failed') process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await nc.close();
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      world: { type: 'string' },
      'worlds-dir': { type: 'string' },
      videos: { type: 'string' },
      users: { type: 'string' },
      days: { type: 'string' },
      seed: { type: 'string' },
      epochs: { type: 'string' },
      'ranker-epochs': { type: 'string' },
      'kuairand-ranker-epochs': { type: 'string' },
      'mmoe-shared': { type: 'string' },
      'mmoe-experts': { type: 'string' },
      'mmoe-expert-dim': { type: 'string' },
      'mmoe-tower': { type: 'string' },
      'mmoe-seed': { type: 'string' },
      'kuairand-epochs': { type: 'string' },
      out: { type: 'string' },
      models: { type: 'string' },
      version: { type: 'string' },
      report: { type: 'string' },
      'no-kuairand': { type: 'boolean' },
      nats: { type: 'string' },
      creds: { type: 'string' },
      cluster: { type: 'string' },
      'max-rows': { type: 'string' },
      'training-rows': { type: 'string' },
      split: { type: 'string' },
      since: { type: 'string' },
      'kl-threshold': { type: 'string' },
      'fail-on-skew': { type: 'boolean' },
      'from-model': { type: 'string' },
      'wait-ms': { type: 'string' },
      now: { type: 'string' },
      lr: { type: 'string' },
      'from-scratch': { type: 'boolean' },
      'all-served': { type: 'boolean' },
      'valid-share': { type: 'string' },
      'test-share': { type: 'string' },
      'min-split-rows': { type: 'string' },
      'skip-other-specs': { type: 'boolean' },
      quiet: { type: 'boolean' },
      'tls-ca': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-server-name': { type: 'string' },
      every: { type: 'string' },
      rounds: { type: 'string' },
      window: { type: 'string' },
      promote: { type: 'boolean' },
      'keep-rejected': { type: 'boolean' },
      'min-test-rows': { type: 'string' },
      'max-auc-drop': { type: 'string' },
      'max-ece-rise': { type: 'string' },
      'max-watch-error-rise': { type: 'string' },
      count: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  const command = positionals[0];
  if (values.help === true || command === undefined) {
    console.log(USAGE);
    return;
  }
  if (command === 'train') await train(values);
  else if (command === 'eval') await evaluate(values);
  else if (command === 'queries') await queries(values);
  else if (command === 'skew') await skew(values);
  else if (command === 'train-logged') await trainLogged(values);
  else if (command === 'retrain-loop') await retrainLoop(values);
  else throw new TypeError(`unknown command ${JSON.stringify(command)}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  console.error(USAGE);
  process.exit(1);
});
