/** A dense trainable tensor and its gradient accumulator (same length, row-major). */
export interface Param {
  /** Name used in ONNX initializers and error messages, e.g. `user_mlp0.weight`. */
  readonly name: string;
  /** Shape of the value, e.g. [in, out] for a weight matrix. */
  readonly shape: readonly number[];
  readonly value: Float32Array;
  readonly grad: Float32Array;
}

export function newParam(name: string, shape: readonly number[]): Param {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, shape, value: new Float32Array(n), grad: new Float32Array(n) };
}

/** Zeroes the gradients of `params` (call before each step's backward pass). */
export function zeroGrads(params: readonly Param[]): void {
  for (const p of params) p.grad.fill(0);
}
