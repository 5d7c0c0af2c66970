/**
 * `make bench` entry: component benchmarks (faiss, ONNX ranker, NATS request/reply, gRPC unary),
 * each printed as a table with its conditions, and reports/bench.json. The end-to-end figure and
 * the in-process ceiling come from the cluster's own bench (not yet written); until then they are
 * null in bench.json, with the reason in conditions.
 *
 * Flags: --n <vectors> (default 200000), --queries <n>, --recall <target> (0.95), --spread <s> (0.15), --skip-hnsw,
 * --ranker <path to ranker.onnx> (default: newest models/<version>/ranker.onnx), --only faiss,onnx,nats,grpc,
 * --out <file> (default reports/bench.json), --quick (small sizes for a smoke run).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchReport, writeBenchReport } from './bench/ceiling-ratio.js';
import type { BenchParts } from './bench/ceiling-ratio.js';
import { REPO_ROOT } from './paths.js';

// faiss links OpenMP, which reads OMP_NUM_THREADS once, when the library loads: set it before the
// faiss bench module is imported, so "per core" means one thread.
process.env['OMP_NUM_THREADS'] ??= '1';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function newestRanker(): string | undefined {
  const dir = path.join(REPO_ROOT, 'models');
  if (!existsSync(dir)) return undefined;
  const found = readdirSync(dir)
    .map((v) => path.join(dir, v, 'ranker.onnx'))
    .filter((f) => existsSync(f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return found[0];
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const only = new Set((flag('--only') ?? 'faiss,onnx,nats,grpc').split(','));
  const out = path.resolve(flag('--out') ?? path.join(REPO_ROOT, 'reports', 'bench.json'));
  const conditions: Record<string, unknown> = {
    host_cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? 'unknown', node: process.version, omp_num_threads: process.env['OMP_NUM_THREADS'],
    end_to_end: 'not measured here: needs the cluster bench (cluster/local) — null until it exists',
  };
  let faiss: BenchParts['faiss'];
  let ranker: BenchParts['ranker'];
  if (only.has('faiss')) {
    const { benchFaiss, printFaiss } = await import('./bench/faiss-bench.js');
    const r = benchFaiss({
      n: Number(flag('--n') ?? (quick ? 20_000 : 200_000)), queries: Number(flag('--queries') ?? (quick ? 200 : 500)),
      targetRecall: Number(flag('--recall') ?? 0.95), skipHnsw: process.argv.includes('--skip-hnsw'),
      ...(flag('--spread') !== undefined ? { spread: Number(flag('--spread')) } : {}),
    });
    printFaiss(r);
    // The planning figure is the cheapest index that met the recall target.
    const best = [...r.results].filter((x) => x.metTarget).sort((a, b) => b.qpsPerCore - a.qpsPerCore)[0];
    if (best) faiss = { qpsPerCore: best.qpsPerCore, recallAt100: best.recallAtK };
    conditions['faiss'] = { ...r.conditions, chosen: best ? `${best.index} ${best.setting}` : 'none met the recall target' };
  }
  if (only.has('onnx')) {
    const model = flag('--ranker') ?? newestRanker();
    if (model) {
      const { benchOnnxRanker, printOnnx } = await import('./bench/onnx-bench.js');
      const r = await benchOnnxRanker({ modelPath: model, candidates: quick ? 5_000 : 50_000 });
      printOnnx(r);
      ranker = {
        ...((v) => (v === undefined ? {} : { batch1: v }))(r.results.find((x) => x.batch === 1)?.candidatesPerSecondPerCore),
        ...((v) => (v === undefined ? {} : { batch512: v }))(r.results.find((x) => x.batch === 512)?.candidatesPerSecondPerCore),
      };
      conditions['ranker'] = r.conditions;
    } else {
      process.stdout.write('\nONNX ranker: skipped (no models/<version>/ranker.onnx; pass --ranker <path>)\n');
      conditions['ranker'] = 'skipped: no ranker.onnx found';
    }
  }
  if (only.has('nats')) {
    const { benchNats, printNats } = await import('./bench/nats-bench.js');
    const r = await benchNats({ requests: quick ? 2_000 : 20_000 });
    printNats(r);
    conditions['nats'] = { ...r.conditions, results: r.results };
  }
  if (only.has('grpc')) {
    const { benchGrpc, printGrpc } = await import('./bench/grpc-bench.js');
    const r = await benchGrpc({ calls: quick ? 2_000 : 20_000 });
    printGrpc(r);
    conditions['grpc'] = { ...r.conditions, results: r.results };
  }
  const file = await writeBenchReport(benchReport({ ...(faiss ? { faiss } : {}), ...(ranker ? { ranker } : {}), conditions }), out);
  process.stdout.write(`\nwrote ${file}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
