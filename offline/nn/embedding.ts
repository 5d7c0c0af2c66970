/**
 * Embedding tables with row-sparse gradients. A step touches a few thousand of a table's 262,144
 * rows; gradients are accumulated only for those rows (a slot per touched row) and the optimiser
 * updates only them. This is what makes hashed-id tables trainable in JS: a dense gradient over
 * every row was the reason tfjs `tf.gather` ran 35 s/step (docs/offline.md).
 */
import type { SeededRng } from '../../core/clock.js';
import { uniformInit } from './init.js';

export class EmbeddingTable {
  readonly name: string;
  readonly rows: number;
  readonly dim: number;
  /** [rows, dim] row-major. */
  readonly weight: Float32Array;
  /** Gradient slot of each row in {@link gradBuffer}, -1 when the row was not touched this step. */
  readonly #slotOf: Int32Array;
  #touched: number[] = [];
  #grad = new Float32Array(0);

  constructor(name: string, rows: number, dim: number, rng: SeededRng, std = 0.05) {
    this.name = name;
    this.rows = rows;
    this.dim = dim;
    // Uniform with the same variance as N(0, std²): a 262,144-row table initialises ~3× faster.
    this.weight = uniformInit(new Float32Array(rows * dim), std * Math.sqrt(3), rng);
    this.#slotOf = new Int32Array(rows).fill(-1);
  }

  /** Rows touched since the last {@link zeroGrad}, in first-touch order. */
  get touchedRows(): readonly number[] {
    return this.#touched;
  }

  /** Gradient buffer: the gradient of `touchedRows[s]` lives at `[s·dim, (s+1)·dim)`. */
  get gradBuffer(): Float32Array {
    return this.#grad;
  }

  /** grad[row] += scale · src[srcOffset .. srcOffset + dim). */
  addGrad(row: number, src: Float32Array, srcOffset: number, scale: number): void {
    if (scale === 0) return;
    let slot = this.#slotOf[row]!;
    if (slot < 0) {
      slot = this.#touched.length;
      this.#slotOf[row] = slot;
      this.#touched.push(row);
      const need = (slot + 1) * this.dim;
      if (this.#grad.length < need) {
        const grown = new Float32Array(Math.max(need, this.#grad.length * 2, 1024 * this.dim));
        grown.set(this.#grad);
        this.#grad = grown;
      }
      this.#grad.fill(0, slot * this.dim, need);
    }
    const d = this.dim;
    const go = slot * d;
    for (let j = 0; j < d; j++) this.#grad[go + j]! += scale * src[srcOffset + j]!;
  }

  /** Forgets this step's gradients (cost proportional to the rows touched, not the table). */
  zeroGrad(): void {
    for (const r of this.#touched) this.#slotOf[r] = -1;
    this.#touched = [];
  }
}

/**
 * Embedding bag: out[b, :] = Σ_k weight[b, k] · table[ids[b, k], :] over `bag` ids per row (`weights`
 * omitted means 1, i.e. the sum used for the two hashes of one id). Mean pooling is the caller's
 * weights (1/count on real entries, 0 on padding), as in core/features/towers.ts.
 */
export function bagForward(
  table: EmbeddingTable,
  ids: Int32Array,
  weights: Float32Array | undefined,
  batch: number,
  bag: number,
  out: Float32Array,
  outStride: number,
  outOffset: number,
): void {
  const d = table.dim;
  const w = table.weight;
  for (let b = 0; b < batch; b++) {
    const o = b * outStride + outOffset;
    for (let j = 0; j < d; j++) out[o + j] = 0;
    for (let k = 0; k < bag; k++) {
      const s = weights === undefined ? 1 : weights[b * bag + k]!;
      if (s === 0) continue;
      const ro = ids[b * bag + k]! * d;
      for (let j = 0; j < d; j++) out[o + j]! += s * w[ro + j]!;
    }
  }
}

/** Backward of {@link bagForward}: table.grad[ids[b,k]] += weight[b,k] · dOut[b, :]. */
export function bagBackward(
  table: EmbeddingTable,
  ids: Int32Array,
  weights: Float32Array | undefined,
  batch: number,
  bag: number,
  dOut: Float32Array,
  outStride: number,
  outOffset: number,
): void {
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < bag; k++) {
      const s = weights === undefined ? 1 : weights[b * bag + k]!;
      table.addGrad(ids[b * bag + k]!, dOut, b * outStride + outOffset, s);
    }
  }
}
