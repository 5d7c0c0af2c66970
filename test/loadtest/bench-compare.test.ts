import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { benchReport } from '../../loadtest/bench/ceiling-ratio.js';
import type { BenchParts } from '../../loadtest/bench/ceiling-ratio.js';
import { compareBenchReports, flattenConditions } from '../../loadtest/bench/compare.js';
import { REPO_ROOT } from '../../loadtest/paths.js';

const machine = { host_cpus: 2, cpu_model: 'AMD EPYC', cpu_family_model_stepping: '25/1/1', cpu_simd: ['avx2', 'fma'], node: 'v20.20.2' };
const stages = { admission: 0, userState: 1, retrieval: 3, ranking: 2, policy: 0.1, total: 6.2 };

function run(parts: Partial<BenchParts>, conditions: Record<string, unknown>) {
  return benchReport({ conditions, ...parts });
}

const base = {
  machine,
  faiss_build: 'avx2',
  corpus: { world: '/a/data/worlds/w1', videos: 1_000_000 },
  model: { dir: '/a/models/m1' },
  config: { cluster: { nodes: 1, itemShards: 2 }, index: { recallTarget: 0.95 } },
  load_average_at_start: [1, 1, 1],
  ceiling: { requests: 2800, qpsPerCore: 150, items: 1_000_000 },
};

t.test('figures of both runs with their change: ratio for rates, difference for ms', async (t) => {
  const a = run({ endToEnd: { qpsPerCore: 100, p50Ms: 10, p99Ms: 40, items: 1e6, stagesP50Ms: stages }, ceilingQpsPerCore: 200 }, base);
  const b = run({ endToEnd: { qpsPerCore: 125, p50Ms: 8, p99Ms: 45, items: 1e6, stagesP50Ms: { ...stages, retrieval: 2.5 } }, ceilingQpsPerCore: 200 }, base);
  const c = compareBenchReports(a, b);
  const fig = (name: string) => c.figures.find((f) => f.figure === name);
  t.same(fig('end to end QPS per server core'), { figure: 'end to end QPS per server core', a: 100, b: 125, change: 1.25, changeKind: 'ratio' });
  t.equal(fig('end to end p50 ms')?.change, -2, 'ms: b − a');
  t.equal(fig('ceiling ratio')?.change, 1.25);
  t.equal(fig('cluster retrieval p50 ms')?.change, -0.5, 'stage medians compared');
  t.equal(fig('faiss queries per core')?.change, null, 'unmeasured in both: no change');
  t.same(c.differing, [], 'same settings: nothing differs (load averages and the ceiling\'s own figures are not settings)');
  t.same(c.warnings, []);
});

t.test('every differing setting is named, and a different machine, corpus or model is warned about', async (t) => {
  const a = run({}, base);
  const b = run({}, {
    ...base,
    machine: { ...machine, cpu_simd: ['avx2', 'fma', 'avx512f'] },
    model: { dir: '/b/other-checkout/models/m1' },
    config: { cluster: { nodes: 3, itemShards: 2 }, index: { recallTarget: 0.95 } },
    load_average_at_start: [5, 5, 5],
    ceiling: { requests: 300, qpsPerCore: 99, items: 1_000_000 },
    faiss: { k: 100, qpsPerCore: 500 },
  });
  const c = compareBenchReports(a, b);
  t.same(c.differing.map((d) => d.key), ['ceiling.requests', 'config.cluster.nodes', 'faiss', 'machine.cpu_simd'], 'settings only: load averages and the ceiling\'s QPS are not listed');
  t.same(c.differing.find((d) => d.key === 'faiss'), { key: 'faiss', a: '—', b: 'recorded' }, 'a part only one run measured is one row');
  t.equal(c.differing.find((d) => d.key === 'machine.cpu_simd')?.detail, 'only in a: none; only in b: "avx512f"', 'a list says what differs in it');
  t.equal(c.warnings.length, 1, 'the model is the same version in another checkout: no warning for it');
  t.match(c.warnings[0], /machine/);
  const corpus = compareBenchReports(a, run({}, { ...base, corpus: { world: '/a/data/worlds/w2', videos: 10_000_000 } }));
  t.match(corpus.warnings.join('\n'), /corpus/);
});

t.test('warnings: an unrecorded CPU, a run that met the SLO at no step, profiling, a setting only one run records', async (t) => {
  const { cpu_family_model_stepping: _stepping, ...oldMachine } = machine;
  const c = compareBenchReports(run({}, { ...base, machine: oldMachine }), run({}, { ...base, end_to_end: { slo_met: false, chosen_offered_per_s: 25 }, end_to_end_profiled: 'yes' }));
  t.match(c.warnings.join('\n'), /run a does not record the CPU's family\/model\/stepping/);
  t.match(c.warnings.join('\n'), /run b met the SLO at no step/);
  t.match(c.warnings.join('\n'), /profiling/);
  t.same(c.differing.find((d) => d.key === 'end_to_end_profiled'), { key: 'end_to_end_profiled', a: '—', b: '"yes"' }, 'a one-sided scalar shows its value');
  t.equal(c.figures.find((f) => f.figure === 'end to end step quoted, offered req/s')?.b, 25, 'the quoted step is a figure, not a setting');
  t.notOk(c.differing.some((d) => d.key.startsWith('end_to_end.')), 'the chosen step and SLO outcome are not listed as settings');
  const { faiss_build: _b, ...noBuild } = base;
  t.match(compareBenchReports(run({}, noBuild), run({}, base)).warnings.join('\n'), /faiss build/, 'a scalar group only one run records is warned about');
});

t.test('a report written before the stage medians existed compares, with those figures unmeasured', async (t) => {
  const withStages = run({ endToEnd: { qpsPerCore: 100, p50Ms: 10, p99Ms: 40, items: 1e6, stagesP50Ms: stages }, ceilingQpsPerCore: 200 }, base);
  const old = JSON.parse(JSON.stringify(withStages)) as { end_to_end: Record<string, unknown>; ceiling: Record<string, unknown> };
  delete old.end_to_end['stages_p50_ms'];
  delete old.ceiling['stages_p50_ms'];
  const c = compareBenchReports(old as never, withStages);
  t.same(c.figures.find((f) => f.figure === 'cluster retrieval p50 ms'), { figure: 'cluster retrieval p50 ms', a: null, b: 3, change: null, changeKind: 'difference' });
  t.equal(c.figures.find((f) => f.figure === 'end to end QPS per server core')?.change, 1);
});

t.test('flattening: dotted leaves, arrays whole, directories by their last segment', async (t) => {
  const f = flattenConditions({ a: { b: 1, c: [1, 2] }, model: { dir: '/x/y/m1' }, s: 'z' });
  t.same(Object.fromEntries(f), { 'a.b': '1', 'a.c': '[1,2]', 'model.dir': '"m1"', s: '"z"' });
});

t.test('a file that is not a bench report is refused with a clear message', async (t) => {
  t.throws(() => compareBenchReports({} as never, run({}, base)), /report a is not a reports\/bench\.json/);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-compare-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const good = path.join(dir, 'a.json');
  const bad = path.join(dir, 'b.json');
  await writeFile(good, JSON.stringify(run({ ceilingQpsPerCore: 100 }, base)));
  await writeFile(bad, '{ not json');
  const cli = path.join(REPO_ROOT, 'dist', 'loadtest', 'bench-compare.js');
  const ok = await promisify(execFile)(process.execPath, [cli, good, good]);
  t.match(ok.stdout, /in-process ceiling QPS per core\s+100\.0\s+100\.0\s+×1\.000/);
  t.match(ok.stdout, /settings: the same in both runs/);
  const err = await promisify(execFile)(process.execPath, [cli, good, bad]).then(
    () => undefined,
    (e: { code?: number; stderr?: string }) => e,
  );
  t.equal(err?.code, 2, 'exit status 2');
  t.match(err?.stderr ?? '', new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not JSON`));
});
