/**
 * Options of a ranker replica: defaults, then validation (a TypeError naming the bad option), then a
 * resolved type with every field present. Nothing here reads the environment.
 */
import type { FeatureSpec } from '../../core/features/spec.js';

/** An ONNX Runtime execution provider a ranker worker can run on. */
export type ExecutionProviderName = 'cuda' | 'webgpu' | 'cpu';

/**
 * Which ONNX Runtime execution provider the workers use. 'webgpu' is opt-in only, never picked by
 * 'auto': on an H200 it paid only from ~4,000 rows per run (docs/capacity.md, "GPU ranking").
 */
export type ExecutionProviderChoice = 'auto' | ExecutionProviderName;

/** The accepted ExecutionProviderChoice values, for validation and the config table. */
export const EXECUTION_PROVIDER_CHOICES = ['auto', 'cpu', 'cuda', 'webgpu'] as const satisfies readonly ExecutionProviderChoice[];

/** Dynamic batching knobs (see batcher.ts). */
export interface BatchingOptions {
  /** Most rows merged into one ONNX Runtime run. A single larger request runs alone. Default 1024. */
  readonly maxBatchRows?: number;
  /**
   * How long (ms) the oldest waiting request may wait for others to join its batch while a worker
   * is idle. 0 = dispatch at once whenever a worker is idle (requests still merge while all workers
   * are busy). Default 0: a coordinator request is ~550 rows, so under the 1024-row cap at most
   * one other request could join, and a 1 ms hold cost more than it bought (local path, make-run
   * model, 1 in flight: p50 1.8 ms at 1 vs 0.67 ms at 0, 2-vCPU box, 2026-11-25). Raise it for
   * many small callers.
   */
  readonly maxDelayMs?: number;
  /** Rows allowed to wait (not yet dispatched); beyond it a request fails RESOURCE_EXHAUSTED. Default 16384. */
  readonly maxQueueRows?: number;
  /** Batches in flight per worker; 2 lets the next batch cross the thread boundary while one runs. Default 1. */
  readonly batchesPerWorker?: number;
}

export interface ResolvedBatchingOptions {
  readonly maxBatchRows: number;
  readonly maxDelayMs: number;
  readonly maxQueueRows: number;
  readonly batchesPerWorker: number;
}

/** Options of the in-process scorer (worker pool + batcher, no gRPC). */
export interface RankerScorerOptions {
  /** `models/<version>/` holding ranker.onnx and manifest.json. Required. */
  readonly modelDir: string;
  /** Worker threads, each with its own ONNX Runtime session. Default 1. */
  readonly workers?: number;
  /** ONNX Runtime intra-op threads per session. Default 1 (parallelism comes from workers). */
  readonly intraOpNumThreads?: number;
  readonly batching?: BatchingOptions;
  /**
   * 'auto' picks CUDA when ONNX Runtime ships it and a GPU is visible, else CPU. 'webgpu' (Dawn over
   * Vulkan, bundled with onnxruntime-node) and 'cuda' are tried as asked and fail the start if
   * their session cannot be created. Default 'auto'.
   */
  readonly executionProvider?: ExecutionProviderChoice;
  /**
   * The feature spec of the running code. When set, a model whose featureSpecHash differs from
   * specHash(featureSpec) is refused (FAILED_PRECONDITION). Default: only the manifest's own
   * consistency (specHash(manifest.featureSpec) === manifest.featureSpecHash) is checked.
   */
  readonly featureSpec?: FeatureSpec;
}

export interface ResolvedRankerScorerOptions {
  readonly modelDir: string;
  readonly workers: number;
  readonly intraOpNumThreads: number;
  readonly batching: ResolvedBatchingOptions;
  readonly executionProvider: ExecutionProviderChoice;
  readonly featureSpec: FeatureSpec | undefined;
}

/** Options of a ranker replica: the scorer plus its KServe v2 gRPC server. */
export interface RankerOptions extends RankerScorerOptions {
  /** Bind address. Default '127.0.0.1'. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** How long stop() lets in-flight calls finish before cancelling them, ms. Default 2000. */
  readonly shutdownGraceMs?: number;
}

export interface ResolvedRankerOptions extends ResolvedRankerScorerOptions {
  readonly host: string;
  readonly port: number;
  readonly shutdownGraceMs: number;
}

export const DEFAULT_BATCHING: ResolvedBatchingOptions = Object.freeze({
  maxBatchRows: 1024,
  maxDelayMs: 0,
  maxQueueRows: 16_384,
  batchesPerWorker: 1,
});

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new TypeError(`options.${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

function nonNegative(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new TypeError(`options.${name} must be a non-negative number, got ${String(v)}`);
  }
  return v;
}

export function resolveBatchingOptions(opts: BatchingOptions = {}): ResolvedBatchingOptions {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('options.batching must be an object');
  const maxBatchRows = positiveInt('batching.maxBatchRows', opts.maxBatchRows ?? DEFAULT_BATCHING.maxBatchRows);
  const maxDelayMs = nonNegative('batching.maxDelayMs', opts.maxDelayMs ?? DEFAULT_BATCHING.maxDelayMs);
  const maxQueueRows = positiveInt('batching.maxQueueRows', opts.maxQueueRows ?? DEFAULT_BATCHING.maxQueueRows);
  const batchesPerWorker = positiveInt('batching.batchesPerWorker', opts.batchesPerWorker ?? DEFAULT_BATCHING.batchesPerWorker);
  return { maxBatchRows, maxDelayMs, maxQueueRows, batchesPerWorker };
}

export function resolveRankerScorerOptions(opts: RankerScorerOptions): ResolvedRankerScorerOptions {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('options must be an object');
  if (typeof opts.modelDir !== 'string' || opts.modelDir.length === 0) {
    throw new TypeError('options.modelDir must be a non-empty string');
  }
  const workers = positiveInt('workers', opts.workers ?? 1);
  const intraOpNumThreads = positiveInt('intraOpNumThreads', opts.intraOpNumThreads ?? 1);
  const executionProvider = opts.executionProvider ?? 'auto';
  if (!(EXECUTION_PROVIDER_CHOICES as readonly string[]).includes(executionProvider)) {
    throw new TypeError(`options.executionProvider must be one of ${EXECUTION_PROVIDER_CHOICES.map((c) => `'${c}'`).join(', ')}, got ${String(executionProvider)}`);
  }
  if (opts.featureSpec !== undefined && (typeof opts.featureSpec !== 'object' || opts.featureSpec === null)) {
    throw new TypeError('options.featureSpec must be a FeatureSpec object');
  }
  return {
    modelDir: opts.modelDir,
    workers,
    intraOpNumThreads,
    batching: resolveBatchingOptions(opts.batching),
    executionProvider,
    featureSpec: opts.featureSpec,
  };
}

export function resolveRankerOptions(opts: RankerOptions): ResolvedRankerOptions {
  const scorer = resolveRankerScorerOptions(opts);
  const host = opts.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw new TypeError('options.host must be a non-empty string');
  const port = opts.port ?? 0;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new TypeError(`options.port must be an integer in 0..65535, got ${String(port)}`);
  }
  const shutdownGraceMs = nonNegative('shutdownGraceMs', opts.shutdownGraceMs ?? 2000);
  return { ...scorer, host, port, shutdownGraceMs };
}
