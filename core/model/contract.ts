/**
 * The model contract between the offline pipeline and serving: file names, ONNX tensor names,
 * dtypes and shapes, and the manifest beside them. A model trained elsewhere (e.g. PyTorch → ONNX)
 * that honours this contract and the feature spec can be dropped into `models/<version>/`.
 * docs/model-contract.md describes the same in prose.
 */
import type { FeatureSpec } from '../features/spec.js';

export const MODEL_FILES = {
  userTower: 'user_tower.onnx',
  itemTower: 'item_tower.onnx',
  ranker: 'ranker.onnx',
  manifest: 'manifest.json',
} as const;

/** ONNX tensor names. `B` is the dynamic batch dimension. */
export const TENSORS = {
  userTower: {
    /** int64 [B, 2]: two hash buckets of the user id (spec.userIdBuckets). */
    userIds: 'user_ids',
    /** int64 [B, H]: hashed recent video ids, most recent first (spec.videoIdBuckets). */
    historyIds: 'history_ids',
    /** float32 [B, H]: mean-pooling weights, 0 on padding. */
    historyWeights: 'history_weights',
    /** float32 [B, userDenseWidth(spec)]. */
    userDense: 'user_dense',
    /** output float32 [B, D]: L2-normalised user vector. */
    userVec: 'user_vec',
  },
  itemTower: {
    /** int64 [B, 2]: two hash buckets of the video id. */
    itemIds: 'item_ids',
    /** int64 [B]: hash bucket of the creator id. */
    creatorIds: 'creator_ids',
    /** float32 [B, itemDenseWidth(spec)]. */
    itemDense: 'item_dense',
    /** output float32 [B, D]: L2-normalised item vector. */
    itemVec: 'item_vec',
  },
  ranker: {
    /** float32 [B, rankerRowWidth(spec)]: rows written by writeRankerRow. */
    features: 'features',
    /** output float32 [B, 1]: uncalibrated P(click). */
    pClick: 'p_click',
    /** output float32 [B, 1]: predicted log1p(watch seconds). */
    watchLog1p: 'watch_log1p_s',
  },
} as const;

/**
 * Optional file of a model version: user-tower vectors of a sample of the training world's users,
 * `count × dim` little-endian float32, row-major. Item shards calibrate their IVF nprobe on them
 * (actors/item-shard/nprobe-calibration.ts); a model without it is served with the fixed rule.
 */
export const RETRIEVAL_QUERIES_FILE = 'retrieval_queries.f32';

/** Manifest entry describing {@link RETRIEVAL_QUERIES_FILE}. */
export interface RetrievalQueriesInfo {
  /**
   * File name inside the version directory: {@link RETRIEVAL_QUERIES_FILE}, or a timestamped
   * sibling after `offline/cli.js queries --force` replaced the rows.
   */
  readonly file: string;
  /** Rows (query vectors). */
  readonly count: number;
  /** Floats per row: the embedding width. */
  readonly dim: number;
  /** How the rows were drawn, in words (e.g. which users, at which point of the world). */
  readonly source: string;
}

/** Name under which ranker replicas serve ranker.onnx over the KServe v2 protocol. */
export const RANKER_MODEL_NAME = 'ranker';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: 'float32' | 'int64';
  /** -1 for the dynamic batch dimension. */
  readonly shape: readonly number[];
}

/** Piecewise-linear isotonic map from raw to calibrated P(click); `x` ascending. */
export interface IsotonicCalibration {
  readonly type: 'isotonic';
  readonly x: readonly number[];
  readonly y: readonly number[];
}

/** Temperature scaling of the logit: p' = sigmoid(logit(p) / temperature). */
export interface TemperatureCalibration {
  readonly type: 'temperature';
  readonly temperature: number;
}

export interface IdentityCalibration {
  readonly type: 'identity';
}

export type Calibration = IsotonicCalibration | TemperatureCalibration | IdentityCalibration;

/** `models/<version>/manifest.json`. */
export interface ModelManifest {
  readonly version: string;
  /** ISO-8601 creation time. */
  readonly createdAt: string;
  readonly featureSpec: FeatureSpec;
  /** specHash(featureSpec) of the code that trained the model; serving refuses a mismatch. */
  readonly featureSpecHash: string;
  readonly files: typeof MODEL_FILES;
  readonly tensors: {
    readonly userTower: { readonly inputs: readonly TensorSpec[]; readonly outputs: readonly TensorSpec[] };
    readonly itemTower: { readonly inputs: readonly TensorSpec[]; readonly outputs: readonly TensorSpec[] };
    readonly ranker: { readonly inputs: readonly TensorSpec[]; readonly outputs: readonly TensorSpec[] };
  };
  /** Calibration of the ranker's p_click, fitted on the validation day. */
  readonly calibration: { readonly click: Calibration };
  /** What the models were trained on (world name, seed, sizes, days, split). */
  readonly trainingData: Readonly<Record<string, string | number | boolean>>;
  /** Offline metrics per model, e.g. { two_tower: { recall_at_100: 0.31 } }. */
  readonly metrics: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Sample user vectors for the item shards' nprobe calibration; absent in older models. */
  readonly retrievalQueries?: RetrievalQueriesInfo;
}
