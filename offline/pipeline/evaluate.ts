/**
 * Offline evaluation on the test days (DESIGN.md §5): Recall@10/@100 of the two-tower over the full
 * catalogue (exact brute-force top-k), and per ranker click AUC, watch-weighted AUC, LogLoss, ECE
 * (raw and calibrated) and watch MAE. Metric definitions are offline/eval/metrics.ts'; this file
 * only decides which rows and scores they see.
 */
import { calibrate } from '../../core/model/calibration.js';
import type { Calibration } from '../../core/model/contract.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { topK } from '../baselines/top-k.js';
import { auc, ece, logLoss, mae, weightedAuc } from '../eval/metrics.js';
import { evaluateRetrieval, loadRetrievalTask } from '../eval/retrieval.js';
import type { RetrievalResult } from '../eval/retrieval.js';
import type { ExampleSet } from './examples.js';
import { RANKER_SCALAR_FEATURES } from '../../core/features/ranker-row.js';
import { RETRIEVAL_SCORE_COLUMN, SplitId, indicesOf, usersAtTestRows } from './examples.js';
import type { RankFn, ScoringModels } from './scoring.js';

/** Metrics by model name, e.g. { two_tower: { recall_at_100: 0.3 }, mmoe: { click_auc: 0.7 } }. */
export type MetricTable = Record<string, Record<string, number>>;

/** Test users scored for Recall@K (the first by id; brute-force top-k over the corpus each). Default 3000. */
export const DEFAULT_EVAL_USERS = 3000;

/**
 * Budget of user·item dot products for Recall@K: large catalogues get fewer users (1M videos →
 * 150 users) so evaluation stays well under a minute. 1.5e8.
 */
export const EVAL_DOT_BUDGET = 1.5e8;

/** Users to score for a catalogue of `videos`: min(requested, budget / videos), at least 50. */
export function evalUserCount(videos: number, requested = DEFAULT_EVAL_USERS): number {
  return Math.min(requested, Math.max(50, Math.floor(EVAL_DOT_BUDGET / Math.max(1, videos))));
}

/**
 * Recall@10/@100 of the two-tower under the world helper's rule (offline/eval/retrieval.ts):
 * positives are test-day clicks, each user's training-period videos are excluded, exact top-k over
 * every catalogue item by u·v. The user vector comes from the user's state when the test days
 * begin (a brand-new profile for a user never seen before).
 */
export async function twoTowerRecall(set: ExampleSet, scoring: ScoringModels, itemVecs: Float32Array, maxUsers = DEFAULT_EVAL_USERS): Promise<RetrievalResult> {
  const task = await loadRetrievalTask(set.worldDir, { maxUsers: evalUserCount(set.catalogue.videos.length, maxUsers) });
  const rows = usersAtTestRows(set, task.userIds);
  const userVecs = await scoring.userVectors(rows, Int32Array.from({ length: rows.count }, (_, i) => i));
  const d = set.spec.embeddingDim;
  const n = set.catalogue.videos.length;
  const rowOf = new Map(task.userIds.map((u, i) => [u, i]));
  const scores = new Float32Array(n);
  const videoIds = set.catalogue.videos.map((v) => v.videoId);
  return evaluateRetrieval(task, (userId, k, exclude) => {
    const uo = (rowOf.get(userId) ?? 0) * d;
    for (let v = 0; v < n; v++) {
      const vo = v * d;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += userVecs[uo + c]! * itemVecs[vo + c]!;
      scores[v] = dot;
    }
    return topK(scores, k, (i) => exclude.has(videoIds[i]!)).map((i) => videoIds[i]!);
  });
}

/** Ranker rows and labels of one split, with retrieval scores from `scoring`'s towers. */
export interface SplitRows {
  readonly idx: Int32Array;
  readonly features: Float32Array;
  readonly click: Float32Array;
  readonly watchS: Float32Array;
}

/** Copies the rows of `split`, writing the retrieval-score column from the given vectors. */
export async function splitRows(set: ExampleSet, split: SplitId, scoring: ScoringModels, itemVecs: Float32Array): Promise<SplitRows> {
  const idx = indicesOf(set, split);
  const f = rankerRowWidth(set.spec);
  const d = set.spec.embeddingDim;
  const features = new Float32Array(idx.length * f);
  const click = new Float32Array(idx.length);
  const watchS = new Float32Array(idx.length);
  const u = await scoring.userVectors(set.users, idx);
  for (let k = 0; k < idx.length; k++) {
    const r = idx[k]!;
    features.set(set.ranker.subarray(r * f, (r + 1) * f), k * f);
    const vo = set.videoIndex[r]! * d;
    let dot = 0;
    for (let c = 0; c < d; c++) dot += u[k * d + c]! * itemVecs[vo + c]!;
    features[k * f + RETRIEVAL_SCORE_COLUMN] = dot;
    click[k] = set.click[r]!;
    watchS[k] = set.watchS[r]!;
  }
  return { idx, features, click, watchS };
}

/** Runs a ranker over all rows in batches. */
export async function predictRows(rank: RankFn, rows: SplitRows, f: number, batch = 2048): Promise<{ pClick: Float32Array; watchLog1p: Float32Array }> {
  const n = rows.idx.length;
  const pClick = new Float32Array(n);
  const watchLog1p = new Float32Array(n);
  for (let s = 0; s < n; s += batch) {
    const b = Math.min(batch, n - s);
    const out = await rank(rows.features.subarray(s * f, (s + b) * f), b);
    pClick.set(out.pClick.subarray(0, b), s);
    watchLog1p.set(out.watchLog1p.subarray(0, b), s);
  }
  return { pClick, watchLog1p };
}

/**
 * The raw click metrics of any P(click): AUC, watch-weighted AUC (a clicked impression weighs its
 * watch seconds, at least 1 s; a skipped one 1), LogLoss and ECE, over every impression.
 */
function clickMetrics(rows: SplitRows, p: Float32Array): Record<string, number> {
  const n = rows.idx.length;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = rows.click[i]! > 0 ? Math.max(1, rows.watchS[i]!) : 1;
  return {
    impressions: n,
    click_auc: auc(rows.click, p),
    click_weighted_auc: weightedAuc(rows.click, p, w),
    click_log_loss: logLoss(rows.click, p),
    ece_raw: ece(rows.click, p),
  };
}

/** Click and watch metrics of one ranker's predictions. */
export function rankerMetrics(rows: SplitRows, pred: { pClick: Float32Array; watchLog1p: Float32Array }, cal: Calibration): Record<string, number> {
  const n = rows.idx.length;
  const calibrated = new Float32Array(n);
  const wl = new Float32Array(n);
  const ws = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    calibrated[i] = calibrate(cal, pred.pClick[i]!);
    wl[i] = Math.log1p(rows.watchS[i]!);
    ws[i] = Math.max(0, Math.expm1(pred.watchLog1p[i]!));
  }
  return {
    ...clickMetrics(rows, pred.pClick),
    click_log_loss_calibrated: logLoss(rows.click, calibrated),
    ece_calibrated: ece(rows.click, calibrated),
    watch_mae_log1p: mae(wl, pred.watchLog1p),
    watch_mae_s: mae(rows.watchS, ws),
  };
}

/** Everything {@link evaluateAll} needs besides the models. */
export interface EvaluateInput {
  readonly set: ExampleSet;
  readonly scoring: ScoringModels;
  /** Calibration of each ranker's P(click), by ranker name (identity when absent). */
  readonly calibration: Readonly<Record<string, Calibration>>;
  readonly evalUsers?: number;
  /** Catalogue vectors already computed by `scoring` (skips a pass over the catalogue). */
  readonly itemVectors?: Float32Array;
}

/** Column of the item's smoothed click-through rate (itemCtrPrior) in a ranker row. */
const ITEM_CTR_COLUMN = RANKER_SCALAR_FEATURES.indexOf('item_ctr_prior');

/**
 * The popularity baseline for the click task: P(click) = the item's smoothed click-through rate
 * over every impression logged before this one (itemCtrPrior, Beta(1, 20) prior): what a
 * non-personalised "most clicked" ranker would predict. Read from the ranker row, so it sees
 * exactly the counters the models see. It has no watch prediction and no calibration step.
 */
export function popularityClickMetrics(rows: SplitRows, f: number): Record<string, number> {
  const p = new Float32Array(rows.idx.length);
  for (let i = 0; i < p.length; i++) p[i] = rows.features[i * f + ITEM_CTR_COLUMN]!;
  return clickMetrics(rows, p);
}

/** Two-tower and ranker metrics on the test days. */
export async function evaluateAll(input: EvaluateInput): Promise<MetricTable> {
  const { set, scoring } = input;
  const itemVecs = input.itemVectors ?? (await scoring.itemVectors(set.catalogue));
  const out: MetricTable = { two_tower: { ...(await twoTowerRecall(set, scoring, itemVecs, input.evalUsers)) } };
  const rows = await splitRows(set, SplitId.TEST, scoring, itemVecs);
  const f = rankerRowWidth(set.spec);
  for (const [name, rank] of Object.entries(scoring.rankers)) {
    out[name] = rankerMetrics(rows, await predictRows(rank, rows, f), input.calibration[name] ?? { type: 'identity' });
  }
  out['popularity'] = popularityClickMetrics(rows, f);
  return out;
}
