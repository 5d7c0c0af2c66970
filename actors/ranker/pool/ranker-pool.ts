/**
 * The ranker's worker pool: piscina threads, each with an ONNX Runtime session of one model.
 *
 * Hot swap: `reload(model)` starts a whole new piscina pool on the new model, warms every worker
 * (one run each), then swaps the pool reference in one assignment. Batches already dispatched finish
 * on the old pool, which is closed once they have (piscina's close waits for running tasks). A model
 * that fails to load never replaces the serving one.
 */
import { spansBuffer } from '../../../core/transfer.js';
import { Piscina } from 'piscina';
import { StatusCode, UpnextError, isStatusObject, toStatus } from '../../../core/status.js';
import { BatchRunFailure } from '../batcher.js';
import type { BatchRunner, RankerOutputs } from '../batcher.js';
import type { ExecutionProviderPlan } from '../execution-provider.js';
import type { RankerModel } from '../model-dir.js';
import type { ExecutionProviderName } from '../options.js';
import type { DescribedResult, RankerTask, RankerTaskResult, RankerWorkerData, TensorDescription } from './messages.js';

const WORKER_FILE = new URL('./worker.js', import.meta.url);

export interface RankerPoolOptions {
  readonly workers: number;
  readonly intraOpNumThreads: number;
  readonly plan: ExecutionProviderPlan;
  /** Concurrent tasks per worker (the batcher never sends more than workers × this). */
  readonly tasksPerWorker: number;
}

/** Counters and state for /metrics. */
export interface RankerPoolStats {
  readonly executionProvider: ExecutionProviderName;
  readonly modelVersion: string;
  readonly modelDir: string;
  readonly workers: number;
  /** ONNX Runtime runs completed on any generation. */
  readonly runs: number;
  readonly rowsScored: number;
  /** Sum of time inside session.run, ms. */
  readonly runMsTotal: number;
  readonly reloads: number;
  /** Piscina utilisation of the current generation (0..1). */
  readonly utilization: number;
}

interface Generation {
  readonly model: RankerModel;
  readonly piscina: Piscina<RankerTask, RankerTaskResult>;
  readonly executionProvider: ExecutionProviderName;
  readonly inputs: readonly TensorDescription[];
  readonly outputs: readonly TensorDescription[];
}

function unwrapFailure(result: RankerTaskResult): void {
  if (result.type === 'failed') throw UpnextError.fromStatus(result.status);
}

/** A piscina pool that scores ranker rows; implements the batcher's {@link BatchRunner}. */
export class RankerPool implements BatchRunner {
  readonly #opts: RankerPoolOptions;
  #current: Generation;
  #closed = false;
  #runs = 0;
  #rowsScored = 0;
  #runMsTotal = 0;
  #reloads = 0;
  /** Serialises reloads so two concurrent ones cannot interleave their swaps. */
  #reloading: Promise<unknown> = Promise.resolve();

  private constructor(opts: RankerPoolOptions, first: Generation) {
    this.#opts = opts;
    this.#current = first;
  }

  /** Starts the workers on `model` and warms each one. Throws FAILED_PRECONDITION if the model can't serve. */
  static async open(model: RankerModel, opts: RankerPoolOptions): Promise<RankerPool> {
    return new RankerPool(opts, await RankerPool.#startGeneration(model, opts));
  }

  static async #startGeneration(model: RankerModel, opts: RankerPoolOptions): Promise<Generation> {
    const workerData: RankerWorkerData = {
      onnxPath: model.onnxPath,
      primary: opts.plan.primary,
      fallbackToCpu: opts.plan.fallbackToCpu,
      intraOpNumThreads: opts.intraOpNumThreads,
      width: model.width,
    };
    const piscina = new Piscina<RankerTask, RankerTaskResult>({
      filename: WORKER_FILE.href,
      minThreads: opts.workers,
      maxThreads: opts.workers,
      concurrentTasksPerWorker: opts.tasksPerWorker,
      idleTimeout: Number.POSITIVE_INFINITY,
      workerData,
    });
    try {
      // As many describe tasks as workers, all at once: with one task per worker in flight, piscina
      // gives each worker one, so every session is created and run once before traffic.
      const described = await Promise.all(
        Array.from({ length: opts.workers }, async () => {
          const r = await piscina.run({ type: 'describe' });
          unwrapFailure(r);
          if (r.type !== 'described') throw new UpnextError(StatusCode.INTERNAL, `worker answered ${r.type} to describe`);
          return r;
        }),
      );
      const first = described[0] as DescribedResult;
      // Workers decide the fallback independently; a mixed pool would make latency bimodal.
      const providers = new Set(described.map((d) => d.executionProvider));
      if (providers.size > 1) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `workers disagree on the execution provider: ${[...providers].join(', ')}`);
      return { model, piscina, executionProvider: first.executionProvider, inputs: first.inputs, outputs: first.outputs };
    } catch (err) {
      await piscina.destroy();
      throw UpnextError.fromStatus(toStatus(err));
    }
  }

  /** The model now serving. */
  get model(): RankerModel {
    return this.#current.model;
  }

  get executionProvider(): ExecutionProviderName {
    return this.#current.executionProvider;
  }

  /** Tensor metadata as ONNX Runtime reports it for the serving session. */
  get tensors(): { readonly inputs: readonly TensorDescription[]; readonly outputs: readonly TensorDescription[] } {
    return { inputs: this.#current.inputs, outputs: this.#current.outputs };
  }

  /**
   * Scores one batch on the current generation; `rows.buffer` is transferred (detached here) when
   * `rows` spans it. A run that fails in the worker rejects with a {@link BatchRunFailure} holding
   * the rows the worker gave back.
   */
  async run(rows: Float32Array, nRows: number): Promise<RankerOutputs> {
    if (this.#closed) throw new UpnextError(StatusCode.UNAVAILABLE, 'ranker pool is closed');
    const gen = this.#current;
    let result: RankerTaskResult;
    try {
      const transferList = spansBuffer(rows) ? [rows.buffer as ArrayBuffer] : [];
      result = await gen.piscina.run({ type: 'score', rows, nRows }, { transferList });
    } catch (err) {
      // Piscina's own failures (worker crash, pool closed) are plain Errors from another realm.
      throw new UpnextError(StatusCode.UNAVAILABLE, `ranker worker failed: ${isStatusObject(err) ? err.message : String((err as Error).message ?? err)}`);
    }
    if (result.type === 'failed' && result.rows !== undefined) throw new BatchRunFailure(result.status.code, result.status.message, result.rows);
    unwrapFailure(result);
    if (result.type !== 'scored') throw new UpnextError(StatusCode.INTERNAL, `worker answered ${result.type} to score`);
    this.#runs++;
    this.#rowsScored += nRows;
    this.#runMsTotal += result.runMs;
    return { pClick: result.pClick, watchLog1p: result.watchLog1p };
  }

  /**
   * Loads `model` on a fresh set of workers and swaps to it atomically; in-flight batches finish on
   * the old workers. Throws (and keeps serving the old model) if the new one cannot serve.
   */
  async reload(model: RankerModel): Promise<void> {
    const next = this.#reloading.then(async () => {
      if (this.#closed) throw new UpnextError(StatusCode.UNAVAILABLE, 'ranker pool is closed');
      const gen = await RankerPool.#startGeneration(model, this.#opts);
      if (this.#closed) {
        await gen.piscina.destroy();
        throw new UpnextError(StatusCode.UNAVAILABLE, 'ranker pool is closed');
      }
      const old = this.#current;
      this.#current = gen;
      this.#reloads++;
      await old.piscina.close();
    });
    this.#reloading = next.catch(() => undefined);
    return next;
  }

  stats(): RankerPoolStats {
    return {
      executionProvider: this.#current.executionProvider,
      modelVersion: this.#current.model.version,
      modelDir: this.#current.model.dir,
      workers: this.#opts.workers,
      runs: this.#runs,
      rowsScored: this.#rowsScored,
      runMsTotal: this.#runMsTotal,
      reloads: this.#reloads,
      utilization: this.#current.piscina.utilization,
    };
  }

  /** Lets running batches finish, then ends every worker. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#reloading;
    await this.#current.piscina.close();
  }
}
