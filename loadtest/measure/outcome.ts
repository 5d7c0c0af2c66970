/**
 * How one Recommend answer is counted. `ranked` is the normal answer; `degraded` says a stage
 * missed its budget (response.degraded non-empty) but the answer is still personalised;
 * `fallback` means at least one item came from the popular list (the node shed load or a stage
 * failed); an error carries its gRPC status code.
 */
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
}

export function classify(result: CallResult<RecommendResponseMessage>): ClassifiedOutcome {
  if (!result.ok) return { outcome: 'error', code: result.code, coverage: undefined };
  const res = result.value;
  // proto-loader presents enums as names; a server sending a numeric enum is handled too.
  const fallback = res.items.some((i) => i.source === 'FALLBACK' || (i.source as unknown) === 4);
  if (fallback) return { outcome: 'fallback', code: 0, coverage: res.coverage };
  if (res.degraded.length > 0) return { outcome: 'degraded', code: 0, coverage: res.coverage };
  return { outcome: 'ranked', code: 0, coverage: res.coverage };
}

/** Histogram key: "ranked", "degraded", "fallback" or "error:UNAVAILABLE". */
export function outcomeKey(o: ClassifiedOutcome): string {
  return o.outcome === 'error' ? `error:${StatusCode[o.code] ?? o.code}` : o.outcome;
}
