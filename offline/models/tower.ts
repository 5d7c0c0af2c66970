/**
 * One tower of the two-tower model: embedding bags over hashed ids, concatenated with dense
 * features, an MLP, then row-wise L2 normalisation. The user tower and the item tower are two
 * instances with different bags (docs/model-contract.md lists them).
 */
import type { SeededRng } from '../../core/clock.js';
import { l2NormalizeBackward, l2NormalizeRows } from '../nn/activations.js';
import { EmbeddingTable, bagBackward, bagForward } from '../nn/embedding.js';
import { Mlp } from '../nn/mlp.js';
import type { Param } from '../nn/param.js';

/** One embedding bag of a tower: `bag` ids per row looked up in one table and summed (weighted). */
export interface BagSpec {
  /** Table name, e.g. `user_id_emb`. */
  readonly name: string;
  /** Rows of the table (the spec's hash buckets). */
  readonly rows: number;
  /** Ids per row, e.g. 2 for two hashes of one id, H for the watch history. */
  readonly bag: number;
  /** True when the batch carries per-id weights (mean pooling), false for a plain sum. */
  readonly weighted: boolean;
}

/** Inputs of one tower for a batch: per bag, ids [B, bag] and (weighted bags) weights [B, bag]. */
export interface TowerBatch {
  readonly ids: readonly Int32Array[];
  readonly weights: readonly (Float32Array | undefined)[];
  /** [B, denseWidth]. */
  readonly dense: Float32Array;
}

export interface TowerOptions {
  readonly name: string;
  readonly bags: readonly BagSpec[];
  /** Width of each embedding table row. */
  readonly embDim: number;
  readonly denseWidth: number;
  /** Hidden layer widths of the MLP. */
  readonly hidden: readonly number[];
  /** Output width (the spec's embeddingDim). */
  readonly outDim: number;
}

export class Tower {
  readonly options: TowerOptions;
  readonly tables: readonly EmbeddingTable[];
  readonly mlp: Mlp;
  readonly #inWidth: number;
  #concat = new Float32Array(0);
  #out = new Float32Array(0);
  #norms = new Float32Array(0);
  #dOut = new Float32Array(0);
  #batch = 0;
  #inputs: TowerBatch | undefined;

  constructor(options: TowerOptions, rng: SeededRng) {
    this.options = options;
    this.tables = options.bags.map((b) => new EmbeddingTable(`${options.name}.${b.name}`, b.rows, options.embDim, rng));
    this.#inWidth = options.bags.length * options.embDim + options.denseWidth;
    this.mlp = new Mlp(`${options.name}.mlp`, [this.#inWidth, ...options.hidden, options.outDim], rng);
  }

  get params(): Param[] {
    return this.mlp.params;
  }

  /** Width of the concatenated MLP input: one embedding per bag, then the dense features. */
  get inputWidth(): number {
    return this.#inWidth;
  }

  /** L2-normalised vectors [batch, outDim] in a tower-owned buffer. */
  forward(inputs: TowerBatch, batch: number): Float32Array {
    const w = this.#inWidth;
    const e = this.options.embDim;
    if (this.#concat.length < batch * w) this.#concat = new Float32Array(batch * w);
    const x = this.#concat.subarray(0, batch * w);
    this.options.bags.forEach((bag, i) => {
      bagForward(this.tables[i]!, inputs.ids[i]!, bag.weighted ? inputs.weights[i] : undefined, batch, bag.bag, x, w, i * e);
    });
    const dw = this.options.denseWidth;
    const off = this.options.bags.length * e;
    for (let b = 0; b < batch; b++) x.set(inputs.dense.subarray(b * dw, (b + 1) * dw), b * w + off);
    const h = this.mlp.forward(x, batch);
    const d = this.options.outDim;
    if (this.#out.length < batch * d) {
      this.#out = new Float32Array(batch * d);
      this.#norms = new Float32Array(batch);
      this.#dOut = new Float32Array(batch * d);
    }
    const y = this.#out.subarray(0, batch * d);
    l2NormalizeRows(h, y, this.#norms, batch, d);
    this.#batch = batch;
    this.#inputs = inputs;
    return y;
  }

  /** Backward from dL/d(normalised vectors); accumulates MLP and sparse table gradients. */
  backward(dy: Float32Array): void {
    const batch = this.#batch;
    const inputs = this.#inputs;
    if (inputs === undefined) throw new Error('Tower.backward called before forward');
    const d = this.options.outDim;
    const dh = this.#dOut.subarray(0, batch * d);
    l2NormalizeBackward(this.#out, this.#norms, dy, dh, batch, d);
    const dx = this.mlp.backward(dh, true);
    const w = this.#inWidth;
    const e = this.options.embDim;
    this.options.bags.forEach((bag, i) => {
      bagBackward(this.tables[i]!, inputs.ids[i]!, bag.weighted ? inputs.weights[i] : undefined, batch, bag.bag, dx, w, i * e);
    });
  }
}
