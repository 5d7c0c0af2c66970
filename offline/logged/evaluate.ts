/**
 * Scoring joined rows with a ranker.onnx in onnxruntime-node (what serving runs), and the test
 * metrics of the world pipeline (offline/pipeline/evaluate.ts rankerMetrics: click AUC, weighted
 * AUC, log-loss raw and calibrated, ECE raw and calibrated, watch MAE), so the new and the serving
 * ranker are compared on the same rows by the same code.
 */
import ort from 'onnxruntime-node';
import type { Calibration } from '../../core/model/contract.js';
import { TENSORS } from '../../core/model/contract.js';
import type { RankerOutputs } from '../models/mmoe.js';
import type { SplitRows } from '../pipeline/evaluate.js';
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

  private constructor(session: ort.InferenceSession, width: number) {
    this.#session = session;
    this.#width = width;
  }

  /** Opens `source` (a file path or ranker.onnx bytes) for rows of `width` floats. */
  static async open(source: string | Uint8Array, width: number): Promise<OnnxRanker> {
    const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
    const session = typeof source === 'string' ? await ort.InferenceSession.create(source, opts) : await ort.InferenceSession.create(source, opts);
    return new OnnxRanker(session, width);
  }

  /** Outputs for `batch` rows of `features`. */
  async rank(features: Float32Array, batch: number): Promise<RankerOutputs> {
    const f = this.#width;
    const out = await this.#session.run({ [TENSORS.ranker.features]: new ort.Tensor('float32', features.subarray(0, batch * f), [batch, f]) });
    return {
      pClick: (out[TENSORS.ranker.pClick]!.data as Float32Array).slice(),
      watchLog1p: (out[TENSORS.ranker.watchLog1p]!.data as Float32Array).slice(),
    };
  }

  /** Predictions for every row of `rows`. */
  predict(rows: SplitRows): Promise<RankerOutputs> {
    return predictRows((x, b) => this.rank(x, b), rows, this.#width);
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
