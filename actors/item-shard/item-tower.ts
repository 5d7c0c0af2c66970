/**
 * The item tower (item_tower.onnx) under onnxruntime-node: ItemMeta rows → L2-normalised vectors,
 * in batches. Used at shard build and for cold-start upserts. onnxruntime-node runs `session.run`
 * synchronously on the calling thread (after a setImmediate), so this lives in the shard's worker.
 */
import * as ort from 'onnxruntime-node';
import type { ItemMeta } from '../../core/features/item.js';
import { itemDenseWidth, writeItemTowerInputs } from '../../core/features/towers.js';
import { MODEL_FILES, TENSORS } from '../../core/model/contract.js';
import type { ServingSession } from '../model/serving-session.js';
import { ServingTower, openServingSession } from '../model/serving-session.js';
import { readRetrievalQueries } from '../model/retrieval-queries.js';

/** The item tower of one model version, one ORT session (intra-op threads 1). */
export class ItemTower extends ServingTower {
  /** The model version directory the tower was loaded from (its retrieval queries live there too). */
  readonly modelDir: string;

  private constructor(opened: ServingSession, modelDir: string) {
    super(opened, 'item tower');
    this.modelDir = modelDir;
  }

  static async load(modelDir: string): Promise<ItemTower> {
    return new ItemTower(await openServingSession(modelDir, MODEL_FILES.itemTower), modelDir);
  }

  /** The model's retrieval queries (actors/model/retrieval-queries.ts), or undefined when it ships none. */
  retrievalQueries(): Promise<Float32Array | undefined> {
    return readRetrievalQueries(this.modelDir, this.manifest);
  }

  /** Vectors of `items`, `items.length × dim` row-major, computed `batchRows` rows per ORT run. */
  async encode(items: readonly ItemMeta[], batchRows = 4096): Promise<Float32Array> {
    const out = new Float32Array(items.length * this.dim);
    const t = TENSORS.itemTower;
    const w = itemDenseWidth(this.spec);
    for (let start = 0; start < items.length; start += batchRows) {
      const b = Math.min(batchRows, items.length - start);
      const itemIds = new BigInt64Array(b * 2);
      const creatorIds = new BigInt64Array(b);
      const dense = new Float32Array(b * w);
      for (let r = 0; r < b; r++) writeItemTowerInputs(items[start + r] as ItemMeta, this.spec, r, itemIds, creatorIds, dense);
      const vec = await this.runVectors({
        [t.itemIds]: new ort.Tensor('int64', itemIds, [b, 2]),
        [t.creatorIds]: new ort.Tensor('int64', creatorIds, [b]),
        [t.itemDense]: new ort.Tensor('float32', dense, [b, w]),
      }, t.itemVec);
      out.set(vec, start * this.dim);
    }
    return out;
  }
}
