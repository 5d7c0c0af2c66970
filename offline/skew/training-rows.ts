/**
 * The training side of a skew measurement: ranker rows of one split of a world, built by the
 * training pipeline's own {@link buildExamples} (core/features' writeRankerRow), subsampled
 * uniformly to a cap so that binning stays fast.
 *
 * The `retrieval_score` column is 0 in built examples until a two-tower scores them. Given a model
 * version directory, its ONNX towers score the sampled rows (u·v, what serving feeds the ranker);
 * without one the column is left at 0 and {@link TrainingRowsSample.retrievalScored} is false, so
 * the report can say that column is not comparable. Note that the ranker trained on out-of-fold
 * scores of its train rows (offline/pipeline/fit.ts fillOutOfFoldScores), while the final model
 * scores its own training pairs in-sample and higher: a modest retrieval_score skew against the
 * train split is partly that; the valid/test splits are scored out of sample.
 */
import { RANKER_SCALAR_FEATURES, rankerRowWidth } from '../../core/features/ranker-row.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { sampleIndices } from '../../core/clock.js';
import { onnxScoring } from '../onnx/sessions.js';
import type { ExampleSet } from '../pipeline/examples.js';
import { SplitId, buildExamples, indicesOf } from '../pipeline/examples.js';

/** Default most training rows sampled. */
export const DEFAULT_MAX_TRAINING_ROWS = 20_000;

/** Split names accepted by {@link TrainingRowsOptions.split}. */
export const SKEW_SPLITS = { train: SplitId.TRAIN, valid: SplitId.VALID, test: SplitId.TEST } as const;
export type SkewSplit = keyof typeof SKEW_SPLITS;

/** Options of {@link trainingRows}. */
export interface TrainingRowsOptions {
  /** Which split's rows. Default 'train'. */
  readonly split?: SkewSplit;
  /** Most rows kept (uniform sample without replacement). Default {@link DEFAULT_MAX_TRAINING_ROWS}. */
  readonly maxRows?: number;
  /** Seed of the sample. Default 1. */
  readonly seed?: number;
  /** Model version directory whose ONNX towers fill `retrieval_score`; omitted = left at 0. */
  readonly modelDir?: string;
}

/** The sampled training rows. */
export interface TrainingRowsSample {
  /** [count, width] row-major. */
  readonly rows: Float32Array;
  readonly count: number;
  readonly width: number;
  readonly split: SkewSplit;
  /** Rows of the split before sampling. */
  readonly available: number;
  /** True when `retrieval_score` was filled by a model's towers. */
  readonly retrievalScored: boolean;
}

const RETRIEVAL_SCORE_COLUMN = RANKER_SCALAR_FEATURES.indexOf('retrieval_score');


/** Writes u·v of the model's towers into the retrieval-score column of the sampled `rows`. */
async function scoreRetrieval(set: ExampleSet, idx: Int32Array, rows: Float32Array, modelDir: string): Promise<void> {
  const scoring = await onnxScoring(modelDir, set.spec);
  try {
    const d = set.spec.embeddingDim;
    const f = rankerRowWidth(set.spec);
    const items = await scoring.itemVectors(set.catalogue);
    const users = await scoring.userVectors(set.users, idx);
    for (let k = 0; k < idx.length; k++) {
      const vo = set.videoIndex[idx[k]!]! * d;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += users[k * d + c]! * items[vo + c]!;
      rows[k * f + RETRIEVAL_SCORE_COLUMN] = dot;
    }
  } finally {
    await scoring.close();
  }
}

/** Builds the world's examples and returns a sample of one split's ranker rows. */
export async function trainingRows(worldDir: string, spec: FeatureSpec, opts: TrainingRowsOptions = {}): Promise<TrainingRowsSample> {
  const split = opts.split ?? 'train';
  if (!(split in SKEW_SPLITS)) throw new TypeError(`option split must be one of ${Object.keys(SKEW_SPLITS).join(', ')}, got ${JSON.stringify(split)}`);
  const maxRows = opts.maxRows ?? DEFAULT_MAX_TRAINING_ROWS;
  if (!Number.isInteger(maxRows) || maxRows < 1) throw new TypeError(`option maxRows must be a positive integer, got ${String(maxRows)}`);
  const set = await buildExamples(worldDir, spec);
  const all = indicesOf(set, SKEW_SPLITS[split]);
  const idx = sampleIndices(all, maxRows, opts.seed ?? 1);
  const f = rankerRowWidth(spec);
  const rows = new Float32Array(idx.length * f);
  for (let k = 0; k < idx.length; k++) rows.set(set.ranker.subarray(idx[k]! * f, (idx[k]! + 1) * f), k * f);
  if (opts.modelDir !== undefined && idx.length > 0) await scoreRetrieval(set, idx, rows, opts.modelDir);
  return { rows, count: idx.length, width: f, split, available: all.length, retrievalScored: opts.modelDir !== undefined };
}
