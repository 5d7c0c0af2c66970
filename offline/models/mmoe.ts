/**
 * MMoE ranker (Ma et al., KDD 2018), DESIGN.md §5: a shared input layer over the ranker row, E
 * experts, one softmax gate and one tower per task. Task "click" is logistic (output p_click =
 * sigmoid(logit)); task "watch" regresses log1p(watch seconds) of the impression (0 when not
 * watched), so the policy gets E[log-watch | shown]. The E experts are stored as one
 * [shared, E·expertDim] matrix: identical maths to E separate layers, one MatMul in ONNX.
 */
import { SeededRng } from '../../core/clock.js';
import { sigmoid, softmaxBackward, softmaxRows } from '../nn/activations.js';
import { Dense } from '../nn/dense.js';
import { Mlp } from '../nn/mlp.js';
import { Adam } from '../nn/optim.js';
import type { Param } from '../nn/param.js';
import { zeroGrads } from '../nn/param.js';

/** Names of the two tasks, in output order. */
export const RANKER_TASKS = ['click', 'watch'] as const;
export type RankerTask = (typeof RANKER_TASKS)[number];

/**
 * Default layer widths of the MMoE ranker. The ranking stage was about a third of a request's CPU
 * in the in-process ceiling, most of it the ONNX call, so the ranker's size is a capacity knob.
 * These widths (were 128, 4 × 64, 32 until 2026-11-27) halve the call over ~430 candidates. On the
 * 1M world, with two initialisation seeds for each size over the same towers, they held click AUC
 * (±0.0001) and gave more watch seconds and completions online, for 0.01–0.03 less CTR
 * (docs/capacity.md "A smaller ranker").
 */
export const DEFAULT_MMOE_WIDTHS = { sharedDim: 64, experts: 4, expertDim: 32, towerDim: 16 } as const;

/** Hyper-parameters of the MMoE ranker. */
export interface MmoeOptions {
  /** Width of the shared input layer. Default {@link DEFAULT_MMOE_WIDTHS}. */
  readonly sharedDim?: number;
  /** Number of experts. Default {@link DEFAULT_MMOE_WIDTHS} (docs/offline.md swept 4, 6 and 8). */
  readonly experts?: number;
  /** Output width of each expert. Default {@link DEFAULT_MMOE_WIDTHS}. */
  readonly expertDim?: number;
  /** Hidden width of each task tower. Default {@link DEFAULT_MMOE_WIDTHS}. */
  readonly towerDim?: number;
  /**
   * Weight of the watch loss (½·squared error in log1p seconds) against the click log-loss.
   * Default {@link DEFAULT_WATCH_WEIGHT}.
   */
  readonly watchWeight?: number;
  /** Adam learning rate. Default 2e-3. */
  readonly lr?: number;
  /** Default 1. */
  readonly seed?: number;
}

/**
 * Default weight of the watch loss. Under Adam the weight barely changes how fast the watch gate
 * and tower learn (Adam's steps do not depend on the scale of a loss that alone reaches a
 * parameter); what it sets is the watch task's share of the gradient in the shared layer and the
 * experts. Measured (docs/offline.md "The watch-loss weight"): at 1 the MMoE's click AUC trailed
 * the single-task model's on KuaiRand by 0.007–0.013 on four seeds and tied it on the default
 * world; at 0.1 the click task leads the shared layers, and the MMoE is ahead on click AUC on the
 * default world on every seed tried and on KuaiRand on three of four, with a lower KuaiRand watch
 * MAE on all four.
 */
export const DEFAULT_WATCH_WEIGHT = 0.1;

/** Predictions for a batch: P(click) (uncalibrated) and log1p(watch seconds). */
export interface RankerOutputs {
  readonly pClick: Float32Array;
  readonly watchLog1p: Float32Array;
}

function positiveWidth(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new TypeError(`mmoe ${name} must be a positive integer, got ${v}`);
  return v;
}

/** The widths `opts` asks for, defaults filled in and each checked (TypeError naming the width). */
function mmoeWidths(opts: MmoeOptions): { readonly sharedDim: number; readonly experts: number; readonly expertDim: number; readonly towerDim: number } {
  return {
    sharedDim: positiveWidth('sharedDim', opts.sharedDim ?? DEFAULT_MMOE_WIDTHS.sharedDim),
    experts: positiveWidth('experts', opts.experts ?? DEFAULT_MMOE_WIDTHS.experts),
    expertDim: positiveWidth('expertDim', opts.expertDim ?? DEFAULT_MMOE_WIDTHS.expertDim),
    towerDim: positiveWidth('towerDim', opts.towerDim ?? DEFAULT_MMOE_WIDTHS.towerDim),
  };
}

/**
 * The layer widths as one string, e.g. "80-64-4x32-16": row width, shared layer, experts × expert
 * width, tower width. Recorded in the manifest (`trainingData.rankerShape`) so a bench, an A/B or
 * the local model cache can tell rankers of different sizes apart.
 */
export function mmoeShape(m: Pick<MmoeModel, 'featureWidth' | 'sharedDim' | 'numExperts' | 'expertDim' | 'towerDim'>): string {
  return `${m.featureWidth}-${m.sharedDim}-${m.numExperts}x${m.expertDim}-${m.towerDim}`;
}

/** {@link mmoeShape} of a model trained with `opts` over rows of `featureWidth`, without building it. */
export function mmoeShapeFor(featureWidth: number, opts: MmoeOptions = {}): string {
  const w = mmoeWidths(opts);
  return mmoeShape({ featureWidth: positiveWidth('featureWidth', featureWidth), sharedDim: w.sharedDim, numExperts: w.experts, expertDim: w.expertDim, towerDim: w.towerDim });
}

/**
 * The widths alone, e.g. "r64-4x32-16" for the defaults: part of a local model version's name
 * (cluster/local/assets.ts), so a change of widths trains a new version beside the old one rather
 * than replacing a version's ranker under the same name.
 */
export function mmoeWidthsTag(opts: MmoeOptions = {}): string {
  const w = mmoeWidths(opts);
  return `r${w.sharedDim}-${w.experts}x${w.expertDim}-${w.towerDim}`;
}

export class MmoeModel {
  readonly featureWidth: number;
  readonly sharedDim: number;
  readonly numExperts: number;
  readonly expertDim: number;
  readonly towerDim: number;
  readonly watchWeight: number;
  readonly shared: Mlp;
  readonly experts: Mlp;
  /** One gate per task, order {@link RANKER_TASKS}. */
  readonly gates: readonly Dense[];
  /** One tower per task: [expertDim, towerDim, 1]. */
  readonly towers: readonly Mlp[];
  readonly #opt: Adam;
  #gate: Float32Array[] = [];
  #mix: Float32Array[] = [];
  #dExpert = new Float32Array(0);
  #dShared = new Float32Array(0);
  #expertOut: Float32Array = new Float32Array(0);

  constructor(featureWidth: number, opts: MmoeOptions = {}) {
    const rng = new SeededRng(opts.seed ?? 1);
    const { sharedDim, experts, expertDim, towerDim } = mmoeWidths(opts);
    this.sharedDim = sharedDim;
    this.numExperts = experts;
    this.expertDim = expertDim;
    this.towerDim = towerDim;
    this.watchWeight = opts.watchWeight ?? DEFAULT_WATCH_WEIGHT;
    this.featureWidth = featureWidth;
    this.shared = new Mlp('shared', [featureWidth, sharedDim], rng, true);
    this.experts = new Mlp('experts', [sharedDim, this.numExperts * this.expertDim], rng, true);
    this.gates = RANKER_TASKS.map((t) => new Dense(`gate_${t}`, sharedDim, this.numExperts, rng));
    this.towers = RANKER_TASKS.map((t) => new Mlp(`tower_${t}`, [this.expertDim, towerDim, 1], rng));
    this.#opt = new Adam(this.params, [], { lr: opts.lr ?? 2e-3 });
  }

  get params(): Param[] {
    return [...this.shared.params, ...this.experts.params, ...this.gates.flatMap((g) => g.params), ...this.towers.flatMap((t) => t.params)];
  }

  /** Forward pass: per task, the raw output (click logit, watch log1p) [batch] in model-owned buffers. */
  forwardRaw(features: Float32Array, batch: number): Float32Array[] {
    const h = this.shared.forward(features, batch);
    const ex = this.experts.forward(h, batch);
    this.#expertOut = ex;
    const e = this.numExperts;
    const x = this.expertDim;
    return RANKER_TASKS.map((_, t) => {
      const g = this.gates[t]!.forward(h, batch);
      softmaxRows(g, batch, e);
      if ((this.#mix[t]?.length ?? 0) < batch * x) {
        this.#mix[t] = new Float32Array(batch * x);
        this.#gate[t] = new Float32Array(batch * e);
      }
      const mix = this.#mix[t]!.subarray(0, batch * x);
      this.#gate[t]!.set(g);
      mix.fill(0);
      for (let b = 0; b < batch; b++) {
        for (let k = 0; k < e; k++) {
          const gk = g[b * e + k]!;
          const eo = b * e * x + k * x;
          for (let c = 0; c < x; c++) mix[b * x + c]! += gk * ex[eo + c]!;
        }
      }
      return this.towers[t]!.forward(mix, batch);
    });
  }

  /** Predictions for `batch` ranker rows (fresh arrays). */
  predict(features: Float32Array, batch: number): RankerOutputs {
    const [logit, watch] = this.forwardRaw(features, batch);
    const pClick = new Float32Array(batch);
    for (let b = 0; b < batch; b++) pClick[b] = sigmoid(logit![b]!);
    return { pClick, watchLog1p: watch!.slice(0, batch) };
  }

  /** Mean loss over the batch: log-loss(click) + watchWeight · ½(watch − label)². */
  loss(features: Float32Array, click: Float32Array, watchLog1p: Float32Array, batch: number): number {
    const [logit, watch] = this.forwardRaw(features, batch);
    let l = 0;
    for (let b = 0; b < batch; b++) {
      const z = logit![b]!;
      // log(1 + e^z) − y·z, stable for large |z|.
      l += Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))) - click[b]! * z;
      const r = watch![b]! - watchLog1p[b]!;
      l += this.watchWeight * 0.5 * r * r;
    }
    return l / batch;
  }

  /** Accumulates gradients of {@link loss} (after zeroing them) and returns the loss. */
  backwardLoss(features: Float32Array, click: Float32Array, watchLog1p: Float32Array, batch: number): number {
    zeroGrads(this.params);
    const l = this.loss(features, click, watchLog1p, batch);
    const e = this.numExperts;
    const x = this.expertDim;
    const sharedDim = this.shared.outDim;
    if (this.#dExpert.length < batch * e * x) this.#dExpert = new Float32Array(batch * e * x);
    if (this.#dShared.length < batch * sharedDim) this.#dShared = new Float32Array(batch * sharedDim);
    const dEx = this.#dExpert.subarray(0, batch * e * x);
    const dSh = this.#dShared.subarray(0, batch * sharedDim);
    dEx.fill(0);
    dSh.fill(0);
    const ex = this.#expertOut;
    const dOut = new Float32Array(batch);
    RANKER_TASKS.forEach((task, t) => {
      const raw = this.towers[t]!.lastOutput;
      for (let b = 0; b < batch; b++) {
        dOut[b] = task === 'click' ? (sigmoid(raw[b]!) - click[b]!) / batch : (this.watchWeight * (raw[b]! - watchLog1p[b]!)) / batch;
      }
      const dMix = this.towers[t]!.backward(dOut, true);
      const g = this.#gate[t]!;
      const dg = new Float32Array(batch * e);
      for (let b = 0; b < batch; b++) {
        for (let k = 0; k < e; k++) {
          const gk = g[b * e + k]!;
          const eo = b * e * x + k * x;
          let s = 0;
          for (let c = 0; c < x; c++) {
            const dm = dMix[b * x + c]!;
            s += dm * ex[eo + c]!;
            dEx[eo + c]! += gk * dm;
          }
          dg[b * e + k] = s;
        }
      }
      softmaxBackward(g, dg, batch, e);
      const dh = this.gates[t]!.backward(dg, true);
      for (let i = 0; i < dSh.length; i++) dSh[i]! += dh[i]!;
    });
    const dh = this.experts.backward(dEx, true);
    for (let i = 0; i < dSh.length; i++) dSh[i]! += dh[i]!;
    this.shared.backward(dSh, false);
    return l;
  }

  /** One Adam step on a batch; returns the batch loss before the step. */
  trainStep(features: Float32Array, click: Float32Array, watchLog1p: Float32Array, batch: number): number {
    const l = this.backwardLoss(features, click, watchLog1p, batch);
    this.#opt.step();
    return l;
  }
}
