/**
 * Synthetic L2-normalised vectors for index benchmarks and tests: a Gaussian mixture on the unit
 * sphere, which looks like trained two-tower embeddings (clustered by taste) without needing a model.
 * `spread` is the per-dimension noise around a cluster centre: 0 gives duplicates of the centres,
 * ~0.5 is close to uniform on the sphere (the hardest case for ANN recall).
 */
import { SeededRng } from '../../core/clock.js';

/** Options of {@link clusteredUnitVectors}. */
export interface ClusteredVectorsOptions {
  /** Number of vectors. */
  readonly n: number;
  /** Dimension. Default 64. */
  readonly dim?: number;
  /** Mixture components. Default 256. */
  readonly clusters?: number;
  /** Per-dimension standard deviation around a (unit) centre. Default 0.15. */
  readonly spread?: number;
  /** RNG seed. Default 1. */
  readonly seed?: number;
}

/** `n × dim` row-major, every row of unit L2 norm. */
export function clusteredUnitVectors(opts: ClusteredVectorsOptions): Float32Array {
  const dim = opts.dim ?? 64;
  const clusters = opts.clusters ?? 256;
  const spread = opts.spread ?? 0.15;
  const rng = new SeededRng(opts.seed ?? 1);
  const centres = new Float32Array(clusters * dim);
  for (let i = 0; i < centres.length; i++) centres[i] = rng.normal();
  normaliseRows(centres, dim);
  const out = new Float32Array(opts.n * dim);
  for (let i = 0; i < opts.n; i++) {
    const c = rng.int(clusters);
    for (let j = 0; j < dim; j++) out[i * dim + j] = (centres[c * dim + j] ?? 0) + spread * rng.normal();
  }
  normaliseRows(out, dim);
  return out;
}

/** Scales every `dim`-wide row of `v` to unit L2 norm in place (zero rows stay zero). */
export function normaliseRows(v: Float32Array, dim: number): void {
  for (let r = 0; r < v.length / dim; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (v[r * dim + j] ?? 0) ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) v[r * dim + j] = (v[r * dim + j] ?? 0) * inv;
  }
}
