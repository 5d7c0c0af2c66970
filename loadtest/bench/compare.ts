/**
 * Two `reports/bench.json` files side by side: their figures with the change, and the conditions
 * in which they differ. Per-core figures move by 2× between CPUs that report the same model name
 * (docs/capacity.md "Waiting for a core, and which CPU"), so the comparison names every condition
 * that differs and warns when the machine, the corpus, the model or the faiss build does: the
 * figures of such a pair measure the difference in conditions as much as in code.
 *
 * Pure: reads nothing, prints nothing (loadtest/bench-compare.ts is the command).
 */
import path from 'node:path';
import type { BenchReport, StagesJson } from './ceiling-ratio.js';

/** One figure of both runs. */
export interface ComparedFigure {
  readonly figure: string;
  readonly a: number | null;
  readonly b: number | null;
  /** b / a for rates and ratios, b − a for milliseconds; null when either is missing. */
  readonly change: number | null;
  readonly changeKind: 'ratio' | 'difference';
}

/** One condition whose value differs between the runs (values as JSON text; '—' when absent). */
export interface DifferingCondition {
  readonly key: string;
  readonly a: string;
  readonly b: string;
}

export interface BenchComparison {
  readonly figures: readonly ComparedFigure[];
  readonly differing: readonly DifferingCondition[];
  /** One line per group of conditions that makes the figures hard to compare. */
  readonly warnings: readonly string[];
}

/**
 * Conditions that are a run's outcome or circumstance, not a setting (its measurements, load
 * averages, process ids, durations, the chosen step, explanatory text): left out of the differing
 * list. What stays is what was set: machine, corpus, model, config, the load mix and generator,
 * the ceiling's corpus and indexes.
 */
const PER_RUN: readonly RegExp[] = [
  /^(load_average_at_start|load_average_at_end|wall_s|per_core)$/,
  /^end_to_end\.(steps|chosen|slo_met|load_average_after|entry_processes)$/,
  /^end_to_end\.ramp_window_monotonic_us\./,
  /^end_to_end\.[a-z_]+_means$/,
  /^end_to_end\.cluster\.(pids|startMs)/,
  /^end_to_end_profile\./,
  /^ceiling\.(requests|cpuSeconds|wallSeconds|qpsPerCore|p50Ms|p99Ms|outcomes|stagesMs|startup_ms|shards_from)/,
  // The component parts' measurements (their settings, e.g. faiss.k or grpc.channels, stay).
  /^faiss\.(build_ms|exactMsPerQuery|nprobe_sweep|p50Ms|p99Ms|qpsPerCore|recallAtK|shardSearchesPerCore|shards|recall_model_queries)/,
  /^(grpc|nats|ranker|worker_hop)\.results$/,
];

/** Groups whose difference makes per-core figures of two runs measure different things. */
const WARN_GROUPS: readonly { readonly prefix: string; readonly what: string }[] = [
  { prefix: 'machine.', what: 'the machine (CPU, SIMD, cores, memory or Node)' },
  { prefix: 'corpus.', what: 'the corpus' },
  { prefix: 'model.', what: 'the model' },
  { prefix: 'faiss_build', what: 'the faiss build' },
  { prefix: 'omp_num_threads', what: 'OMP_NUM_THREADS' },
];

type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

/**
 * Leaves of `v` as dotted keys → JSON text. Arrays are leaves (a list of SIMD flags or factories
 * compares as a whole). A model or world directory compares by its last segment: the same version
 * in two checkouts is the same model.
 */
export function flattenConditions(v: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) flattenConditions(child, prefix === '' ? k : `${prefix}.${k}`, out);
    return out;
  }
  const leaf = (prefix.endsWith('.dir') || prefix.endsWith('.world')) && typeof v === 'string' ? path.basename(v) : (v as Json);
  out.set(prefix, JSON.stringify(leaf) ?? 'undefined');
  return out;
}

const STAGE_KEYS: readonly (keyof StagesJson)[] = ['user_state', 'retrieval', 'ranking', 'policy', 'total'];

function figures(a: BenchReport, b: BenchReport): ComparedFigure[] {
  const rate = (figure: string, x: number | null | undefined, y: number | null | undefined): ComparedFigure => ({
    figure, a: x ?? null, b: y ?? null, change: x != null && y != null && x !== 0 ? y / x : null, changeKind: 'ratio',
  });
  const ms = (figure: string, x: number | null | undefined, y: number | null | undefined): ComparedFigure => ({
    figure, a: x ?? null, b: y ?? null, change: x != null && y != null ? y - x : null, changeKind: 'difference',
  });
  const rows: ComparedFigure[] = [
    rate('end to end QPS per server core', a.end_to_end.qps_per_core, b.end_to_end.qps_per_core),
    ms('end to end p50 ms', a.end_to_end.p50_ms, b.end_to_end.p50_ms),
    ms('end to end p99 ms', a.end_to_end.p99_ms, b.end_to_end.p99_ms),
    ms('busiest thread CPU ms per request', a.end_to_end.busiest_thread?.ms_per_request, b.end_to_end.busiest_thread?.ms_per_request),
    rate('in-process ceiling QPS per core', a.ceiling.qps_per_core, b.ceiling.qps_per_core),
    rate('ceiling ratio', a.ceiling_ratio, b.ceiling_ratio),
    rate('ranker candidates/s per core, batch 1', a.ranker.candidates_per_s_per_core_batch1, b.ranker.candidates_per_s_per_core_batch1),
    rate('ranker candidates/s per core, batch 512', a.ranker.candidates_per_s_per_core_batch512, b.ranker.candidates_per_s_per_core_batch512),
    rate('faiss queries per core', a.faiss.qps_per_core, b.faiss.qps_per_core),
    rate('recall@100, uniform users', a.faiss.recall_at_100, b.faiss.recall_at_100),
    rate("recall@100, the model's queries", a.faiss.recall_at_100_model_queries, b.faiss.recall_at_100_model_queries),
  ];
  // Reports written before the stage medians existed lack the fields: read them as unmeasured.
  const cluster = (r: BenchReport) => (r.end_to_end as Partial<BenchReport['end_to_end']>).stages_p50_ms ?? null;
  const ceiling = (r: BenchReport) => (r.ceiling as Partial<BenchReport['ceiling']>).stages_p50_ms ?? null;
  for (const stage of STAGE_KEYS) rows.push(ms(`cluster ${stage.replace('_', ' ')} p50 ms`, cluster(a)?.[stage], cluster(b)?.[stage]));
  for (const stage of STAGE_KEYS) rows.push(ms(`ceiling ${stage.replace('_', ' ')} p50 ms`, ceiling(a)?.[stage], ceiling(b)?.[stage]));
  return rows;
}

/** Compares run `a` (the baseline) with run `b`. */
export function compareBenchReports(a: BenchReport, b: BenchReport): BenchComparison {
  for (const [name, r] of [['a', a], ['b', b]] as const) {
    if (r === null || typeof r !== 'object' || typeof r.end_to_end !== 'object' || typeof r.ceiling !== 'object' || typeof r.conditions !== 'object') {
      throw new TypeError(`report ${name} is not a reports/bench.json (needs end_to_end, ceiling and conditions)`);
    }
  }
  const ca = flattenConditions(a.conditions);
  const cb = flattenConditions(b.conditions);
  const differing: DifferingCondition[] = [];
  // A part (faiss, grpc, the ceiling...) that only one run measured is one row, not one per setting.
  const groupsA = new Set(Object.keys(a.conditions));
  const groupsB = new Set(Object.keys(b.conditions));
  const oneSided = new Set([...groupsA, ...groupsB].filter((g) => groupsA.has(g) !== groupsB.has(g) && !PER_RUN.some((re) => re.test(g))));
  for (const g of oneSided) differing.push({ key: g, a: groupsA.has(g) ? 'recorded' : '—', b: groupsB.has(g) ? 'recorded' : '—' });
  for (const key of [...new Set([...ca.keys(), ...cb.keys()])].sort()) {
    if (oneSided.has(key.split('.')[0]!) || PER_RUN.some((re) => re.test(key))) continue;
    const va = ca.get(key) ?? '—';
    const vb = cb.get(key) ?? '—';
    if (va !== vb) differing.push({ key, a: va, b: vb });
  }
  const warnings = WARN_GROUPS.filter((g) => differing.some((d) => d.key.startsWith(g.prefix))).map(
    (g) => `the runs differ in ${g.what}, or only one records it: their figures compare the conditions as much as the code`,
  );
  differing.sort((x, y) => x.key.localeCompare(y.key));
  return { figures: figures(a, b), differing, warnings };
}
