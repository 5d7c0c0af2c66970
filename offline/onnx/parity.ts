/**
 * Parity between the TypeScript forward pass and onnxruntime-node on the exported files: the same
 * rows go through both and the largest absolute difference is returned. trainModels refuses to
 * publish a model whose difference exceeds {@link PARITY_TOLERANCE}.
 */
import ort from 'onnxruntime-node';
import { TENSORS } from '../../core/model/contract.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { userDenseWidth } from '../../core/features/towers.js';
import type { MmoeModel } from '../models/mmoe.js';
import type { TwoTowerModel } from '../models/two-tower.js';
import type { Catalogue, UserRows } from '../pipeline/examples.js';
import { itemBatch, userBatch } from '../pipeline/examples.js';
import { OFFLINE_SESSION_OPTIONS } from './sessions.js';

/** Largest allowed |TS − ONNX| on any output value. 1e-4. */
export const PARITY_TOLERANCE = 1e-4;

function maxAbsDiff(a: Float32Array, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function toBig(a: Int32Array): BigInt64Array {
  const out = new BigInt64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = BigInt(a[i]!);
  return out;
}

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes, OFFLINE_SESSION_OPTIONS);
  try {
    const out = await session.run(feeds);
    const res: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(out)) res[k] = v.data as Float32Array;
    return res;
  } finally {
    await session.release();
  }
}

/** Index list 0..n-1 spread over `total` rows (every row when total ≤ n). */
function sampleRows(total: number, n: number): Int32Array {
  const k = Math.min(total, n);
  const idx = new Int32Array(k);
  for (let i = 0; i < k; i++) idx[i] = Math.floor((i * total) / k);
  return idx;
}

/** max |TS − ONNX| of user_vec over up to `n` rows of `rows`. */
export async function userTowerParity(model: TwoTowerModel, bytes: Uint8Array, rows: UserRows, n = 1000): Promise<{ rows: number; maxAbsDiff: number }> {
  const idx = sampleRows(rows.count, n);
  const expected = model.userVectors(userBatch(rows, idx, model.spec), idx.length);
  return { rows: idx.length, maxAbsDiff: maxAbsDiff(expected, await onnxUserVectors(bytes, rows, idx, model.spec)) };
}

/** user_vec of the user tower `bytes` (ONNX) for rows `idx` of `rows`: `idx.length × D`. */
export async function onnxUserVectors(bytes: Uint8Array, rows: UserRows, idx: ArrayLike<number>, spec: FeatureSpec): Promise<Float32Array> {
  const b = idx.length;
  const batch = userBatch(rows, idx, spec);
  const t = TENSORS.userTower;
  const out = await run(bytes, {
    [t.userIds]: new ort.Tensor('int64', toBig(batch.ids[0]!), [b, 2]),
    [t.historyIds]: new ort.Tensor('int64', toBig(batch.ids[1]!), [b, spec.historyLength]),
    [t.historyWeights]: new ort.Tensor('float32', batch.weights[1]!, [b, spec.historyLength]),
    [t.userDense]: new ort.Tensor('float32', batch.dense, [b, userDenseWidth(spec)]),
  });
  const vec = out[t.userVec];
  if (vec === undefined) throw new Error(`user tower has no output ${t.userVec}`);
  return vec;
}

/** max |TS − ONNX| of item_vec over up to `n` catalogue rows. */
export async function itemTowerParity(model: TwoTowerModel, bytes: Uint8Array, cat: Catalogue, n = 1000): Promise<{ rows: number; maxAbsDiff: number }> {
  const idx = sampleRows(cat.videos.length, n);
  const b = idx.length;
  const batch = itemBatch(cat, idx, model.spec);
  const expected = model.itemVectors(batch, b);
  const t = TENSORS.itemTower;
  const out = await run(bytes, {
    [t.itemIds]: new ort.Tensor('int64', toBig(batch.ids[0]!), [b, 2]),
    [t.creatorIds]: new ort.Tensor('int64', toBig(batch.ids[1]!), [b]),
    [t.itemDense]: new ort.Tensor('float32', batch.dense, [b, model.item.options.denseWidth]),
  });
  return { rows: b, maxAbsDiff: maxAbsDiff(expected, out[t.itemVec] ?? []) };
}

/**
 * max |TS − ONNX| over both ranker outputs for `n` rows of `features` ([total, F]); `predict` is the
 * TypeScript model (MMoE or the single-task pair).
 */
export async function rankerParity(
  predict: (features: Float32Array, batch: number) => { pClick: Float32Array; watchLog1p: Float32Array },
  featureWidth: number,
  bytes: Uint8Array,
  features: Float32Array,
  n = 1000,
): Promise<{ rows: number; maxAbsDiff: number }> {
  const total = Math.floor(features.length / featureWidth);
  const idx = sampleRows(total, n);
  const b = idx.length;
  const x = new Float32Array(b * featureWidth);
  for (let i = 0; i < b; i++) x.set(features.subarray(idx[i]! * featureWidth, (idx[i]! + 1) * featureWidth), i * featureWidth);
  const expected = predict(x, b);
  const t = TENSORS.ranker;
  const out = await run(bytes, { [t.features]: new ort.Tensor('float32', x, [b, featureWidth]) });
  return {
    rows: b,
    maxAbsDiff: Math.max(maxAbsDiff(expected.pClick, out[t.pClick] ?? []), maxAbsDiff(expected.watchLog1p, out[t.watchLog1p] ?? [])),
  };
}

/** Convenience: MMoE parity. */
export function mmoeParity(model: MmoeModel, bytes: Uint8Array, features: Float32Array, n = 1000): Promise<{ rows: number; maxAbsDiff: number }> {
  return rankerParity((x, b) => model.predict(x, b), model.featureWidth, bytes, features, n);
}
