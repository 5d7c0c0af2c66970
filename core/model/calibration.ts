import type { Calibration } from './contract.js';

/** Applies a calibration map to a raw probability; the result is clamped to [1e-6, 1 - 1e-6]. */
export function calibrate(cal: Calibration, p: number): number {
  let out: number;
  switch (cal.type) {
    case 'identity':
      out = p;
      break;
    case 'temperature': {
      const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
      const logit = Math.log(q / (1 - q));
      out = 1 / (1 + Math.exp(-logit / cal.temperature));
      break;
    }
    case 'isotonic':
      out = interpolate(cal.x, cal.y, p);
      break;
  }
  return Math.min(1 - 1e-6, Math.max(1e-6, out));
}

/** Piecewise-linear interpolation over ascending `xs`, flat beyond both ends. */
function interpolate(xs: readonly number[], ys: readonly number[], v: number): number {
  const n = xs.length;
  if (n === 0) return v;
  if (v <= (xs[0] ?? 0)) return ys[0] ?? v;
  if (v >= (xs[n - 1] ?? 1)) return ys[n - 1] ?? v;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((xs[mid] ?? 0) <= v) lo = mid;
    else hi = mid;
  }
  const x0 = xs[lo] ?? 0;
  const x1 = xs[hi] ?? 1;
  const y0 = ys[lo] ?? 0;
  const y1 = ys[hi] ?? 1;
  return x1 === x0 ? y0 : y0 + ((y1 - y0) * (v - x0)) / (x1 - x0);
}
