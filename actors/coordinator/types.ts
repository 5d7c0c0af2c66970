/**
 * Domain types of the Recommend answer, shared by the pipeline, the policy and the gRPC server.
 * They mirror `upnext.v1.RecommendResponse` (protos/upnext/v1/recommender.proto).
 */

/** Where an item in the answer came from; numbers match `upnext.v1.Source`. */
export enum Source {
  /** Two-tower retrieval from the item shards. */
  RETRIEVAL = 1,
  /** A trending / fresh candidate that ranked into the list on its own merit. */
  TRENDING = 2,
  /** An exploration slot: a pick from outside the top ranks (epsilon-greedy). */
  EXPLORATION = 3,
  /** The popular list, served because a stage failed, the node shed load, or to fill up to k. */
  FALLBACK = 4,
}

export interface RecommendedItem {
  readonly videoId: number;
  /** The list score: non-increasing down the list (see policy.ts for how moves are scored). */
  readonly score: number;
  /** Calibrated P(click); the item's prior CTR when ranking was skipped. */
  readonly pClick: number;
  /** E[watch time] in seconds; a prior when ranking was skipped. */
  readonly expectedWatchSeconds: number;
  readonly source: Source;
  /** Item shard that returned it (for other sources: the shard that owns it). */
  readonly shard: number;
}

/** Per-stage wall time of one request, in milliseconds. */
export interface StageTimings {
  admissionMs: number;
  userStateMs: number;
  retrievalMs: number;
  rankingMs: number;
  policyMs: number;
  totalMs: number;
}

/** What the pipeline answers; the server turns it into a `RecommendResponse`. */
export interface RecommendResult {
  readonly items: readonly RecommendedItem[];
  /** Item shards answered / shards asked, 0..1 (0 when retrieval did not run). */
  readonly coverage: number;
  /** Why the answer is degraded (empty when it is not), e.g. "shard 2 timed out". */
  readonly degraded: readonly string[];
  readonly modelVersion: string;
  readonly requestId: string;
  /** Set when the request asked for debug. */
  readonly timings?: StageTimings;
  /** How the request ended, for counters. */
  readonly outcome: RecommendOutcome;
}

/**
 * `ok`: full pipeline, nothing degraded; `degraded`: the pipeline answered with a degraded stage;
 * `fallback`: the popular list replaced the pipeline's answer (a failure); `shed`: admission control
 * refused it and served the popular list.
 */
export type RecommendOutcome = 'ok' | 'degraded' | 'fallback' | 'shed';
