/**
 * {@link ScoringModels} over a model version's ONNX files in onnxruntime-node: the eval command
 * measures exactly what serving would run.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import type { FeatureSpec } from '../../core/features/spec.js';
import { itemDenseWidth, userDenseWidth } from '../../core/features/towers.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { MODEL_FILES, TENSORS } from '../../core/model/contract.js';
import type { RankerOutputs } from '../models/mmoe.js';
import type { Catalogue, UserRows } from '../pipeline/examples.js';
import { itemBatch, userBatch } from '../pipeline/examples.js';
import type { RankFn, ScoringModels } from '../pipeline/scoring.js';

/** Extra file beside ranker.onnx: the single-task baselines under the same tensor contract. */
export const SINGLE_TASK_RANKER_FILE = 'ranker_single_task.onnx';

const BATCH = 1024;

function big(a: Int32Array): BigInt64Array {
  const out = new BigInt64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = BigInt(a[i]!);
  return out;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Session options of offline scoring: one thread each, like the serving workers. */
export const OFFLINE_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** A {@link RankFn} over a ranker.onnx session for rows of `width` floats (outputs copied out). */
export function onnxRankFn(session: ort.InferenceSession, width: number): RankFn {
  return async (x: Float32Array, b: number): Promise<RankerOutputs> => {
    const out = await session.run({ [TENSORS.ranker.features]: new ort.Tensor('float32', x.subarray(0, b * width), [b, width]) });
    return {
      pClick: (out[TENSORS.ranker.pClick]!.data as Float32Array).slice(),
      watchLog1p: (out[TENSORS.ranker.watchLog1p]!.data as Float32Array).slice(),
    };
  };
}

/** Opens the ONNX files of the model version in `dir`. */
export async function onnxScoring(dir: string, spec: FeatureSpec): Promise<ScoringModels> {
  const user = await ort.InferenceSession.create(join(dir, MODEL_FILES.userTower), OFFLINE_SESSION_OPTIONS);
  const item = await ort.InferenceSession.create(join(dir, MODEL_FILES.itemTower), OFFLINE_SESSION_OPTIONS);
  const sessions = [user, item];
  const f = rankerRowWidth(spec);
  const rankers: Record<string, RankFn> = {};
  const mmoe = await ort.InferenceSession.create(join(dir, MODEL_FILES.ranker), OFFLINE_SESSION_OPTIONS);
  sessions.push(mmoe);
  rankers['mmoe'] = onnxRankFn(mmoe, f);
  if (await exists(join(dir, SINGLE_TASK_RANKER_FILE))) {
    const single = await ort.InferenceSession.create(join(dir, SINGLE_TASK_RANKER_FILE), OFFLINE_SESSION_OPTIONS);
    sessions.push(single);
    rankers['single_task'] = onnxRankFn(single, f);
  }
  const h = spec.historyLength;
  const d = spec.embeddingDim;
  return {
    async userVectors(rows: UserRows, idx: Int32Array) {
      const out = new Float32Array(idx.length * d);
      for (let s = 0; s < idx.length; s += BATCH) {
        const part = idx.subarray(s, Math.min(idx.length, s + BATCH));
        const b = part.length;
        const t = userBatch(rows, part, spec);
        const u = TENSORS.userTower;
        const r = await user.run({
          [u.userIds]: new ort.Tensor('int64', big(t.ids[0]!), [b, 2]),
          [u.historyIds]: new ort.Tensor('int64', big(t.ids[1]!), [b, h]),
          [u.historyWeights]: new ort.Tensor('float32', t.weights[1]!, [b, h]),
          [u.userDense]: new ort.Tensor('float32', t.dense, [b, userDenseWidth(spec)]),
        });
        out.set(r[u.userVec]!.data as Float32Array, s * d);
      }
      return out;
    },
    async itemVectors(cat: Catalogue) {
      const n = cat.videos.length;
      const out = new Float32Array(n * d);
      for (let s = 0; s < n; s += BATCH) {
        const b = Math.min(BATCH, n - s);
        const t = itemBatch(cat, Int32Array.from({ length: b }, (_, k) => s + k), spec);
        const it = TENSORS.itemTower;
        const r = await item.run({
          [it.itemIds]: new ort.Tensor('int64', big(t.ids[0]!), [b, 2]),
          [it.creatorIds]: new ort.Tensor('int64', big(t.ids[1]!), [b]),
          [it.itemDense]: new ort.Tensor('float32', t.dense, [b, itemDenseWidth(spec)]),
        });
        out.set(r[it.itemVec]!.data as Float32Array, s * d);
      }
      return out;
    },
    rankers,
    async close() {
      for (const s of sessions) await s.release();
    },
  };
}
