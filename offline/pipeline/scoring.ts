/**
 * What evaluation needs from a model version, whichever runtime computes it: user vectors, item
 * vectors and ranker outputs. {@link trainedScoring} wraps the TypeScript models right after
 * training; offline/onnx/sessions.ts wraps the exported ONNX files (the eval command), so the
 * numbers in reports/eval.json are those of the files serving loads.
 */
import type { RankerOutputs } from '../models/mmoe.js';
import type { TwoTowerModel } from '../models/two-tower.js';
import type { Catalogue, UserRows } from './examples.js';
import { itemBatch, userBatch } from './examples.js';
import type { Rankers } from './fit.js';

/** A ranker under evaluation (the MMoE, or the single-task pair). */
export type RankFn = (features: Float32Array, batch: number) => Promise<RankerOutputs>;

export interface ScoringModels {
  /** User vectors [idx.length, D] of rows `idx`. */
  userVectors(rows: UserRows, idx: Int32Array): Promise<Float32Array>;
  /** Item vectors [videos, D] of the whole catalogue. */
  itemVectors(cat: Catalogue): Promise<Float32Array>;
  /** Rankers by report name, e.g. { mmoe, single_task }. */
  readonly rankers: Readonly<Record<string, RankFn>>;
  /** Releases sessions (ONNX); a no-op for TypeScript models. */
  close(): Promise<void>;
}

const BATCH = 1024;

/** Scoring by the in-memory TypeScript models. */
export function trainedScoring(tt: TwoTowerModel, rankers: Rankers): ScoringModels {
  const spec = tt.spec;
  return {
    async userVectors(rows, idx) {
      const d = spec.embeddingDim;
      const out = new Float32Array(idx.length * d);
      for (let s = 0; s < idx.length; s += BATCH) {
        const part = idx.subarray(s, Math.min(idx.length, s + BATCH));
        out.set(tt.user.forward(userBatch(rows, part, spec), part.length), s * d);
      }
      return out;
    },
    async itemVectors(cat) {
      const n = cat.videos.length;
      const d = spec.embeddingDim;
      const out = new Float32Array(n * d);
      for (let s = 0; s < n; s += BATCH) {
        const b = Math.min(BATCH, n - s);
        out.set(tt.item.forward(itemBatch(cat, Int32Array.from({ length: b }, (_, k) => s + k), spec), b), s * d);
      }
      return out;
    },
    rankers: {
      mmoe: async (x, b) => rankers.mmoe.predict(x, b),
      single_task: async (x, b) => ({ pClick: rankers.singleClick.predict(x, b), watchLog1p: rankers.singleWatch.predict(x, b) }),
    },
    async close() {},
  };
}
