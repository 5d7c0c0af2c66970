/**
 * Counters and small latency histograms the coordinator keeps for stats() (the node's /metrics
 * renders them as Prometheus text). Fixed cumulative-friendly buckets: cheap to update on the hot
 * path, directly usable as a Prometheus histogram.
 */
import type { LocalFirstRankerStats } from '../ranker/local-first.js';
import type { PredictionDriftSnapshot } from './drift.js';
import type { FeatureLogStats } from './feature-log.js';
import type { LocalPathStats } from './local-ports.js';
import type { RecommendOutcome } from './types.js';

/** Bucket upper bounds in milliseconds (the last bucket is +Inf). */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000,
]);

/** A snapshot of one histogram: `counts[i]` observations ≤ `bucketsMs[i]`, non-cumulative; the last is +Inf. */
export interface HistogramSnapshot {
  readonly bucketsMs: readonly number[];
  /** length bucketsMs.length + 1 (the +Inf bucket last). */
  readonly counts: readonly number[];
  readonly count: number;
  /** Sum of observations, ms. */
  readonly sumMs: number;
  /** Estimated quantiles from the buckets (upper bound of the bucket holding the quantile), ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** A fixed-bucket latency histogram. */
export class LatencyHistogram {
  readonly #counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  #count = 0;
  #sum = 0;

  record(ms: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    this.#counts[i]!++;
    this.#count++;
    this.#sum += ms;
  }

  #quantile(q: number): number {
    if (this.#count === 0) return 0;
    const target = q * this.#count;
    let acc = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      acc += this.#counts[i]!;
      if (acc >= target) return LATENCY_BUCKETS_MS[i] ?? Infinity;
    }
    return Infinity;
  }

  snapshot(): HistogramSnapshot {
    return {
      bucketsMs: LATENCY_BUCKETS_MS,
      counts: [...this.#counts],
      count: this.#count,
      sumMs: this.#sum,
      p50Ms: this.#quantile(0.5),
      p99Ms: this.#quantile(0.99),
    };
  }
}

/** The pipeline stages that have a histogram. */
export const STAGES = ['admission', 'userState', 'retrieval', 'ranking', 'policy', 'total'] as const;
export type Stage = (typeof STAGES)[number];

/** What the pipeline counts (one instance per coordinator). */
export class PipelineCounters {
  readonly outcomes: Record<RecommendOutcome, number> = { ok: 0, degraded: 0, fallback: 0, shed: 0 };
  /** Requests rejected by validation or authentication (never reached the pipeline). */
  rejected = 0;
  /** Stage-level degradations by kind. */
  readonly degradations = { userState: 0, shardMiss: 0, rankingSkipped: 0, trending: 0, filledFromPopular: 0, spaceMismatch: 0 };
  readonly latency: Record<Stage, LatencyHistogram> = {
    admission: new LatencyHistogram(),
    userState: new LatencyHistogram(),
    retrieval: new LatencyHistogram(),
    ranking: new LatencyHistogram(),
    policy: new LatencyHistogram(),
    total: new LatencyHistogram(),
  };
  /** Sum of coverage over requests that ran retrieval, and how many did. */
  coverageSum = 0;
  coverageCount = 0;
  /** Coverage of the latest request that ran retrieval. */
  lastCoverage = 1;
  /** Sampled requests whose feature-log record could not be built (a bug; the answer was unaffected). */
  featureLogFailures = 0;
  /** Feature completeness of ranked requests (see {@link FeatureCompletenessStats}). */
  readonly completeness = { userSum: 0, requests: 0, userStateMissing: 0, itemSum: 0, items: 0 };

  /**
   * One ranked request: the user's completeness as user state reported it (`undefined` when user
   * state did not answer: the request ran with a new user's defaults, counted as 0), and the sum
   * of its candidates' item completeness over `items` candidates.
   */
  recordCompleteness(user: number | undefined, itemSum: number, items: number): void {
    const c = this.completeness;
    c.requests++;
    if (user === undefined) c.userStateMissing++;
    else c.userSum += user;
    c.itemSum += itemSum;
    c.items += items;
  }

  recordCoverage(c: number): void {
    this.coverageSum += c;
    this.coverageCount++;
    this.lastCoverage = c;
  }
}

/**
 * How much real data the ranked requests' features carried (DESIGN §7, feature completeness).
 * Sums and counts are monotonic (Prometheus: rate(user_sum) / rate(requests) is the mean over a
 * window); the means are over the coordinator's lifetime.
 */
export interface FeatureCompletenessStats {
  /** Requests that reached ranking with at least one candidate. */
  readonly requests: number;
  /** Sum over those of the user's completeness (core/features/user.ts userFeatureCompleteness; 0 when user state was missing). */
  readonly userSum: number;
  /** Of those, requests ranked without user state (defaults of a new user). */
  readonly userStateMissing: number;
  /** Candidates ranked, and the sum of their completeness (core/features/item.ts itemFeatureCompleteness). */
  readonly items: number;
  readonly itemSum: number;
  /** userSum / requests and itemSum / items (1 when none yet). */
  readonly userMean: number;
  readonly itemMean: number;
}

/** {@link FeatureCompletenessStats} from the counters. */
export function completenessStats(c: PipelineCounters['completeness']): FeatureCompletenessStats {
  return {
    ...c,
    userMean: c.requests > 0 ? c.userSum / c.requests : 1,
    itemMean: c.items > 0 ? c.itemSum / c.items : 1,
  };
}

/** Plain-data counters of one coordinator. */
export interface CoordinatorStats {
  readonly requests: Readonly<Record<RecommendOutcome, number>> & { readonly rejected: number };
  readonly degradations: Readonly<PipelineCounters['degradations']>;
  readonly latencyMs: Readonly<Record<Stage, HistogramSnapshot>>;
  /** Mean coverage over requests that ran retrieval (1 when none did yet). */
  readonly meanCoverage: number;
  readonly lastCoverage: number;
  /** Feature completeness of ranked requests. */
  readonly featureCompleteness: FeatureCompletenessStats;
  readonly admission: {
    readonly inFlight: number;
    readonly queued: number;
    readonly shedOverload: number;
    readonly shedQueueTimeout: number;
  };
  readonly events: { readonly accepted: number; readonly duplicates: number; readonly failedCalls: number };
  readonly itemShards: number;
  readonly modelVersion: string;
  /** The default PopularCache's counters (absent when a popular source was injected). */
  readonly popularCache?: { readonly entries: number; readonly fetches: number; readonly failures: number };
  /** Which ranking path answered (present when the coordinator runs with a node-local ranker). */
  readonly rankerPaths?: LocalFirstRankerStats;
  /** Which path answered item-shard searches and user-state reads, when local-first is on (local-ports.ts). */
  readonly localPaths?: { readonly itemShards?: LocalPathStats; readonly userState?: LocalPathStats };
  /** The feature log's counters (feature-log.ts; present when it runs), plus records that failed to build. */
  readonly featureLog?: FeatureLogStats & { readonly buildFailures: number };
  /**
   * Prediction drift over `coordinator.drift.windowMs` (drift.ts; present when drift.sampleRate > 0),
   * and whether stream events reach the monitor at all (false: the figures cannot fill).
   */
  readonly predictionDrift?: PredictionDriftSnapshot & { readonly eventsSource: boolean };
}
