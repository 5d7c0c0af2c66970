/**
 * Scoring joined rows with a ranker.onnx in onnxruntime-node (what serving runs), and the test
 * metrics of the world pipeline (offline/pipeline/evaluate.ts rankerMetrics: click AUC, weighted
 * AUC, log-loss raw and calibrated, ECE raw and calibrated, watch MAE), so the new and the serving
 * ranker are compared on the same rows by the same code.
 */
import ort from 'onnxruntime-node';
import type { Calibration } from '../../core/model/contract.js';
import type { RankerOutputs } from '../models/mmoe.js';
import type { SplitRows } from '../pipeline/evaluate.js';
import type { RankFn } from '../pipeline/scoring.js';
import { OFFLINE_SESSION_OPTIONS, onnxRankFn } from '../onnx/sessions.js';
import { predictRows, rankerMetrics } from '../pipeline/evaluate.js';
import { groupedAuc } from '../eval/metrics.js';
import type { RowRange } from './fit.js';
import type { JoinedRows } from './join.js';

export type { RowRange } from './fit.js';

/** Rows `range` of `rows` in the shape the pipeline's metrics take. */
export function splitRowsOf(rows: JoinedRows, range: RowRange): SplitRows {
  const f = rows.width;
  return {
    idx: Int32Array.from({ length: range.end - range.start }, (_, i) => range.start + i),
    features: rows.features.slice(range.start * f, range.end * f),
    click: rows.click.slice(range.start, range.end),
    watchS: rows.watchS.slice(range.start, range.end),
  };
}

/** A ranker.onnx session (from a path or bytes) and its predictions. */
export class OnnxRanker {
  readonly #session: ort.InferenceSession;
  readonly #width: number;
  readonly #rank: RankFn;

  private constructor(session: ort.InferenceSession, width: number) {
    this.#session = session;
    this.#width = width;
    this.#rank = onnxRankFn(session, width);
  }

  /** Opens `source` (a file path or ranker.onnx bytes) for rows of `width` floats. */
  static async open(source: string | Uint8Array, width: number): Promise<OnnxRanker> {
    const session = typeof source === 'string' ? await ort.InferenceSession.create(source, OFFLINE_SESSION_OPTIONS) : await ort.InferenceSession.create(source, OFFLINE_SESSION_OPTIONS);
    return new OnnxRanker(session, width);
  }

  /** Predictions for every row of `rows`. */
  predict(rows: SplitRows): Promise<RankerOutputs> {
    return predictRows(this.#rank, rows, this.#width);
  }

  async close(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * Test metrics of `ranker` (calibrated with `cal`) on `rows`, plus `click_auc_within_slot` when the
 * rows' served `slots` are given: the click AUC over pairs shown in the same slot (offline/eval
 * metrics groupedAuc). On logged rows the pooled AUC also scores where the serving policy placed
 * each item (clicks follow the slot); within a slot only the ranker's ordering counts.
 */
export async function onnxRankerMetrics(ranker: OnnxRanker, rows: SplitRows, cal: Calibration, slots?: ArrayLike<number>): Promise<Record<string, number>> {
  const pred = await ranker.predict(rows);
  return {
    ...rankerMetrics(rows, pred, cal),
    ...(slots !== undefined ? { click_auc_within_slot: groupedAuc(rows.click, pred.pClick, slots) } : {}),
  };
}
