/**
 * The typed messages between the ranker pool (main thread) and its piscina workers. Failures cross
 * the thread boundary as plain {@link StatusObject}s, never as thrown Error instances.
 */
import type { StatusObject } from '../../../core/status.js';
import type { ExecutionProviderName } from '../options.js';

/** Passed to every worker of one pool generation (one model). */
export interface RankerWorkerData {
  readonly onnxPath: string;
  /** Provider tried first. */
  readonly primary: ExecutionProviderName;
  /** Fall back to CPU when the primary provider fails to create a session. */
  readonly fallbackToCpu: boolean;
  readonly intraOpNumThreads: number;
  /** Features per row F, checked against the model's input shape. */
  readonly width: number;
}

/** Score `nRows` rows; `rows.buffer` is transferred to the worker. */
export interface ScoreTask {
  readonly type: 'score';
  readonly rows: Float32Array;
  readonly nRows: number;
}

/** Report the session (provider, tensor metadata) after one warm-up run. */
export interface DescribeTask {
  readonly type: 'describe';
}

export type RankerTask = ScoreTask | DescribeTask;

export interface TensorDescription {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

export interface ScoredResult {
  readonly type: 'scored';
  readonly pClick: Float32Array;
  readonly watchLog1p: Float32Array;
  /** Time inside session.run, ms. */
  readonly runMs: number;
}

export interface DescribedResult {
  readonly type: 'described';
  readonly executionProvider: ExecutionProviderName;
  /** Why the primary provider was not used, when the worker fell back to CPU. */
  readonly fallbackReason: string | undefined;
  readonly threadId: number;
  readonly inputs: readonly TensorDescription[];
  readonly outputs: readonly TensorDescription[];
}

export interface FailedResult {
  readonly type: 'failed';
  readonly status: StatusObject;
  /** A failed score task's input rows, transferred back so the caller can send them elsewhere. */
  readonly rows?: Float32Array;
}

export type RankerTaskResult = ScoredResult | DescribedResult | FailedResult;
