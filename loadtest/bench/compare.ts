/**
 * Two `reports/bench.json` files side by side: their figures with the change, and the conditions
 * in which they differ. Per-core figures move by 2× between CPUs that report the same model name
 * (docs/capacity.md "Waiting for a core, and which CPU"), so the comparison names every condition
 * that differs and warns when the machine, the corpus, the model, the faiss build, OMP_NUM_THREADS
 * or profiling does, when a run does not record its CPU exactly, and when a run met the SLO at no
 * step: the figures of such a pair measure the difference in conditions as much as in code.
 *
 * Pure: reads nothing, prints nothing (loadtest/bench-compare.ts is the command).
 */
import path from 'node:path';
import type { BenchReport } from './ceiling-ratio.js';
import { STAGE_JSON_NAMES } from './ceiling-ratio.js';
import { SERVER_STAGES, STAGE_LABELS } from '../measure/outcome.js';

/** One figure of both runs. */
export interface ComparedFigure {
  readonly figure: string;
  readonly a: number | null;
  readonly b: number | null;
  /** b / a for rates, b − a for milliseconds and recall; null when either is missing. */
  readonly change: number | null;
  readonly changeKind: 'ratio' | 'difference';
}

/**
 * One setting whose value differs between the runs: values as JSON text, '—' when a run lacks it,
 * 'recorded' for a whole part (an object of settings) only one run has. `detail` lists what a list
 * (e.g. the CPU's SIMD flags) has that the other's lacks, since long lists do not fit a cell.
 */
export interface DifferingCondition {
  readonly key: string;
  readonly a: string;
  readonly b: string;
  readonly detail?: string;
}

/** What {@link compareBenchReports} found: the figures, the settings that differ, and why to doubt the pair. */
export interface BenchComparison {
  readonly figures: readonly ComparedFigure[];
  readonly differing: readonly DifferingCondition[];
  /** One line per reason the figures are hard to compare. */
  readonly warnings: readonly string[];
}

/**
 * Conditions that are a run's outcome or circumstance, not a setting (its measurements, load
 * averages, process ids, durations, the chosen step, explanatory text): left out of the differing
 * list. What stays is what was set: machine, corpus, model, config, the load, SLO, mix and
 * generator, the ceiling's request count, corpus and indexes, the parts' own settings.
 */
const PER_RUN: readonly RegExp[] = [
  /^(load_average_at_start|load_average_at_end|wall_s|per_core)$/,
  /^end_to_end\.(steps|chosen|chosen_offered_per_s|slo_met|load_average_after|entry_processes)$/,
  /^end_to_end\.ramp_window_monotonic_us\./,
  /^end_to_end\.[a-z_]+_means$/,
  /^end_to_end\.cluster\.(pids|startMs)/,
  /^end_to_end_profile(\.|$)/,
  /^ceiling\.(cpuSeconds|wallSeconds|qpsPerCore|p50Ms|p99Ms|outcomes|stagesMs|startup_ms|shards_from)/,
  // The component parts' measurements (their settings, e.g. faiss.k or grpc.channels, stay).
  /^faiss\.(build_ms|exactMsPerQuery|nprobe_sweep|p50Ms|p99Ms|qpsPerCore|recallAtK|shardSearchesPerCore|shards|recall_model_queries)/,
  /^faiss_calibration_queries\.recall_at_100$/,
  /^faiss_synthetic\.(results|conditions\.exactMsPerQuery)/,
  /^(grpc|nats|ranker|worker_hop)\.results$/,
];

/** Settings whose difference makes per-core figures of two runs measure different things. */
const WARN_GROUPS: readonly { readonly group: string; readonly what: string }[] = [
  { group: 'machine', what: 'the machine (CPU, SIMD, cores, memory or Node)' },
  { group: 'corpus', what: 'the corpus' },
  { group: 'model', what: 'the model' },
  { group: 'faiss_build', what: 'the faiss build' },
  { group: 'omp_num_threads', what: 'OMP_NUM_THREADS' },
  { group: 'end_to_end_profiled', what: 'profiling (node --cpu-prof roughly doubles the nodes\' CPU)' },
];

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Leaves of `v` as dotted keys → JSON text. Arrays are leaves (a list of SIMD flags or factories
 * compares as a whole). A model or world directory compares by its last segment: the same version
 * in two checkouts is the same model.
 */
export function flattenConditions(v: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (isObject(v)) {
    for (const [k, child] of Object.entries(v)) flattenConditions(child, prefix === '' ? k : `${prefix}.${k}`, out);
    return out;
  }
  const leaf = (prefix.endsWith('.dir') || prefix.endsWith('.world')) && typeof v === 'string' ? path.basename(v) : v;
  out.set(prefix, JSON.stringify(leaf) ?? 'undefined');
  return out;
}

/** For two JSON lists of scalars, what each has that the other lacks; undefined otherwise. */
function listDetail(a: string, b: string): string | undefined {
  let la: unknown;
  let lb: unknown;
  try {
    la = JSON.parse(a);
    lb = JSON.parse(b);
  } catch {
    return undefined;
  }
  if (!Array.isArray(la) || !Array.isArray(lb)) return undefined;
  const sa = new Set(la.map((x) => JSON.stringify(x)));
  const sb = new Set(lb.map((x) => JSON.stringify(x)));
  const onlyA = [...sa].filter((x) => !sb.has(x));
  const onlyB = [...sb].filter((x) => !sa.has(x));
  return `only in a: ${onlyA.join(', ') || 'none'}; only in b: ${onlyB.join(', ') || 'none'}`;
}

/** `conditions.end_to_end.<key>` of a report, when it is a number. */
function endToEndNumber(r: BenchReport, key: string): number | undefined {
  const e = r.conditions['end_to_end'];
  const v = isObject(e) ? e[key] : undefined;
  return typeof v === 'number' ? v : undefined;
}

function figures(a: BenchReport, b: BenchReport): ComparedFigure[] {
  const rate = (figure: string, x: number | null | undefined, y: number | null | undefined): ComparedFigure => ({
    figure, a: x ?? null, b: y ?? null, change: x != null && y != null && x !== 0 ? y / x : null, changeKind: 'ratio',
  });
  const diff = (figure: string, x: number | null | undefined, y: number | null | undefined): ComparedFigure => ({
    figure, a: x ?? null, b: y ?? null, change: x != null && y != null ? y - x : null, changeKind: 'difference',
  });
  const rows: ComparedFigure[] = [
    rate('end to end QPS per server core', a.end_to_end.qps_per_core, b.end_to_end.qps_per_core),
    diff('end to end step quoted, offered req/s', endToEndNumber(a, 'chosen_offered_per_s'), endToEndNumber(b, 'chosen_offered_per_s')),
    diff('end to end p50 ms', a.end_to_end.p50_ms, b.end_to_end.p50_ms),
    diff('end to end p99 ms', a.end_to_end.p99_ms, b.end_to_end.p99_ms),
    diff('busiest thread CPU ms per request', a.end_to_end.busiest_thread?.ms_per_request, b.end_to_end.busiest_thread?.ms_per_request),
    rate('in-process ceiling QPS per core', a.ceiling.qps_per_core, b.ceiling.qps_per_core),
    rate('ceiling ratio', a.ceiling_ratio, b.ceiling_ratio),
    rate('ranker candidates/s per core, batch 1', a.ranker.candidates_per_s_per_core_batch1, b.ranker.candidates_per_s_per_core_batch1),
    rate('ranker candidates/s per core, batch 512', a.ranker.candidates_per_s_per_core_batch512, b.ranker.candidates_per_s_per_core_batch512),
    rate('faiss queries per core', a.faiss.qps_per_core, b.faiss.qps_per_core),
    diff('recall@100, uniform users', a.faiss.recall_at_100, b.faiss.recall_at_100),
    diff("recall@100, the model's queries", a.faiss.recall_at_100_model_queries, b.faiss.recall_at_100_model_queries),
  ];
  // Reports written before the stage medians existed lack the fields: unmeasured.
  for (const stage of SERVER_STAGES) {
    const name = STAGE_JSON_NAMES[stage];
    rows.push(diff(`cluster ${STAGE_LABELS[stage]} p50 ms`, a.end_to_end.stages_p50_ms?.[name], b.end_to_end.stages_p50_ms?.[name]));
  }
  for (const stage of SERVER_STAGES) {
    const name = STAGE_JSON_NAMES[stage];
    rows.push(diff(`ceiling ${STAGE_LABELS[stage]} p50 ms`, a.ceiling.stages_p50_ms?.[name], b.ceiling.stages_p50_ms?.[name]));
  }
  return rows;
}

function warningsFor(a: BenchReport, b: BenchReport, differing: readonly DifferingCondition[], ca: ReadonlyMap<string, string>, cb: ReadonlyMap<string, string>): string[] {
  const inGroup = (key: string, group: string) => key === group || key.startsWith(`${group}.`);
  const out = WARN_GROUPS.filter((g) => differing.some((d) => inGroup(d.key, g.group))).map(
    (g) => `the runs differ in ${g.what}, or only one records it: their figures compare the conditions as much as the code`,
  );
  // The model name alone does not tell two CPUs apart (the dev box changed CPU under one name).
  const unrecorded = (['a', 'b'] as const).filter((n) => !(n === 'a' ? ca : cb).has('machine.cpu_family_model_stepping'));
  if (unrecorded.length > 0) {
    const who = unrecorded.length === 2 ? 'neither run records' : `run ${unrecorded[0]} does not record`;
    out.push(`${who} the CPU's family/model/stepping: a CPU of the same model name may be another one`);
  }
  for (const [n, r] of [['a', a], ['b', b]] as const) {
    const e = r.conditions['end_to_end'];
    if (isObject(e) && e['slo_met'] === false) out.push(`run ${n} met the SLO at no step: its end-to-end figures are those of its lowest-p99 step`);
  }
  return out;
}

/** Compares run `a` (the baseline) with run `b`. Throws a TypeError naming the run that is not a bench report. */
export function compareBenchReports(a: BenchReport, b: BenchReport): BenchComparison {
  for (const [name, r] of [['a', a], ['b', b]] as const) {
    if (!isObject(r) || !isObject(r.end_to_end) || !isObject(r.ceiling) || !isObject(r.conditions)) {
      throw new TypeError(`report ${name} is not a reports/bench.json (needs end_to_end, ceiling and conditions)`);
    }
  }
  const ca = flattenConditions(a.conditions);
  const cb = flattenConditions(b.conditions);
  const differing: DifferingCondition[] = [];
  // A part (faiss, grpc, the ceiling...) that only one run measured is one row, not one per setting.
  const oneSided = new Set(
    [...new Set([...Object.keys(a.conditions), ...Object.keys(b.conditions)])].filter(
      (g) => (g in a.conditions) !== (g in b.conditions) && isObject(a.conditions[g] ?? b.conditions[g]) && !PER_RUN.some((re) => re.test(g)),
    ),
  );
  for (const g of oneSided) differing.push({ key: g, a: g in a.conditions ? 'recorded' : '—', b: g in b.conditions ? 'recorded' : '—' });
  for (const key of [...new Set([...ca.keys(), ...cb.keys()])]) {
    if (oneSided.has(key.split('.')[0]!) || PER_RUN.some((re) => re.test(key))) continue;
    const va = ca.get(key) ?? '—';
    const vb = cb.get(key) ?? '—';
    if (va === vb) continue;
    const detail = listDetail(va, vb);
    differing.push({ key, a: va, b: vb, ...(detail !== undefined ? { detail } : {}) });
  }
  differing.sort((x, y) => x.key.localeCompare(y.key));
  return { figures: figures(a, b), differing, warnings: warningsFor(a, b, differing, ca, cb) };
}
