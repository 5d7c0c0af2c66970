/**
 * Adam for dense parameters and lazy (row-sparse) Adam for embedding tables: a table row's moments
 * move only on steps that touch it, as in TensorFlow's LazyAdam, so a step costs the rows touched,
 * not the table size. Bias correction uses the global step count.
 */
import type { EmbeddingTable } from './embedding.js';
import type { Param } from './param.js';

/** Adam settings. */
export interface AdamOptions {
  /** Learning rate. Default 1e-3. */
  readonly lr?: number;
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly eps?: number;
  /** Learning rate of embedding tables (sparse). Default: `lr`. */
  readonly sparseLr?: number;
}

export class Adam {
  readonly #params: readonly Param[];
  readonly #tables: readonly EmbeddingTable[];
  readonly #m: Float32Array[];
  readonly #v: Float32Array[];
  readonly #tm: Float32Array[];
  readonly #tv: Float32Array[];
  #step = 0;
  lr: number;
  readonly #sparseLr: number;
  readonly #b1: number;
  readonly #b2: number;
  readonly #eps: number;

  constructor(params: readonly Param[], tables: readonly EmbeddingTable[], opts: AdamOptions = {}) {
    this.#params = params;
    this.#tables = tables;
    this.lr = opts.lr ?? 1e-3;
    this.#sparseLr = opts.sparseLr ?? this.lr;
    this.#b1 = opts.beta1 ?? 0.9;
    this.#b2 = opts.beta2 ?? 0.999;
    this.#eps = opts.eps ?? 1e-8;
    this.#m = params.map((p) => new Float32Array(p.value.length));
    this.#v = params.map((p) => new Float32Array(p.value.length));
    this.#tm = tables.map((t) => new Float32Array(t.weight.length));
    this.#tv = tables.map((t) => new Float32Array(t.weight.length));
  }

  /** Applies one update from the accumulated gradients, then clears the tables' sparse gradients. */
  step(): void {
    this.#step++;
    const b1 = this.#b1;
    const b2 = this.#b2;
    const c1 = 1 - Math.pow(b1, this.#step);
    const c2 = 1 - Math.pow(b2, this.#step);
    const eps = this.#eps;
    let a = (this.lr * Math.sqrt(c2)) / c1;
    for (let p = 0; p < this.#params.length; p++) {
      const { value, grad } = this.#params[p]!;
      const m = this.#m[p]!;
      const v = this.#v[p]!;
      for (let i = 0; i < value.length; i++) {
        const g = grad[i]!;
        const mi = (m[i] = b1 * m[i]! + (1 - b1) * g);
        const vi = (v[i] = b2 * v[i]! + (1 - b2) * g * g);
        value[i]! -= (a * mi) / (Math.sqrt(vi) + eps);
      }
    }
    a = (this.#sparseLr * Math.sqrt(c2)) / c1;
    for (let t = 0; t < this.#tables.length; t++) {
      const table = this.#tables[t]!;
      const m = this.#tm[t]!;
      const v = this.#tv[t]!;
      const w = table.weight;
      const g = table.gradBuffer;
      const d = table.dim;
      const rows = table.touchedRows;
      for (let s = 0; s < rows.length; s++) {
        const ro = rows[s]! * d;
        const go = s * d;
        for (let j = 0; j < d; j++) {
          const gj = g[go + j]!;
          const i = ro + j;
          const mi = (m[i] = b1 * m[i]! + (1 - b1) * gj);
          const vi = (v[i] = b2 * v[i]! + (1 - b2) * gj * gj);
          w[i]! -= (a * mi) / (Math.sqrt(vi) + eps);
        }
      }
      table.zeroGrad();
    }
  }
}
