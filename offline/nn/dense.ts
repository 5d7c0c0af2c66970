/**
 * Fully connected layer y = x·W + b with W stored [in, out] row-major (the layout ONNX MatMul
 * expects, so export copies the buffer as is). The loops run `i` (row), `k` (input), `j` (output):
 * the innermost loop walks W's row k and y's row i contiguously, and a zero input (one-hot
 * features are mostly zeros) skips a whole row of W.
 */
import type { SeededRng } from '../../core/clock.js';
import { glorotUniform } from './init.js';
import type { Param } from './param.js';
import { newParam } from './param.js';

export class Dense {
  readonly inDim: number;
  readonly outDim: number;
  readonly weight: Param;
  readonly bias: Param;
  #out = new Float32Array(0);
  #dx = new Float32Array(0);
  #x: Float32Array = new Float32Array(0);
  #batch = 0;

  constructor(name: string, inDim: number, outDim: number, rng: SeededRng) {
    this.inDim = inDim;
    this.outDim = outDim;
    this.weight = newParam(`${name}.weight`, [inDim, outDim]);
    this.bias = newParam(`${name}.bias`, [outDim]);
    glorotUniform(this.weight.value, inDim, outDim, rng);
  }

  get params(): Param[] {
    return [this.weight, this.bias];
  }

  /** The input of the last {@link forward} call. */
  get lastInput(): Float32Array {
    return this.#x;
  }

  /**
   * Forward pass over `batch` rows of `x` ([batch, inDim]). Returns a buffer owned by the layer
   * (overwritten by the next call) and remembers `x` for {@link backward}.
   */
  forward(x: Float32Array, batch: number): Float32Array {
    const n = batch * this.outDim;
    if (this.#out.length < n) this.#out = new Float32Array(n);
    const y = this.#out.subarray(0, n);
    denseForward(x, this.weight.value, this.bias.value, y, batch, this.inDim, this.outDim);
    this.#x = x;
    this.#batch = batch;
    return y;
  }

  /**
   * Backward pass: accumulates dW, db from `dy` ([batch, outDim]) and returns dx ([batch, inDim],
   * a layer-owned buffer), or nothing when `needDx` is false (first layer over raw features).
   */
  backward(dy: Float32Array, needDx = true): Float32Array {
    const batch = this.#batch;
    const n = batch * this.inDim;
    if (needDx && this.#dx.length < n) this.#dx = new Float32Array(n);
    const dx = needDx ? this.#dx.subarray(0, n) : undefined;
    denseBackward(this.#x, dy, this.weight.value, this.weight.grad, this.bias.grad, dx, batch, this.inDim, this.outDim);
    return dx ?? this.#dx.subarray(0, 0);
  }
}

/** y[b, :] = x[b, :]·W + bias. */
export function denseForward(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array,
  y: Float32Array,
  batch: number,
  inDim: number,
  outDim: number,
): void {
  for (let i = 0; i < batch; i++) {
    const yo = i * outDim;
    for (let j = 0; j < outDim; j++) y[yo + j] = bias[j]!;
    const xo = i * inDim;
    for (let k = 0; k < inDim; k++) {
      const xv = x[xo + k]!;
      if (xv === 0) continue;
      const wo = k * outDim;
      for (let j = 0; j < outDim; j++) y[yo + j]! += xv * w[wo + j]!;
    }
  }
}

/** dW += xᵀ·dy, db += Σ dy, dx = dy·Wᵀ (when `dx` is given). */
export function denseBackward(
  x: Float32Array,
  dy: Float32Array,
  w: Float32Array,
  dw: Float32Array,
  db: Float32Array,
  dx: Float32Array | undefined,
  batch: number,
  inDim: number,
  outDim: number,
): void {
  for (let i = 0; i < batch; i++) {
    const yo = i * outDim;
    for (let j = 0; j < outDim; j++) db[j]! += dy[yo + j]!;
    const xo = i * inDim;
    for (let k = 0; k < inDim; k++) {
      const xv = x[xo + k]!;
      const wo = k * outDim;
      if (dx !== undefined) {
        let s = 0;
        for (let j = 0; j < outDim; j++) s += dy[yo + j]! * w[wo + j]!;
        dx[xo + k] = s;
      }
      if (xv === 0) continue;
      for (let j = 0; j < outDim; j++) dw[wo + j]! += xv * dy[yo + j]!;
    }
  }
}
