/**
 * Training the MMoE ranker on joined logged rows: the same loss and engine as the world pipeline
 * (offline/models/mmoe.ts: click log-loss + ½(Δ log1p watch s)²), over the train split only, in a
 * seeded shuffle order. (Calibration on the validation split is the world pipeline's
 * offline/pipeline/calibrate.ts fitClickCalibration.)
 */
import { SeededRng } from '../../core/clock.js';
import type { MmoeModel } from '../models/mmoe.js';
import { shuffle } from '../pipeline/fit.js';
import type { JoinedRows } from './join.js';

/** Default passes over the train split. 2, as the world pipeline's FIXED_RANKER_EPOCHS (training on logged rows keeps a fixed count; validation stopping is the world pipeline's). */
export const DEFAULT_LOGGED_EPOCHS = 2;

/**
 * Adam learning rate, warm or from scratch: 2e-3, the MMoE's own default (offline/models/mmoe.ts).
 * A quarter of it for fine-tuning (5e-4) was worse on the measured run (docs/offline.md "Training
 * on logged rows": 2,241 logged requests of the 2,000-video world, test click AUC 0.823 vs 0.842;
 * on a 5,000-row prefix 0.30 vs 0.54): the serving model starts far from what the logged rows
 * show, and the low rate kept it there.
 */
export const DEFAULT_LOGGED_LR = 2e-3;

/** Rows [start, end) of a {@link JoinedRows}. */
export interface RowRange {
  readonly start: number;
  readonly end: number;
}

/** Options of {@link fitOnRows}. */
export interface FitOnRowsOptions {
  /** Default {@link DEFAULT_LOGGED_EPOCHS}. */
  readonly epochs?: number;
  /** Default 512. */
  readonly batchSize?: number;
  /** Shuffle seed. Default 1. */
  readonly seed?: number;
}

/** What a training run did. */
export interface LoggedFitStats {
  readonly examples: number;
  readonly epochs: number;
  /** Mean loss of the last epoch. */
  readonly finalLoss: number;
  /** Examples per CPU second of this process. */
  readonly examplesPerCpuSecond: number;
}

/** Trains `model` in place on rows `range` of `rows`. */
export function fitOnRows(model: MmoeModel, rows: JoinedRows, range: RowRange, o: FitOnRowsOptions = {}): LoggedFitStats {
  const epochs = o.epochs ?? DEFAULT_LOGGED_EPOCHS;
  if (!Number.isInteger(epochs) || epochs < 1) throw new TypeError(`option epochs must be a positive integer, got ${String(o.epochs)}`);
  const bs = o.batchSize ?? 512;
  if (!Number.isInteger(bs) || bs < 1) throw new TypeError(`option batchSize must be a positive integer, got ${String(o.batchSize)}`);
  const f = rows.width;
  const order = Int32Array.from({ length: range.end - range.start }, (_, i) => range.start + i);
  const rng = new SeededRng((o.seed ?? 1) + 303);
  const x = new Float32Array(bs * f);
  const click = new Float32Array(bs);
  const watch = new Float32Array(bs);
  const cpu0 = process.cpuUsage();
  let finalLoss = Number.NaN;
  for (let e = 0; e < epochs; e++) {
    shuffle(order, rng);
    let sum = 0;
    let steps = 0;
    for (let s = 0; s < order.length; s += bs) {
      const b = Math.min(bs, order.length - s);
      for (let k = 0; k < b; k++) {
        const r = order[s + k]!;
        x.set(rows.features.subarray(r * f, (r + 1) * f), k * f);
        click[k] = rows.click[r]!;
        watch[k] = Math.log1p(rows.watchS[r]!);
      }
      sum += model.trainStep(x.subarray(0, b * f), click.subarray(0, b), watch.subarray(0, b), b);
      steps++;
    }
    finalLoss = sum / Math.max(1, steps);
  }
  const cpu = process.cpuUsage(cpu0);
  return { examples: order.length, epochs, finalLoss, examplesPerCpuSecond: (order.length * epochs) / Math.max(1e-9, (cpu.user + cpu.system) / 1e6) };
}
