/**
 * A stack of {@link Dense} layers with ReLU between them (none after the last), the building block
 * of every tower, expert and head here. The ONNX exporter mirrors it as MatMul, Add, Relu.
 */
import type { SeededRng } from '../../core/clock.js';
import { reluBackward, reluForward } from './activations.js';
import { Dense } from './dense.js';
import type { Param } from './param.js';

export class Mlp {
  readonly layers: readonly Dense[];
  /** When true the last layer is followed by a ReLU too (an expert's output, a shared bottom). */
  readonly reluOut: boolean;
  #batch = 0;
  #out: Float32Array = new Float32Array(0);

  /** `dims` = [in, hidden..., out]; layer i is named `${name}.${i}`. */
  constructor(name: string, dims: readonly number[], rng: SeededRng, reluOut = false) {
    if (dims.length < 2) throw new TypeError(`mlp ${name} needs at least [in, out] dims`);
    const layers: Dense[] = [];
    for (let i = 0; i + 1 < dims.length; i++) layers.push(new Dense(`${name}.${i}`, dims[i]!, dims[i + 1]!, rng));
    this.layers = layers;
    this.reluOut = reluOut;
  }

  get inDim(): number {
    return this.layers[0]!.inDim;
  }

  get outDim(): number {
    return this.layers[this.layers.length - 1]!.outDim;
  }

  /** Output of the last {@link forward} call (owned by the last layer). */
  get lastOutput(): Float32Array {
    return this.#out;
  }

  get params(): Param[] {
    return this.layers.flatMap((l) => l.params);
  }

  /** Forward over `batch` rows; the returned buffer belongs to the last layer. */
  forward(x: Float32Array, batch: number): Float32Array {
    this.#batch = batch;
    let h = x;
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i]!;
      h = layer.forward(h, batch);
      if (i + 1 < this.layers.length || this.reluOut) reluForward(h, batch * layer.outDim);
    }
    this.#out = h;
    return h;
  }

  /**
   * Backward from dL/d(output). `dy` is modified in place (ReLU masking). Returns dL/dx in a
   * layer-owned buffer, or an empty array when `needDx` is false.
   */
  backward(dy: Float32Array, needDx = true): Float32Array {
    const batch = this.#batch;
    let g = dy;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const layer = this.layers[i]!;
      const relu = i + 1 < this.layers.length || this.reluOut;
      if (relu) {
        const y = i === this.layers.length - 1 ? this.#out : this.#outputOf(i);
        reluBackward(y, g, batch * layer.outDim);
      }
      g = layer.backward(g, i > 0 || needDx);
    }
    return g;
  }

  /** Output of layer i from the last forward (the input the next layer remembered). */
  #outputOf(i: number): Float32Array {
    return this.layers[i + 1]!.lastInput;
  }
}
