/**
 * Training/serving skew of ranker features (DESIGN §5): per column, how far the distribution of
 * the rows serving scored drifts from the rows the ranker was trained on. Pure: no I/O.
 *
 * Binning (one per column, decided from the data of both sides):
 * - **binary** when every finite value on both sides is exactly 0 or 1 (the one-hot columns:
 *   category, duration bucket, context): two bins {0} and {1}, the exact distributions.
 * - **continuous** otherwise: cut points are the training quantiles at k/B, k = 1..B-1 (B =
 *   `bins`, default 20), quantile q = the smallest training value with at least q of the training
 *   mass at or below it, de-duplicated (a point mass such as "0 for most rows" then becomes one
 *   bin of its own instead of several empty ones). Bins are right-closed: an underflow bin
 *   (v < training minimum), [min, c1], (c1, c2], …, (c_last, +inf). Serving values beyond the
 *   training range land in the underflow and last bins, so a shift outside it is seen.
 * - Either kind has one more bin for non-finite values (NaN, ±Infinity), so a serving column that
 *   starts emitting NaN shows up as skew rather than vanishing.
 *
 * Smoothing: each side's bin shares are smoothed additively, p_i = (n_i / N + ε) / (1 + K ε) for K
 * bins, ε = {@link DEFAULT_SMOOTHING_EPSILON} (1e-4) unless given: a bin empty on the training side
 * then costs a large but finite KL instead of +Infinity. A bin empty on both sides has p_i = q_i
 * and contributes exactly 0, so the spare bins (underflow, non-finite) change nothing when unused.
 *
 * KL(serving ‖ training) = Σ p_i ln(p_i / q_i) in nats, p = serving, q = training: large when
 * serving puts mass where training had little (the ranker is extrapolating). PSI = Σ (p_i − q_i)
 * ln(p_i / q_i), the symmetric form operations teams know (rule of thumb: < 0.1 stable, 0.1–0.25
 * moderate, > 0.25 major shift). With finite samples both are biased upwards by about
 * (K − 1) / (2 N): ~0.005 at 20 bins and 2,000 serving rows.
 */

/** Default number of training-quantile bins of a continuous column. */
export const DEFAULT_SKEW_BINS = 20;

/** Default additive smoothing ε added to every bin's share (see the module comment). */
export const DEFAULT_SMOOTHING_EPSILON = 1e-4;

/** How a column is binned: two exact bins (0/1 columns) or training-quantile bins. */
export type ColumnKind = 'binary' | 'continuous';

/** The bins of one column. Build with {@link columnBinning}. */
export interface Binning {
  readonly kind: ColumnKind;
  /** Training minimum (continuous only; underflow below it). */
  readonly min: number;
  /** Distinct ascending cut points (continuous only), right-closed. */
  readonly cuts: Float64Array;
  /** Number of bins K, the non-finite bin included. */
  readonly bins: number;
}

/** Options of {@link columnSkew} and {@link rowsSkew}. */
export interface SkewMetricOptions {
  /** Quantile bins of a continuous column (cut points before de-duplication + 1). Default {@link DEFAULT_SKEW_BINS}. */
  readonly bins?: number;
  /** Additive smoothing ε (≥ 0; 0 gives exact, possibly infinite, values). Default {@link DEFAULT_SMOOTHING_EPSILON}. */
  readonly epsilon?: number;
}

/** Skew of one column. */
export interface ColumnSkew {
  readonly kind: ColumnKind;
  /** Bins used (K, the non-finite bin included). */
  readonly bins: number;
  /** KL(serving ‖ training), nats; NaN when either side has no values. */
  readonly kl: number;
  /** Population stability index; NaN when either side has no values. */
  readonly psi: number;
  /** Mean of the finite serving values (NaN when none). */
  readonly servingMean: number;
  /** Mean of the finite training values (NaN when none). */
  readonly trainingMean: number;
}

/** Skew of one named column of a row matrix. */
export interface FeatureSkew extends ColumnSkew {
  readonly name: string;
  /** Column index in the row. */
  readonly column: number;
}

function resolve(opts: SkewMetricOptions): { bins: number; epsilon: number } {
  const bins = opts.bins ?? DEFAULT_SKEW_BINS;
  if (!Number.isInteger(bins) || bins < 2) throw new TypeError(`option bins must be an integer >= 2, got ${String(bins)}`);
  const epsilon = opts.epsilon ?? DEFAULT_SMOOTHING_EPSILON;
  if (!(Number.isFinite(epsilon) && epsilon >= 0)) throw new TypeError(`option epsilon must be a finite number >= 0, got ${String(epsilon)}`);
  return { bins, epsilon };
}

function isZeroOne(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isFinite(v) && v !== 0 && v !== 1) return false;
  }
  return true;
}

/** The binning of a column from its training and serving values (see the module comment). */
export function columnBinning(training: ArrayLike<number>, serving: ArrayLike<number>, bins: number = DEFAULT_SKEW_BINS): Binning {
  if (isZeroOne(training) && isZeroOne(serving)) return { kind: 'binary', min: 0, cuts: new Float64Array(0), bins: 3 };
  const finite: number[] = [];
  for (let i = 0; i < training.length; i++) {
    const v = training[i]!;
    if (Number.isFinite(v)) finite.push(v);
  }
  const sorted = Float64Array.from(finite).sort();
  const n = sorted.length;
  const cuts: number[] = [];
  if (n > 0) {
    for (let k = 1; k < bins; k++) {
      const c = sorted[Math.max(0, Math.ceil((k * n) / bins) - 1)]!;
      if (cuts.length === 0 || c > cuts[cuts.length - 1]!) cuts.push(c);
    }
  }
  // underflow + [min, c1] … (c_last, +inf) + non-finite
  return { kind: 'continuous', min: n > 0 ? sorted[0]! : 0, cuts: Float64Array.from(cuts), bins: cuts.length + 3 };
}

/** Bin index of `v` under `b`. */
export function binOf(b: Binning, v: number): number {
  if (!Number.isFinite(v)) return b.bins - 1;
  if (b.kind === 'binary') return v === 0 ? 0 : 1;
  if (v < b.min) return 0;
  // 1 + number of cut points strictly below v (binary search: cuts ascending).
  let lo = 0;
  let hi = b.cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (b.cuts[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return 1 + lo;
}

/** Counts of `values` per bin of `b`. */
function binCounts(b: Binning, values: ArrayLike<number>): Float64Array {
  const counts = new Float64Array(b.bins);
  for (let i = 0; i < values.length; i++) counts[binOf(b, values[i]!)]! += 1;
  return counts;
}

/** Smoothed shares (n_i / N + ε) / (1 + K ε); all NaN when N = 0. */
function smoothedShares(counts: Float64Array, epsilon: number = DEFAULT_SMOOTHING_EPSILON): Float64Array {
  let total = 0;
  for (const c of counts) total += c;
  const k = counts.length;
  return counts.map((c) => (total > 0 ? (c / total + epsilon) / (1 + k * epsilon) : Number.NaN));
}

/** KL(p ‖ q) = Σ p ln(p / q), nats; a term with p_i = 0 is 0, one with p_i > 0 = q_i is +Infinity. */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new TypeError(`distributions differ in length: ${p.length} vs ${q.length}`);
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]!;
    if (pi > 0) kl += pi * Math.log(pi / q[i]!);
    else if (Number.isNaN(pi)) return Number.NaN;
  }
  return kl;
}

/** PSI = Σ (p − q) ln(p / q); a term with p_i = q_i (both 0 included) is 0. */
export function populationStabilityIndex(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new TypeError(`distributions differ in length: ${p.length} vs ${q.length}`);
  let psi = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]!;
    const qi = q[i]!;
    if (Number.isNaN(pi) || Number.isNaN(qi)) return Number.NaN;
    if (pi !== qi) psi += (pi - qi) * Math.log(pi / qi);
  }
  return psi;
}

function finiteMean(values: ArrayLike<number>): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isFinite(v)) {
      sum += v;
      n++;
    }
  }
  return n > 0 ? sum / n : Number.NaN;
}

/** Skew of one column: serving values against training values. */
export function columnSkew(serving: ArrayLike<number>, training: ArrayLike<number>, opts: SkewMetricOptions = {}): ColumnSkew {
  const { bins, epsilon } = resolve(opts);
  const b = columnBinning(training, serving, bins);
  const p = smoothedShares(binCounts(b, serving), epsilon);
  const q = smoothedShares(binCounts(b, training), epsilon);
  return {
    kind: b.kind,
    bins: b.bins,
    kl: klDivergence(p, q),
    psi: populationStabilityIndex(p, q),
    servingMean: finiteMean(serving),
    trainingMean: finiteMean(training),
  };
}

/** Column `c` of a row-major matrix of `rows` rows, `width` wide. */
function columnOf(matrix: Float32Array, rows: number, width: number, c: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = matrix[r * width + c]!;
  return out;
}

/**
 * Skew of every column of two row-major matrices of the same `names.length` width, sorted by KL
 * descending (NaN last). `serving` holds `servingRows` rows, `training` `trainingRows`.
 */
export function rowsSkew(
  serving: Float32Array,
  servingRows: number,
  training: Float32Array,
  trainingRows: number,
  names: readonly string[],
  opts: SkewMetricOptions = {},
): FeatureSkew[] {
  const width = names.length;
  if (serving.length < servingRows * width) throw new TypeError(`serving matrix holds ${serving.length} floats, fewer than ${servingRows} rows × ${width}`);
  if (training.length < trainingRows * width) throw new TypeError(`training matrix holds ${training.length} floats, fewer than ${trainingRows} rows × ${width}`);
  resolve(opts);
  const out: FeatureSkew[] = names.map((name, c) => ({
    name,
    column: c,
    ...columnSkew(columnOf(serving, servingRows, width, c), columnOf(training, trainingRows, width, c), opts),
  }));
  return out.sort((a, b) => (Number.isNaN(a.kl) ? 1 : 0) - (Number.isNaN(b.kl) ? 1 : 0) || b.kl - a.kl || a.column - b.column);
}
