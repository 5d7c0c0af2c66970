/**
 * Ranking call cost by path, in one process: the coordinator's local-first path (the node's own
 * replica in-process: batcher + piscina worker, row buffer transferred; actors/ranker/local-first.ts)
 * against the KServe v2 gRPC path (RankerClient → grpc-js server → the same batcher and worker),
 * scoring `rows` × F float32 rows (550 × 80 ≈ 176 KB, one Recommend's ranking call) with 1 and 8
 * calls in flight (closed loop).
 *
 * CPU per call = CPU seconds of this process (every thread: main loop, piscina worker, ONNX
 * Runtime) / calls. On the gRPC path that covers both ends — the client's and the server's
 * protobuf, HTTP/2 and copies — as it would be split between a coordinator and a ranker node.
 * Each call gets a fresh copy of the row template (the pipeline writes fresh rows per request, and
 * the local path detaches the buffer it is given); that copy is in both paths' figures.
 *
 * With a GPU provider (`--provider webgpu`), the rows scored by the GPU replica are first compared
 * with a CPU replica's on the same template (max abs difference in the conditions).
 *
 * Run alone: `node dist/loadtest/bench/ranker-path.js [--models <models/version dir>] [--calls N]
 * [--rows N] [--workers N] [--max-delay-ms N] [--max-batch-rows N] [--concurrency 1,8,32]
 * [--provider auto|cpu|cuda|webgpu]`; default model: models/LATEST.
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SeededRng } from '../../core/clock.js';
import { Deadline } from '../../core/deadline.js';
import { RankerClient } from '../../actors/ranker/client.js';
import { LocalFirstRankerScorer } from '../../actors/ranker/local-first.js';
import type { LocalRanker } from '../../actors/ranker/local-first.js';
import type { ExecutionProviderChoice } from '../../actors/ranker/options.js';
import { DEFAULT_BATCHING } from '../../actors/ranker/options.js';
import { readRankerModel } from '../../actors/ranker/model-dir.js';
import { startRanker } from '../../actors/ranker/replica.js';
import { readLatestVersion } from '../../offline/onnx/load.js';
import { REPO_ROOT } from '../paths.js';
import { cpuSecondsSince, printTable } from './table.js';
import type { BenchRows } from './table.js';
import { quantileSorted } from '../measure/quantile.js';

/** Options for {@link benchRankerPaths}. */
export interface RankerPathBenchOptions {
  /** `models/<version>/` holding ranker.onnx and manifest.json. Required. */
  readonly modelDir: string;
  /** Measured calls per (path, in-flight level). Default 2,000. */
  readonly calls?: number;
  /** Rows per call. Default 550 (mergeLimit 500 + trending 50). */
  readonly rows?: number;
  /** In-flight levels. Default [1, 8]. */
  readonly concurrency?: readonly number[];
  /** Ranker worker threads. Default 1 (the node default). */
  readonly workers?: number;
  /** The replica's batching.maxDelayMs. Default the replica default (0 ms). */
  readonly maxDelayMs?: number;
  /** The replica's batching.maxBatchRows. Default the replica default (1024). */
  readonly maxBatchRows?: number;
  /** The replica's execution provider. Default 'auto'. */
  readonly executionProvider?: ExecutionProviderChoice;
}

export interface RankerPathResult {
  readonly path: 'local' | 'kserve-grpc';
  readonly inFlight: number;
  readonly callsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU of this process per call, ms (all threads; both gRPC ends on the gRPC path). */
  readonly cpuMsPerCall: number;
}

export type RankerPathBenchResult = BenchRows<RankerPathResult>;

type Score = (rows: Float32Array, nRows: number) => Promise<unknown>;

async function closedLoop(score: Score, template: Float32Array, nRows: number, calls: number, inFlight: number): Promise<{ lat: Float64Array; wallS: number; cpuS: number }> {
  const lat = new Float64Array(calls);
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < calls) {
      const i = next++;
      const rows = Float32Array.from(template);
      const s = performance.now();
      await score(rows, nRows);
      lat[i] = performance.now() - s;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { lat, wallS: (performance.now() - t0) / 1000, cpuS: cpuSecondsSince(cpu0) };
}

/** Largest |GPU − CPU| over both outputs for the same rows: the provider must not change the scores. */
async function maxDiffAgainstCpu(modelDir: string, gpu: LocalRanker, template: Float32Array, nRows: number): Promise<number> {
  const cpu = await startRanker({ modelDir, workers: 1, executionProvider: 'cpu' }, { log: () => undefined });
  try {
    const [a, b] = await Promise.all([gpu, cpu.local].map((r) => r.scoreOwned(Float32Array.from(template), nRows, Deadline.after(30_000))));
    if (a?.kind !== 'scored' || b?.kind !== 'scored') {
      throw new Error(`parity run failed: ${[a, b].map((x) => (x?.kind === 'failed' ? x.error.message : 'ok')).join(' / ')}`);
    }
    let max = 0;
    for (const key of ['pClick', 'watchLog1p'] as const) {
      for (let i = 0; i < nRows; i++) max = Math.max(max, Math.abs((a.outputs[key][i] ?? NaN) - (b.outputs[key][i] ?? NaN)));
    }
    return max;
  } finally {
    await cpu.stop();
  }
}

export async function benchRankerPaths(opts: RankerPathBenchOptions): Promise<RankerPathBenchResult> {
  const calls = opts.calls ?? 2000;
  const nRows = opts.rows ?? 550;
  const workers = opts.workers ?? 1;
  const loadAtStart = os.loadavg();
  const batching = { maxDelayMs: opts.maxDelayMs ?? DEFAULT_BATCHING.maxDelayMs, maxBatchRows: opts.maxBatchRows ?? DEFAULT_BATCHING.maxBatchRows };
  const ranker = await startRanker({ modelDir: opts.modelDir, workers, batching, executionProvider: opts.executionProvider ?? 'auto' }, { log: () => undefined });
  const client = new RankerClient({ addresses: () => [ranker.address] });
  // hasRemote false: the local-first scorer never leaves the local replica, so this measures its path.
  const local = new LocalFirstRankerScorer({ local: () => ranker.local, remote: client, hasRemote: () => false });
  const { width } = await readRankerModel(opts.modelDir);
  const rng = new SeededRng(5);
  const template = Float32Array.from({ length: nRows * width }, () => rng.next());
  const parity = ranker.executionProvider === 'cpu' ? undefined : await maxDiffAgainstCpu(opts.modelDir, ranker.local, template, nRows);
  const paths: { name: RankerPathResult['path']; score: Score }[] = [
    { name: 'kserve-grpc', score: (rows, n) => client.score(rows, n, Deadline.after(10_000)) },
    { name: 'local', score: (rows, n) => local.score(rows, n, Deadline.after(10_000)) },
  ];
  const results: RankerPathResult[] = [];
  try {
    for (const p of paths) await closedLoop(p.score, template, nRows, 200, 4); // warm-up: JIT, channels, arenas
    for (const inFlight of opts.concurrency ?? [1, 8]) {
      for (const p of paths) {
        const { lat, wallS, cpuS } = await closedLoop(p.score, template, nRows, calls, inFlight);
        lat.sort();
        results.push({ path: p.name, inFlight, callsPerSecond: calls / wallS, p50Ms: quantileSorted(lat, 0.5), p99Ms: quantileSorted(lat, 0.99), cpuMsPerCall: (cpuS * 1000) / calls });
      }
    }
  } finally {
    client.close();
  }
  const pool = ranker.stats().pool;
  const batcher = ranker.stats().batcher;
  await ranker.stop();
  const round = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100).join('/');
  return {
    results,
    conditions: {
      model: opts.modelDir,
      rows: `${nRows}x${width} float32 (${Math.round((nRows * width * 4) / 1024)} KiB)`,
      calls,
      workers,
      execution_provider: ranker.executionProvider,
      ...(parity !== undefined ? { max_abs_diff_vs_cpu: parity } : {}),
      max_delay_ms: batching.maxDelayMs,
      max_batch_rows: batching.maxBatchRows,
      onnx_run_ms_mean: Math.round((pool.runMsTotal / Math.max(1, pool.runs)) * 1000) / 1000,
      rows_per_batch_mean: Math.round(batcher.batchedRows / Math.max(1, batcher.batches)),
      load_average_start: round(loadAtStart),
      load_average_end: round(os.loadavg()),
      cpus: os.cpus().length,
    },
  };
}

export function printRankerPaths(r: RankerPathBenchResult): void {
  printTable(
    'Ranking call by path (one process)',
    ['path', 'in flight', 'calls/s', 'p50 ms', 'p99 ms', 'CPU ms/call'],
    r.results.map((x) => [x.path, x.inFlight, x.callsPerSecond, x.p50Ms, x.p99Ms, x.cpuMsPerCall]),
    r.conditions,
  );
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const modelsDir = path.join(REPO_ROOT, 'models');
  const modelDir = path.resolve(flag('--models') ?? path.join(modelsDir, await readLatestVersion(modelsDir)));
  const r = await benchRankerPaths({
    modelDir,
    ...(flag('--calls') !== undefined ? { calls: Number(flag('--calls')) } : {}),
    ...(flag('--rows') !== undefined ? { rows: Number(flag('--rows')) } : {}),
    ...(flag('--workers') !== undefined ? { workers: Number(flag('--workers')) } : {}),
    ...(flag('--max-delay-ms') !== undefined ? { maxDelayMs: Number(flag('--max-delay-ms')) } : {}),
    ...(flag('--max-batch-rows') !== undefined ? { maxBatchRows: Number(flag('--max-batch-rows')) } : {}),
    ...(flag('--concurrency') !== undefined ? { concurrency: (flag('--concurrency') ?? '').split(',').map(Number) } : {}),
    ...(flag('--provider') !== undefined ? { executionProvider: flag('--provider') as ExecutionProviderChoice } : {}),
  });
  printRankerPaths(r);
}
