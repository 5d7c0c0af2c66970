/** Element-wise and row-wise activations, forward in place and backward in place on the gradient. */

/** ReLU in place over the first `n` entries. */
export function reluForward(x: Float32Array, n = x.length): void {
  for (let i = 0; i < n; i++) if (x[i]! < 0) x[i] = 0;
}

/** dy ← dy ⊙ [y > 0], where `y` is ReLU's output. */
export function reluBackward(y: Float32Array, dy: Float32Array, n = dy.length): void {
  for (let i = 0; i < n; i++) if (y[i]! <= 0) dy[i] = 0;
}

/** Logistic sigmoid of one value, stable for large |z|. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** Row-wise softmax in place over a [rows, cols] matrix (max-subtracted for stability). */
export function softmaxRows(x: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[o + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) {
      const e = Math.exp(x[o + c]! - m);
      x[o + c] = e;
      s += e;
    }
    for (let c = 0; c < cols; c++) x[o + c]! /= s;
  }
}

/** Given softmax output `p` and dL/dp in `dp`, writes dL/dlogits into `dp`: p ⊙ (dp − Σ p·dp). */
export function softmaxBackward(p: Float32Array, dp: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += p[o + c]! * dp[o + c]!;
    for (let c = 0; c < cols; c++) dp[o + c] = p[o + c]! * (dp[o + c]! - dot);
  }
}

/** Smallest norm {@link l2NormalizeRows} divides by, so an all-zero row stays finite. */
export const L2_EPS = 1e-12;

/**
 * Row-wise L2 normalisation y = x / max(‖x‖, eps). Writes `y`, and each row's divisor into `norms`.
 * The ONNX export computes the same with ReduceL2, Max and Div.
 */
export function l2NormalizeRows(x: Float32Array, y: Float32Array, norms: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[o + c]! * x[o + c]!;
    const n = Math.max(Math.sqrt(s), L2_EPS);
    norms[r] = n;
    for (let c = 0; c < cols; c++) y[o + c] = x[o + c]! / n;
  }
}

/** dL/dx of {@link l2NormalizeRows} given its output `y`, divisors `norms` and dL/dy `dy`: (dy − y(y·dy)) / ‖x‖. */
export function l2NormalizeBackward(y: Float32Array, norms: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += y[o + c]! * dy[o + c]!;
    const n = norms[r]!;
    for (let c = 0; c < cols; c++) dx[o + c] = (dy[o + c]! - y[o + c]! * dot) / n;
  }
}
