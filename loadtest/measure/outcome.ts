/**
 * How one Recommend answer is counted. `ranked` is the normal answer; `degraded` says a stage
 * missed its budget (response.degraded non-empty) but the answer is still personalised;
 * `fallback` means at least one item came from the popular list (the node shed load or a stage
 * failed); an error carries its gRPC status code.
 */
import { STAGES } from '../../actors/coordinator/stats.js';
import type { Stage } from '../../actors/coordinator/stats.js';
import type { StageTimings } from '../../actors/coordinator/types.js';
import { StatusCode } from '../../core/status.js';
import type { CallResult, RecommendResponseMessage } from '../client/recommender-client.js';

export type Outcome = 'ranked' | 'degraded' | 'fallback' | 'error';

/** An outcome plus the error code when it is one (histograms are kept per error code). */
export interface ClassifiedOutcome {
  readonly outcome: Outcome;
  /** gRPC status code; 0 unless `outcome` is "error". */
  readonly code: number;
  /** response.coverage, or undefined for errors. */
  readonly coverage: number | undefined;
  /** The server's own timing of each pipeline stage, when the request asked for it (debug). */
  readonly stageMs?: ServerStageMs;
}

/**
 * The coordinator's pipeline stages (its own list, actors/coordinator/stats.ts), as
 * RecommendResponse.timings names them (DESIGN.md §4).
 * `total` runs from the request reaching the pipeline to its answer, so a client's latency less
 * `total` is time outside the pipeline: the generator's lag, gRPC and the network, and the node's
 * event loop before the handler ran.
 */
export const SERVER_STAGES = STAGES;
export type ServerStage = Stage;
export type ServerStageMs = Readonly<Record<ServerStage, number>>;

/** How tables and charts name each stage. */
export const STAGE_LABELS: Readonly<Record<ServerStage, string>> = {
  admission: 'admission', userState: 'user state', retrieval: 'retrieval', ranking: 'ranking', policy: 'policy', total: 'pipeline total',
};

/** A record with one value per stage, built by `f` (typed, no cast). */
export function mapStages<T>(f: (stage: ServerStage) => T): Record<ServerStage, T> {
  return { admission: f('admission'), userState: f('userState'), retrieval: f('retrieval'), ranking: f('ranking'), policy: f('policy'), total: f('total') };
}

/**
 * The pipeline stage (total left out) with the highest p99: where a run's slow answers waited.
 * Per-stage p99s do not add up to the total's; the largest says which stage holds the tail.
 */
export function slowestStage(stages: Readonly<Record<ServerStage, { readonly p99: number }>>): ServerStage {
  let worst: ServerStage = 'admission';
  for (const stage of SERVER_STAGES) {
    if (stage !== 'total' && stages[stage].p99 > stages[worst].p99) worst = stage;
  }
  return worst;
}

/** The coordinator's timings of one answer, by stage (what the recorder and the ceiling keep). */
export function stageMsOfTimings(t: Readonly<StageTimings>): ServerStageMs {
  return { admission: t.admissionMs, userState: t.userStateMs, retrieval: t.retrievalMs, ranking: t.rankingMs, policy: t.policyMs, total: t.totalMs };
}

function stageMsOf(res: RecommendResponseMessage): ServerStageMs | undefined {
  const t = res.timings;
  return t === undefined || t === null ? undefined : stageMsOfTimings(t);
}

export function classify(result: CallResult<RecommendResponseMessage>): ClassifiedOutcome {
  if (!result.ok) return { outcome: 'error', code: result.code, coverage: undefined };
  const res = result.value;
  const stageMs = stageMsOf(res);
  const timed = stageMs !== undefined ? { stageMs } : {};
  // proto-loader presents enums as names; a server sending a numeric enum is handled too.
  const fallback = res.items.some((i) => i.source === 'FALLBACK' || (i.source as unknown) === 4);
  if (fallback) return { outcome: 'fallback', code: 0, coverage: res.coverage, ...timed };
  if (res.degraded.length > 0) return { outcome: 'degraded', code: 0, coverage: res.coverage, ...timed };
  return { outcome: 'ranked', code: 0, coverage: res.coverage, ...timed };
}

/** Histogram key: "ranked", "degraded", "fallback" or "error:UNAVAILABLE". */
export function outcomeKey(o: ClassifiedOutcome): string {
  return o.outcome === 'error' ? `error:${StatusCode[o.code] ?? o.code}` : o.outcome;
}
