/**
 * Turning trained-model metrics and the popularity / matrix-factorisation baselines into
 * reports/eval.json entries (offline/eval/report.ts owns the file format and the merge).
 */
import { MatrixFactorization } from '../baselines/matrix-factorization.js';
import { PopularityRecommender } from '../baselines/popularity.js';
import type { EvalReport, ModelMetrics } from '../eval/report.js';
import { evaluateRetrieval, loadRetrievalTask } from '../eval/retrieval.js';
import { clickOracle } from '../eval/oracle.js';
import { readWorldManifest } from '../world/reader.js';
import { DEFAULT_EVAL_USERS, evalUserCount } from './evaluate.js';
import type { MetricTable } from './evaluate.js';

/** Which trained model the rows are of (report labels; see offline/eval/report.ts). */
export interface ReportedModel {
  /** The published version evaluated; leave out when nothing was published (KuaiRand). */
  readonly version?: string;
  /** `mmoeShape` of the MMoE evaluated (`trainingData.rankerShape`). */
  readonly rankerShape?: string;
  /** The epoch each ranker's weights are from, and how it was chosen (`trainingData`). */
  readonly rankerEpochs?: { readonly mmoe: number; readonly singleClick?: number; readonly singleWatch?: number; readonly from: string };
}

/**
 * Report rows of our models. Ranker columns: `auc`, `weighted_auc` (watch-weighted), `logloss` and
 * `ece` of the CALIBRATED P(click) (what serving outputs), `ece_raw` before calibration, `mae` of
 * the watch prediction in log1p(seconds) (the regression target). `model` labels the two-tower and
 * ranker rows with the version, the MMoE row with its widths, and the ranker rows with their epochs.
 */
export function reportRows(metrics: Readonly<MetricTable>, model: ReportedModel = {}): Record<string, ModelMetrics> {
  const out: Record<string, ModelMetrics> = {};
  const version = model.version === undefined ? {} : { model_version: model.version };
  const tt = metrics['two_tower'];
  if (tt !== undefined) out['two_tower'] = { recall_at_10: tt['recall_at_10'] ?? NaN, recall_at_100: tt['recall_at_100'] ?? NaN, ...version };
  for (const name of ['mmoe', 'single_task']) {
    const m = metrics[name];
    if (m === undefined) continue;
    out[name] = {
      auc: m['click_auc'] ?? NaN,
      weighted_auc: m['click_weighted_auc'] ?? NaN,
      logloss: m['click_log_loss_calibrated'] ?? NaN,
      ece: m['ece_calibrated'] ?? NaN,
      ece_raw: m['ece_raw'] ?? NaN,
      mae: m['watch_mae_log1p'] ?? NaN,
      ...version,
      ...(name === 'mmoe' && model.rankerShape !== undefined ? { ranker_shape: model.rankerShape } : {}),
      ...epochsLabel(name, model.rankerEpochs),
    };
  }
  const pop = metrics['popularity'];
  if (pop !== undefined) {
    // Not calibrated: its P(click) is a raw smoothed rate, so logloss and ece are of that rate.
    out['popularity'] = { auc: pop['click_auc'] ?? NaN, weighted_auc: pop['click_weighted_auc'] ?? NaN, logloss: pop['click_log_loss'] ?? NaN, ece: pop['ece_raw'] ?? NaN };
  }
  return out;
}

/** The report labels of a trained model: its version where it was published, its ranker's widths and epochs. */
export function reportedModel(manifest: { readonly version: string; readonly trainingData: Readonly<Record<string, unknown>> }, published: boolean): ReportedModel {
  const td = manifest.trainingData;
  const shape = td['rankerShape'];
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const mmoeEpochs = num(td['rankerEpochs']);
  const from = typeof td['rankerEpochsFrom'] === 'string' ? td['rankerEpochsFrom'] : 'fixed';
  const click = num(td['singleClickEpochs']);
  const watch = num(td['singleWatchEpochs']);
  return {
    ...(published ? { version: manifest.version } : {}),
    ...(typeof shape === 'string' ? { rankerShape: shape } : {}),
    ...(mmoeEpochs === undefined ? {} : { rankerEpochs: { mmoe: mmoeEpochs, from, ...(click === undefined ? {} : { singleClick: click }), ...(watch === undefined ? {} : { singleWatch: watch }) } }),
  };
}

/** The `ranker_epochs` label of the `mmoe` or `single_task` row, e.g. "4 (validation)", "3/4 (validation)". */
function epochsLabel(row: string, e: ReportedModel['rankerEpochs']): { ranker_epochs?: string } {
  if (e === undefined) return {};
  if (row === 'mmoe') return { ranker_epochs: `${e.mmoe} (${e.from})` };
  if (e.singleClick === undefined || e.singleWatch === undefined) return {};
  return { ranker_epochs: `${e.singleClick}/${e.singleWatch} (${e.from})` };
}

/** Row-wise merge: every model's metrics from each table, later tables adding to earlier ones. */
export function mergeRows(...tables: readonly Record<string, ModelMetrics>[]): Record<string, ModelMetrics> {
  const out: Record<string, ModelMetrics> = {};
  for (const t of tables) for (const [model, m] of Object.entries(t)) out[model] = { ...out[model], ...m };
  return out;
}

/** Recall@10/@100 of popularity and MF on the world, under the same task as the two-tower. */
export async function baselineRows(worldDir: string, maxUsers = DEFAULT_EVAL_USERS): Promise<Record<string, ModelMetrics>> {
  const videos = (await readWorldManifest(worldDir)).numVideos;
  const task = await loadRetrievalTask(worldDir, { maxUsers: evalUserCount(videos, maxUsers) });
  const pop = await PopularityRecommender.fit(worldDir);
  const mf = await MatrixFactorization.fit(worldDir);
  const p = await evaluateRetrieval(task, (u, k, ex) => pop.recommend(u, k, ex));
  const m = await evaluateRetrieval(task, (u, k, ex) => mf.recommend(u, k, true, ex));
  return {
    popularity: { recall_at_10: p.recall_at_10, recall_at_100: p.recall_at_100 },
    mf: { recall_at_10: m.recall_at_10, recall_at_100: m.recall_at_100 },
  };
}

/**
 * The `oracle` row of a generated world: the click AUC of the world's own click model on the test
 * days (offline/eval/oracle.ts), the ceiling the rankers' `auc` is read against. Empty for converted
 * datasets; for a world whose truths do not rebuild from its manifest, empty and a note to `log`.
 */
export async function oracleRows(worldDir: string, log: (msg: string) => void = () => {}): Promise<Record<string, ModelMetrics>> {
  if ((await readWorldManifest(worldDir)).source !== 'synthetic') return {};
  try {
    return { oracle: { auc: (await clickOracle(worldDir)).auc } };
  } catch (err) {
    log(`no click oracle for ${worldDir}: ${err instanceof Error ? err.message : String(err)}`);
    return {};
  }
}

/**
 * The report's key for a world: the issue names the default synthetic world `synthetic` and the
 * converted KuaiRand sample `kuairand`; any other world keeps its own name, so a side experiment
 * never overwrites the headline rows.
 */
export function reportDatasetKey(worldName: string): string {
  return worldName === 'default' ? 'synthetic' : worldName;
}

/** One dataset's block of the report. */
export function reportFor(dataset: string, rows: Record<string, ModelMetrics>): EvalReport {
  return { [dataset]: rows };
}
