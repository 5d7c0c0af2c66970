/**
 * ONNX Runtime ranking throughput: candidates scored per second per core at batch 1, 64 and 512,
 * for any ranker.onnx. Inputs are read from the model (name, dtype, shape; the first dimension is
 * the batch) and filled with random values, so a model from elsewhere works without code changes.
 * One intra-op thread; candidates/s/core = candidates / CPU seconds of this process.
 */
import ort from 'onnxruntime-node';
import { SeededRng } from '../../core/clock.js';
import { cpuSecondsSince, printTable } from './table.js';

/** Options for {@link benchOnnxRanker}. */
export interface OnnxBenchOptions {
  /** Path to ranker.onnx. */
  readonly modelPath: string;
  /** Batch sizes. Default [1, 64, 512]. */
  readonly batches?: readonly number[];
  /** Candidates scored per batch size (rounded up to whole batches). Default 50,000. */
  readonly candidates?: number;
}

export interface OnnxBatchResult {
  readonly batch: number;
  readonly candidatesPerSecondPerCore: number;
  readonly msPerBatchP50: number;
}

export interface OnnxBenchResult {
  readonly results: readonly OnnxBatchResult[];
  readonly conditions: { readonly model: string; readonly inputs: string; readonly intraOpNumThreads: 1; readonly candidates: number };
}

interface InputMeta { readonly name: string; readonly type: string; readonly shape: ReadonlyArray<number | string> }

function inputMetadata(session: ort.InferenceSession): InputMeta[] {
  const meta = (session as unknown as { inputMetadata?: ReadonlyArray<{ name: string; isTensor: boolean; type?: string; shape?: ReadonlyArray<number | string> }> }).inputMetadata;
  if (!meta) throw new Error('this onnxruntime-node does not expose inputMetadata; need >= 1.21');
  return meta.map((m) => ({ name: m.name, type: m.type ?? 'float32', shape: m.shape ?? [] }));
}

function makeFeeds(inputs: readonly InputMeta[], batch: number, rng: SeededRng): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of inputs) {
    const dims = m.shape.map((d, i) => (i === 0 ? batch : typeof d === 'number' && d > 0 ? d : 1));
    const size = dims.reduce((a, b) => a * b, 1);
    if (m.type === 'int64') feeds[m.name] = new ort.Tensor('int64', BigInt64Array.from({ length: size }, () => BigInt(rng.int(1000))), dims);
    else feeds[m.name] = new ort.Tensor('float32', Float32Array.from({ length: size }, () => rng.next()), dims);
  }
  return feeds;
}

export async function benchOnnxRanker(opts: OnnxBenchOptions): Promise<OnnxBenchResult> {
  const session = await ort.InferenceSession.create(opts.modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const inputs = inputMetadata(session);
  const rng = new SeededRng(3);
  const total = opts.candidates ?? 50_000;
  const results: OnnxBatchResult[] = [];
  try {
    for (const batch of opts.batches ?? [1, 64, 512]) {
      const feeds = makeFeeds(inputs, batch, rng);
      for (let i = 0; i < 3; i++) await session.run(feeds); // warm-up
      const runs = Math.max(1, Math.ceil(total / batch));
      const times = new Float64Array(runs);
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await session.run(feeds);
        times[i] = performance.now() - t0;
      }
      const cpuS = cpuSecondsSince(cpu0);
      times.sort();
      results.push({ batch, candidatesPerSecondPerCore: (runs * batch) / Math.max(cpuS, 1e-9), msPerBatchP50: times[Math.floor(runs / 2)] ?? 0 });
    }
  } finally {
    await session.release();
  }
  return {
    results,
    conditions: { model: opts.modelPath, inputs: inputs.map((m) => `${m.name}:${m.type}[${m.shape.join(',')}]`).join(' '), intraOpNumThreads: 1, candidates: total },
  };
}

export function printOnnx(r: OnnxBenchResult): void {
  printTable('ONNX Runtime ranker (CPU)', ['batch', 'candidates/s/core', 'ms/batch p50'], r.results.map((x) => [x.batch, x.candidatesPerSecondPerCore, x.msPerBatchP50]), r.conditions);
}
