/**
 * A piscina worker holding one ONNX Runtime session of ranker.onnx. One pool generation = one model;
 * a hot swap starts a new pool (ranker-pool.ts), so a worker never changes model under a task.
 * The module's default export is a promise of the task handler: piscina awaits it, so the session
 * is created once per thread before the first task.
 */
import { spansBuffer } from '../../../core/transfer.js';
import { threadId } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { StatusCode, toStatus } from '../../../core/status.js';
import type { StatusObject } from '../../../core/status.js';
import type { ExecutionProviderName } from '../options.js';
import { TENSORS } from '../../../core/model/contract.js';
import type { DescribedResult, RankerTask, RankerTaskResult, RankerWorkerData, TensorDescription } from './messages.js';

const data = workerData as RankerWorkerData;

interface Loaded {
  readonly session: ort.InferenceSession;
  readonly executionProvider: ExecutionProviderName;
  readonly fallbackReason: string | undefined;
}

async function createSession(provider: ExecutionProviderName): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(data.onnxPath, {
    executionProviders: [provider],
    // Parallelism comes from workers; one intra-op thread per session keeps them from fighting.
    intraOpNumThreads: data.intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
}

async function load(): Promise<Loaded> {
  if (data.primary !== 'cpu') {
    try {
      return { session: await createSession(data.primary), executionProvider: data.primary, fallbackReason: undefined };
    } catch (err) {
      if (!data.fallbackToCpu) throw err;
      const reason = `${data.primary} session failed: ${(err as Error).message}`;
      return { session: await createSession('cpu'), executionProvider: 'cpu', fallbackReason: reason };
    }
  }
  return { session: await createSession('cpu'), executionProvider: 'cpu', fallbackReason: undefined };
}

function describe(meta: readonly ort.InferenceSession.ValueMetadata[]): TensorDescription[] {
  return meta.map((m) => (m.isTensor ? { name: m.name, type: String(m.type), shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] }));
}

/** Checks the session honours the model contract (core/model/contract.ts) before it serves. */
function checkContract(session: ort.InferenceSession): StatusObject | undefined {
  const { features, pClick, watchLog1p } = TENSORS.ranker;
  const input = session.inputMetadata.find((m) => m.name === features);
  if (input === undefined) return { code: StatusCode.FAILED_PRECONDITION, message: `ranker.onnx has no input '${features}' (inputs: ${session.inputNames.join(', ')})` };
  if (input.isTensor) {
    if (input.type !== 'float32') return { code: StatusCode.FAILED_PRECONDITION, message: `ranker.onnx input '${features}' is ${input.type}, expected float32` };
    const w = input.shape[1];
    if (typeof w === 'number' && w !== data.width) {
      return { code: StatusCode.FAILED_PRECONDITION, message: `ranker.onnx input '${features}' has ${w} columns, the manifest's feature spec gives ${data.width}` };
    }
  }
  for (const name of [pClick, watchLog1p]) {
    if (!session.outputNames.includes(name)) {
      return { code: StatusCode.FAILED_PRECONDITION, message: `ranker.onnx has no output '${name}' (outputs: ${session.outputNames.join(', ')})` };
    }
  }
  return undefined;
}

/** Own the output's memory: transfer it when it spans its buffer alone, else copy. */
function owned(values: Float32Array, taken: Set<ArrayBufferLike>): Float32Array {
  if (spansBuffer(values) && !taken.has(values.buffer)) {
    taken.add(values.buffer);
    return values;
  }
  const copy = new Float32Array(values);
  taken.add(copy.buffer);
  return copy;
}

async function run(session: ort.InferenceSession, rows: Float32Array, nRows: number): Promise<{ pClick: Float32Array; watchLog1p: Float32Array; runMs: number }> {
  const { features, pClick, watchLog1p } = TENSORS.ranker;
  const t0 = performance.now();
  const out = await session.run({ [features]: new ort.Tensor('float32', rows, [nRows, data.width]) });
  const runMs = performance.now() - t0;
  const p = out[pClick];
  const w = out[watchLog1p];
  if (p === undefined || w === undefined) throw new Error(`session returned no ${p === undefined ? pClick : watchLog1p}`);
  const taken = new Set<ArrayBufferLike>();
  return { pClick: owned(p.data as Float32Array, taken), watchLog1p: owned(w.data as Float32Array, taken), runMs };
}

async function init(): Promise<(task: RankerTask) => Promise<unknown>> {
  let loaded: Loaded | undefined;
  let initFailure: StatusObject | undefined;
  try {
    loaded = await load();
    initFailure = checkContract(loaded.session);
  } catch (err) {
    const status = toStatus(err);
    initFailure = { code: StatusCode.FAILED_PRECONDITION, message: `cannot load ${data.onnxPath}: ${status.message}` };
  }

  /** A failed task; a score task's rows go back to the main thread (transferred) for a retry elsewhere. */
  const failed = (task: RankerTask, status: StatusObject): unknown => {
    if (task.type !== 'score' || task.rows.byteLength === 0) return { type: 'failed', status } satisfies RankerTaskResult;
    const result = { type: 'failed', status, rows: task.rows } satisfies RankerTaskResult;
    const whole = spansBuffer(task.rows);
    return whole ? move({ [transferableSymbol]: [task.rows.buffer], [valueSymbol]: result }) : result;
  };

  return async (task: RankerTask): Promise<unknown> => {
    if (initFailure !== undefined || loaded === undefined) {
      return failed(task, initFailure ?? { code: StatusCode.INTERNAL, message: 'ranker session missing' });
    }
    try {
      switch (task.type) {
        case 'score': {
          const res = await run(loaded.session, task.rows, task.nRows);
          const result = { type: 'scored', ...res } satisfies RankerTaskResult;
          const buffers = res.pClick.buffer === res.watchLog1p.buffer ? [res.pClick.buffer] : [res.pClick.buffer, res.watchLog1p.buffer];
          // Hand both output buffers back without a structured-clone copy.
          return move({ [transferableSymbol]: buffers, [valueSymbol]: result });
        }
        case 'describe': {
          // One warm-up run: allocates the arena (and primes CUDA kernels) before real traffic.
          await run(loaded.session, new Float32Array(data.width), 1);
          return {
            type: 'described',
            executionProvider: loaded.executionProvider,
            fallbackReason: loaded.fallbackReason,
            threadId,
            inputs: describe(loaded.session.inputMetadata),
            outputs: describe(loaded.session.outputMetadata),
          } satisfies DescribedResult;
        }
      }
    } catch (err) {
      const status = toStatus(err);
      return failed(task, { code: StatusCode.INTERNAL, message: `ranker inference failed: ${status.message}` });
    }
  };
}

export default init();
