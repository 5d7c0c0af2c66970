/**
 * The in-process ranker scorer: worker pool + dynamic batcher, no gRPC. The KServe server puts a
 * network edge on it; the benchmark calls it directly to measure the ranker's ceiling.
 */
import { systemClock } from '../../core/clock.js';
import type { Clock } from '../../core/clock.js';
import type { Deadline } from '../../core/deadline.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import type { BatcherStats, BatchTimers, OwnedScoreOutcome, RankerLoad, RankerOutputs } from './batcher.js';
import { DynamicBatcher, systemTimers } from './batcher.js';
import type { ExecutionProviderPlan, ExecutionProviderProbe } from './execution-provider.js';
import { planExecutionProvider, probeExecutionProviders } from './execution-provider.js';
import type { RankerModel } from './model-dir.js';
import { readRankerModel } from './model-dir.js';
import type { ExecutionProviderName, RankerScorerOptions, ResolvedRankerScorerOptions } from './options.js';
import { resolveRankerScorerOptions } from './options.js';
import type { RankerPoolStats } from './pool/ranker-pool.js';
import { RankerPool } from './pool/ranker-pool.js';
import type { TensorDescription } from './pool/messages.js';

/** Everything a scorer reports for /metrics. */
export interface RankerScorerStats {
  readonly pool: RankerPoolStats;
  readonly batcher: BatcherStats;
  /** Why this execution provider (the start-up decision). */
  readonly executionProviderReason: string;
}

/** Test and bench seams; production uses the defaults. */
export interface RankerScorerInternals {
  /** Default systemClock. */
  readonly clock?: Clock;
  /** Default: Node's timers. */
  readonly timers?: BatchTimers;
  /** Default: probeExecutionProviders() on this machine. */
  readonly probe?: ExecutionProviderProbe;
  /** Receives the one start-up line naming the chosen provider. Default console.info. */
  readonly log?: (line: string) => void;
}

/** A started scorer. */
export interface RankerScorer {
  /** Features per row F. */
  readonly width: number;
  /** The provider the workers run on ('cuda' only when a GPU session was actually created). */
  readonly executionProvider: ExecutionProviderName;
  /** The model now serving. */
  readonly model: RankerModel;
  /** Tensor metadata of the serving session, as ONNX Runtime reports it. */
  readonly tensors: { readonly inputs: readonly TensorDescription[]; readonly outputs: readonly TensorDescription[] };
  /**
   * Scores `nRows` rows of `width` features (row-major, rows written by writeRankerRow). Outputs are
   * views into the batch's arrays: copy them if you keep them past your next await. Rejects with an
   * UpnextError (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, UNAVAILABLE, INTERNAL).
   */
  score(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<RankerOutputs>;
  /**
   * Like score(), but takes ownership of `rows`: when they form a batch alone, their buffer is
   * transferred to the worker thread without a copy (so `rows` may be detached afterwards). Never
   * rejects: a failure carries the rows back when they still exist, for a retry on another replica.
   * The in-process caller's path (actors/ranker/local-first.ts).
   */
  scoreOwned(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<OwnedScoreOutcome>;
  /** Queue depth and batches in flight now (cheap enough to ask before every request). */
  load(): RankerLoad;
  /**
   * Hot-swaps to the model in `modelDir` (feature-spec hash checked, workers warmed, then swapped);
   * requests in flight finish on the old model. Rejects FAILED_PRECONDITION and keeps the old model
   * if the new one is refused, including when its row width differs from the serving one.
   */
  reload(modelDir: string): Promise<void>;
  stats(): RankerScorerStats;
  /** Fails waiting requests with UNAVAILABLE, lets running batches finish, ends the workers. Idempotent. */
  close(): Promise<void>;
}

class RankerScorerImpl implements RankerScorer {
  readonly #opts: ResolvedRankerScorerOptions;
  readonly #pool: RankerPool;
  readonly #batcher: DynamicBatcher;
  readonly #plan: ExecutionProviderPlan;
  #closing: Promise<void> | undefined;

  constructor(opts: ResolvedRankerScorerOptions, pool: RankerPool, plan: ExecutionProviderPlan, clock: Clock, timers: BatchTimers) {
    this.#opts = opts;
    this.#pool = pool;
    this.#plan = plan;
    this.#batcher = new DynamicBatcher({
      ...opts.batching,
      width: pool.model.width,
      concurrency: opts.workers * opts.batching.batchesPerWorker,
      runner: pool,
      clock,
      timers,
    });
  }

  get width(): number {
    return this.#batcher.width;
  }

  get executionProvider(): ExecutionProviderName {
    return this.#pool.executionProvider;
  }

  get model(): RankerModel {
    return this.#pool.model;
  }

  get tensors(): { readonly inputs: readonly TensorDescription[]; readonly outputs: readonly TensorDescription[] } {
    return this.#pool.tensors;
  }

  score(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<RankerOutputs> {
    return this.#batcher.submit(rows, nRows, deadline);
  }

  scoreOwned(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<OwnedScoreOutcome> {
    return this.#batcher.submitOwned(rows, nRows, deadline);
  }

  load(): RankerLoad {
    return this.#batcher.load();
  }

  async reload(modelDir: string): Promise<void> {
    const model = await readRankerModel(modelDir, this.#opts.featureSpec);
    if (model.width !== this.#batcher.width) {
      // Rows already queued were written for the old width; a new width needs a new replica.
      throw new UpnextError(StatusCode.FAILED_PRECONDITION, `model ${model.version} expects ${model.width} features per row, this replica serves ${this.#batcher.width}`);
    }
    await this.#pool.reload(model);
  }

  stats(): RankerScorerStats {
    return { pool: this.#pool.stats(), batcher: this.#batcher.stats(), executionProviderReason: this.#plan.reason };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#batcher.close();
      await this.#pool.close();
    })();
    return this.#closing;
  }
}

/** Loads the model, starts and warms the workers, and returns the scorer. Throws TypeError on bad options. */
export async function openRankerScorer(options: RankerScorerOptions, internals: RankerScorerInternals = {}): Promise<RankerScorer> {
  const opts = resolveRankerScorerOptions(options);
  const model = await readRankerModel(opts.modelDir, opts.featureSpec);
  const plan = planExecutionProvider(opts.executionProvider, internals.probe ?? probeExecutionProviders());
  const pool = await RankerPool.open(model, {
    workers: opts.workers,
    intraOpNumThreads: opts.intraOpNumThreads,
    plan,
    tasksPerWorker: opts.batching.batchesPerWorker,
  });
  const log = internals.log ?? ((line: string) => console.info(line));
  const fallback = pool.executionProvider !== plan.primary ? ` (fell back from ${plan.primary})` : '';
  log(`[ranker] model ${model.version}: ${opts.workers} worker(s) on ${pool.executionProvider} execution provider${fallback}; ${plan.reason}`);
  return new RankerScorerImpl(opts, pool, plan, internals.clock ?? systemClock, internals.timers ?? systemTimers);
}
