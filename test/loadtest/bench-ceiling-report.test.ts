// `make bench` end to end on the tiny assets, as a child process: every part runs (a real local
// cluster under the load generator, recall on the real vectors, the in-process ceiling, the
// component benches) and reports/bench.json carries every key the issue asks for. Nothing here
// asserts a speed: the SLO bound is set so high that any answer meets it.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureTinyAssets } from '../fixtures/assets.js';

const assets = await ensureTinyAssets();
const dir = await mkdtemp(path.join(tmpdir(), 'upnext-bench-report-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const BENCH = fileURLToPath(new URL('../../loadtest/bench.js', import.meta.url));

t.test('bench.json has every required key, with numbers where the run measured them', async (t) => {
  const out = path.join(dir, 'bench.json');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      BENCH, '--world', assets.worldDir, '--models', assets.modelDir, '--quick',
      '--rates', '10,10,10', '--step-s', '2', '--p99', '60000', '--ceiling-requests', '60', '--recall-queries', '20',
      '--run-dir', path.join(dir, 'cluster'), '--out', out, '--only', 'e2e,recall,ceiling,onnx,nats,grpc',
    ],
    { timeout: 240_000, maxBuffer: 16 * 2 ** 20 },
  );
  t.match(stdout, /In-process ceiling/, 'ceiling table printed');
  t.match(stdout, /End to end/, 'end-to-end table printed');
  t.match(stdout, /ceiling ratio = /);
  const r = JSON.parse(await readFile(out, 'utf8')) as Record<string, Record<string, unknown>>;
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;
  for (const k of ['qps_per_core', 'p50_ms', 'p99_ms', 'items', 'recall_at_100'] as const) t.ok(num(r.end_to_end?.[k]), `end_to_end.${k} = ${String(r.end_to_end?.[k])}`);
  t.equal(r.end_to_end?.items, 2000, 'items = the corpus size');
  const bt = r.end_to_end?.busiest_thread as unknown as { process: string; thread: string; ms_per_request: number; utilisation: number } | null;
  t.ok(bt && /^n\d+$/.test(bt.process) && bt.thread !== '' && num(bt.ms_per_request) && bt.utilisation > 0, `end_to_end.busiest_thread = ${JSON.stringify(bt)}`);
  t.match(stdout, /busiest thread ms\/req/, 'end-to-end table has the busiest-thread column');
  t.ok(num(r.ceiling?.qps_per_core), 'ceiling.qps_per_core');
  t.ok(num(r.ceiling_ratio), 'ceiling_ratio');
  const e2e = r.end_to_end!.qps_per_core as number;
  const ceiling = r.ceiling!.qps_per_core as number;
  t.ok(Math.abs((r.ceiling_ratio as unknown as number) - e2e / ceiling) < 1e-9, 'ratio = end-to-end / ceiling');
  t.ok(num(r.ranker?.candidates_per_s_per_core_batch1) && num(r.ranker?.candidates_per_s_per_core_batch512), 'ranker batch 1 and 512');
  t.ok(num(r.faiss?.qps_per_core), 'faiss.qps_per_core');
  t.equal(r.faiss?.recall_at_100, 1, 'exact (Flat) shards of the tiny world: recall 1');
  t.equal(r.end_to_end?.recall_at_100, r.faiss?.recall_at_100);
  t.equal(r.faiss?.recall_at_100_model_queries, 1, "and on the model's own retrieval queries (the trained fixture ships them)");
  for (const k of ['machine', 'corpus', 'model', 'config', 'end_to_end', 'ceiling', 'faiss', 'ranker', 'nats', 'grpc', 'load_average_at_start']) t.ok(r.conditions?.[k] !== undefined, `conditions.${k}`);
  // Stage medians of both sides, and the table comparing them.
  t.match(stdout, /Pipeline stages: the ceiling/, 'stage table printed');
  const stages = (side: string) => r[side]?.['stages_p50_ms'] as Record<string, number> | null | undefined;
  for (const side of ['end_to_end', 'ceiling']) {
    const m = stages(side);
    t.ok(m && num(m['retrieval']) && num(m['ranking']) && num(m['total']) && m['total']! >= m['retrieval']!, `${side}.stages_p50_ms = ${JSON.stringify(m)}`);
  }
  // What decides the quoted step is recorded, so bench-compare can show it.
  const e = r.conditions?.['end_to_end'] as { load?: { kind?: string; startRate?: number }; slo?: { p99Ms?: number }; warm_up_s?: number; chosen_offered_per_s?: number } | undefined;
  t.same([e?.load?.kind, e?.load?.startRate, e?.slo?.p99Ms, e?.warm_up_s], ['ramp', 10, 60000, 3], 'ramp, SLO and warm-up recorded');
  t.ok(num(e?.chosen_offered_per_s), 'the quoted step\'s offered rate');
});
