/**
 * The end-to-end ceiling ratio and the `reports/bench.json` writer. The ceiling is the QPS per core
 * of the Recommend pipeline run in-process with no transports (what the same code could do with
 * zero network and serialisation cost); the ratio end-to-end / ceiling says how much of the CPU
 * the distributed system spends on being distributed. 1.0 would be free distribution.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SERVER_STAGES } from '../measure/outcome.js';
import type { ServerStage } from '../measure/outcome.js';

/** end_to_end.qps_per_core / ceiling.qps_per_core; undefined when either is missing or ≤ 0. */
export function ceilingRatio(endToEndQpsPerCore: number | undefined, ceilingQpsPerCore: number | undefined): number | undefined {
  if (endToEndQpsPerCore === undefined || ceilingQpsPerCore === undefined) return undefined;
  if (!(endToEndQpsPerCore > 0) || !(ceilingQpsPerCore > 0)) return undefined;
  return endToEndQpsPerCore / ceilingQpsPerCore;
}

/** QPS per core from a throughput and the CPU seconds spent over a wall time. */
export function qpsPerCore(requests: number, cpuSeconds: number): number | undefined {
  return cpuSeconds > 0 ? requests / cpuSeconds : undefined;
}

/** The shape of reports/bench.json; `null` marks a figure not measured in this run. */
export interface BenchReport {
  readonly end_to_end: {
    readonly qps_per_core: number | null;
    readonly p50_ms: number | null;
    readonly p99_ms: number | null;
    readonly items: number | null;
    readonly recall_at_100: number | null;
    /**
     * The busiest node-process thread in the chosen step: CPU ms of it per answered request and
     * its share of a core; null when not measured.
     */
    readonly busiest_thread: { readonly process: string; readonly thread: string; readonly ms_per_request: number | null; readonly utilisation: number } | null;
    /**
     * The coordinators' own median of each pipeline stage in the chosen step, ms; null when not
     * measured; absent in reports written before 2026-11-27.
     */
    readonly stages_p50_ms?: StagesJson | null;
  };
  /** `stages_p50_ms`: the same stages' medians in the in-process pipeline, ms (compare with end_to_end's). */
  readonly ceiling: { readonly qps_per_core: number | null; readonly stages_p50_ms?: StagesJson | null };
  readonly ceiling_ratio: number | null;
  readonly ranker: { readonly candidates_per_s_per_core_batch1: number | null; readonly candidates_per_s_per_core_batch512: number | null };
  /**
   * `recall_at_100`: on uniformly drawn users at hour 20 (every round's figure);
   * `recall_at_100_model_queries`: on the model's own retrieval queries (test-day requests, weighted
   * as traffic), which the shards calibrate nprobe on; null when the model ships none.
   */
  readonly faiss: { readonly qps_per_core: number | null; readonly recall_at_100: number | null; readonly recall_at_100_model_queries: number | null };
  readonly conditions: Readonly<Record<string, unknown>>;
}

/** Each pipeline stage's key in bench.json (snake case, as the report's other keys). */
export const STAGE_JSON_NAMES = {
  admission: 'admission', userState: 'user_state', retrieval: 'retrieval', ranking: 'ranking', policy: 'policy', total: 'total',
} as const satisfies Record<ServerStage, string>;

/** Pipeline stages by their bench.json names, ms. */
export type StagesJson = { readonly [S in ServerStage as (typeof STAGE_JSON_NAMES)[S]]: number };

function stagesJson(m: Readonly<Record<ServerStage, number>> | undefined): StagesJson | null {
  if (m === undefined) return null;
  const out: Partial<Record<(typeof STAGE_JSON_NAMES)[ServerStage], number>> = {};
  for (const stage of SERVER_STAGES) out[STAGE_JSON_NAMES[stage]] = m[stage];
  return out as StagesJson;
}

/** Parts a bench run may have measured. */
export interface BenchParts {
  readonly endToEnd?: {
    readonly qpsPerCore: number; readonly p50Ms: number; readonly p99Ms: number; readonly items: number; readonly recallAt100?: number;
    readonly busiestThread?: { readonly process: string; readonly thread: string; readonly msPerRequest: number | undefined; readonly utilisation: number };
    /** The coordinators' median per stage in the chosen step (EndToEndStep.serverStagesMs p50). */
    readonly stagesP50Ms?: Readonly<Record<ServerStage, number>>;
  };
  readonly ceilingQpsPerCore?: number;
  /** The in-process pipeline's median per stage (CeilingResult.stagesMs p50). */
  readonly ceilingStagesP50Ms?: Readonly<Record<ServerStage, number>>;
  readonly ranker?: { readonly batch1?: number; readonly batch512?: number };
  readonly faiss?: { readonly qpsPerCore: number; readonly recallAt100: number; readonly recallAt100ModelQueries?: number };
  readonly conditions: Readonly<Record<string, unknown>>;
}

const nul = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v);

/** Assembles the report object from whatever parts were measured. */
export function benchReport(p: BenchParts): BenchReport {
  return {
    end_to_end: {
      qps_per_core: nul(p.endToEnd?.qpsPerCore),
      p50_ms: nul(p.endToEnd?.p50Ms),
      p99_ms: nul(p.endToEnd?.p99Ms),
      items: nul(p.endToEnd?.items),
      recall_at_100: nul(p.endToEnd?.recallAt100),
      busiest_thread: ((b) => (b ? { process: b.process, thread: b.thread, ms_per_request: nul(b.msPerRequest), utilisation: b.utilisation } : null))(p.endToEnd?.busiestThread),
      stages_p50_ms: stagesJson(p.endToEnd?.stagesP50Ms),
    },
    ceiling: { qps_per_core: nul(p.ceilingQpsPerCore), stages_p50_ms: stagesJson(p.ceilingStagesP50Ms) },
    ceiling_ratio: nul(ceilingRatio(p.endToEnd?.qpsPerCore, p.ceilingQpsPerCore)),
    ranker: { candidates_per_s_per_core_batch1: nul(p.ranker?.batch1), candidates_per_s_per_core_batch512: nul(p.ranker?.batch512) },
    faiss: { qps_per_core: nul(p.faiss?.qpsPerCore), recall_at_100: nul(p.faiss?.recallAt100), recall_at_100_model_queries: nul(p.faiss?.recallAt100ModelQueries) },
    conditions: p.conditions,
  };
}

/** Writes the report as pretty JSON (creating the folder); returns the path. */
export async function writeBenchReport(report: BenchReport, file: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}
