/**
 * Single-task ranker baselines on the same rows and engine as the MMoE: one MLP for click
 * (logistic) or one for watch (log1p seconds regression). They answer "does the multi-task
 * structure help?" in reports/eval.json.
 */
import { SeededRng } from '../../core/clock.js';
import { sigmoid } from '../nn/activations.js';
import { Mlp } from '../nn/mlp.js';
import { Adam } from '../nn/optim.js';
import type { Param } from '../nn/param.js';
import { zeroGrads } from '../nn/param.js';
import type { RankerTask } from './mmoe.js';

export interface SingleTaskOptions {
  /** Hidden widths. Default [64, 32]. */
  readonly hidden?: readonly number[];
  /** Adam learning rate. Default 2e-3. */
  readonly lr?: number;
  /** Default 1. */
  readonly seed?: number;
}

export class SingleTaskModel {
  readonly task: RankerTask;
  readonly mlp: Mlp;
  readonly #opt: Adam;

  constructor(task: RankerTask, featureWidth: number, opts: SingleTaskOptions = {}) {
    this.task = task;
    this.mlp = new Mlp(`single_${task}`, [featureWidth, ...(opts.hidden ?? [64, 32]), 1], new SeededRng(opts.seed ?? 1));
    this.#opt = new Adam(this.params, [], { lr: opts.lr ?? 2e-3 });
  }

  get params(): Param[] {
    return this.mlp.params;
  }

  /** P(click) for the click task, log1p(watch seconds) for the watch task (fresh array). */
  predict(features: Float32Array, batch: number): Float32Array {
    const raw = this.mlp.forward(features, batch);
    const out = new Float32Array(batch);
    for (let b = 0; b < batch; b++) out[b] = this.task === 'click' ? sigmoid(raw[b]!) : raw[b]!;
    return out;
  }

  /** One Adam step on log-loss (click) or ½ squared error (watch); returns the batch loss. */
  trainStep(features: Float32Array, label: Float32Array, batch: number): number {
    zeroGrads(this.params);
    const raw = this.mlp.forward(features, batch);
    const d = new Float32Array(batch);
    let l = 0;
    for (let b = 0; b < batch; b++) {
      const z = raw[b]!;
      const y = label[b]!;
      l += this.#rowLoss(z, y);
      d[b] = (this.task === 'click' ? sigmoid(z) - y : z - y) / batch;
    }
    this.mlp.backward(d, false);
    this.#opt.step();
    return l / batch;
  }

  /** Mean loss over the batch, as {@link trainStep} counts it, without a step. */
  loss(features: Float32Array, label: Float32Array, batch: number): number {
    const raw = this.mlp.forward(features, batch);
    let l = 0;
    for (let b = 0; b < batch; b++) l += this.#rowLoss(raw[b]!, label[b]!);
    return l / batch;
  }

  /** Log-loss of logit z (stable for large |z|) for click, ½ squared error for watch. */
  #rowLoss(z: number, y: number): number {
    return this.task === 'click' ? Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))) - y * z : 0.5 * (z - y) * (z - y);
  }
}
