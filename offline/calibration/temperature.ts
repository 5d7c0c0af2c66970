/**
 * Temperature scaling: p' = sigmoid(logit(p) / T), with T chosen to minimise validation log loss by
 * golden-section search over log T (log loss is unimodal in T for a fixed ranking).
 */
import type { TemperatureCalibration } from '../../core/model/contract.js';
import { calibrate } from '../../core/model/calibration.js';
import { logLoss } from '../eval/metrics.js';

/** Options of {@link fitTemperature}. */
export interface TemperatureOptions {
  /** Search range of T. Default [0.05, 20]. */
  readonly min?: number;
  readonly max?: number;
  /** Golden-section iterations. Default 60 (range shrinks by 0.618^60). */
  readonly iterations?: number;
}

/** Validation log loss after scaling by `temperature`. */
export function temperatureLogLoss(probs: ArrayLike<number>, labels: ArrayLike<number>, temperature: number): number {
  const cal: TemperatureCalibration = { type: 'temperature', temperature };
  const out = new Float64Array(probs.length);
  for (let i = 0; i < probs.length; i++) out[i] = calibrate(cal, probs[i] as number);
  return logLoss(labels, out);
}

/** Fits the temperature on (raw probability, 0/1 label) pairs. Empty input gives T = 1. */
export function fitTemperature(probs: ArrayLike<number>, labels: ArrayLike<number>, opts: TemperatureOptions = {}): TemperatureCalibration {
  if (probs.length !== labels.length) throw new TypeError(`fitTemperature: length mismatch (${probs.length} vs ${labels.length})`);
  const min = opts.min ?? 0.05;
  const max = opts.max ?? 20;
  if (!(min > 0 && max > min)) throw new TypeError(`fitTemperature: need 0 < min < max, got ${min}, ${max}`);
  if (probs.length === 0) return { type: 'temperature', temperature: 1 };
  const f = (logT: number): number => temperatureLogLoss(probs, labels, Math.exp(logT));
  const g = (Math.sqrt(5) - 1) / 2;
  let a = Math.log(min);
  let b = Math.log(max);
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < (opts.iterations ?? 60); i++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return { type: 'temperature', temperature: Math.exp((a + b) / 2) };
}
