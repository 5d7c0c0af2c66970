/**
 * The coordinator's knobs: defaults, then validation (a TypeError naming the bad option), then a
 * resolved, fully-populated type. cluster/config.ts composes {@link CoordinatorConfig} into the one
 * node/cluster config; nothing here reads the environment.
 */
import { validateEventMaxAgeMs } from '../event-stream/stream.js';
import { LOCAL_OVERLOADED_AT } from './local-ports.js';

/**
 * Objective blend of one product surface: utility = click·P(click) + watch·f(E[watch]) +
 * completion·E[watch]/duration.
 */
export interface SurfaceWeights {
  /** Weight of the calibrated P(click), in [0, ∞). */
  readonly click: number;
  /** Weight of the normalised expected watch time f(E[watch]) (see policy.ts), in [0, ∞). */
  readonly watch: number;
  /** Weight of the expected share watched, E[watch]/duration capped at 1 (policy.ts completionValue), in [0, ∞). Default 0. */
  readonly completion: number;
}

/** Surface weights as a caller writes them (completion optional). */
export type SurfaceWeightsInput = Omit<SurfaceWeights, 'completion'> & { readonly completion?: number };

/** Per-stage budgets of the Recommend pipeline (DESIGN.md §4), in milliseconds. */
export interface StageBudgets {
  /**
   * User-state lookup (one NATS request). Default 20 ms: DESIGN.md budgets 5 ms at fleet P99; the
   * default leaves room for GC pauses and CPU contention of several nodes on one small machine.
   */
  readonly userStateMs: number;
  /** Scatter/gather over every item shard, plus trending candidates. Default 30 ms. */
  readonly retrievalMs: number;
  /** One batched call to a ranker replica. Default 40 ms. */
  readonly rankingMs: number;
  /** Policy (blend, exploration, diversity). Pure CPU, measured, never pre-empted. Default 2 ms. */
  readonly policyMs: number;
  /** How long a fallback answer may wait for the popular list (cold cache only). Default 20 ms. */
  readonly fallbackMs: number;
}

/** Exploration slots (epsilon-greedy, deterministic per request). */
export interface ExplorationConfig {
  /** Probability that an eligible slot is an exploration slot, in [0, 1]. Default 0.05. */
  readonly epsilon: number;
  /** Leading slots never used for exploration (the top slot stays exploitative). Default 1. */
  readonly protectedTopSlots: number;
}

/** Diversity of the head of the list. */
export interface DiversityConfig {
  /** Head of the list where the per-category cap applies, in slots. Default 10. */
  readonly window: number;
  /** At most this many items of one category inside the window (when candidates allow). Default 3. */
  readonly maxPerCategory: number;
}

/**
 * Admission control: at most `maxConcurrent` requests run the pipeline; up to `maxQueue` more wait
 * (FIFO, at most `maxQueueWaitMs`); the rest are served the cached popular list at once.
 */
export interface AdmissionConfig {
  /** Requests in the pipeline at once. Default 256. */
  readonly maxConcurrent: number;
  /** Requests waiting for a slot; 0 = no queue. Default 256. */
  readonly maxQueue: number;
  /** Longest wait for a slot before the request is shed, in ms. Default 20 ms. */
  readonly maxQueueWaitMs: number;
}

/**
 * Feature logging (DESIGN §5): a sample of the ranker rows served, published to the cluster's
 * feature-log stream for training joins and skew measurement (feature-log.ts).
 */
export interface FeatureLogConfig {
  /** Share of ranked requests whose served rows are logged, in [0, 1]; 0 = off. Default 0.01. */
  readonly sampleRate: number;
  /** Retention of the feature-log stream, ms (JetStream max_age); 0 = unlimited. Default 2 days. */
  readonly maxAgeMs: number;
  /** Size cap of the stream, bytes; the oldest samples are dropped first. Default 1 GiB. */
  readonly maxBytes: number;
}

/**
 * Prediction drift (DESIGN §7): mean predicted CTR of the served, ranked items against the CTR the
 * clients then log, for a sample of requests (drift.ts).
 */
export interface PredictionDriftConfig {
  /** Share of requests tracked, sampled by request id (the feature log's hash), in [0, 1]; 0 = off. Default 0.05. */
  readonly sampleRate: number;
  /** Most requests remembered for the join; beyond it new sampled requests go untracked (counted). Default 20000. */
  readonly maxTracked: number;
  /** Events for a request served longer ago than this are not joined, ms. Default 600000 (10 min). */
  readonly joinWindowMs: number;
  /** Sliding window the figures cover, ms, kept in 15 buckets of windowMs/15. Default 900000 (15 min). */
  readonly windowMs: number;
  /** The alert fires when |drift of the top slots| exceeds this share. Default 0.10 (±10%). */
  readonly alertAbove: number;
  /** Matched top-slot impressions in the window below which the alert stays off. Default 1000. */
  readonly minImpressions: number;
  /**
   * Slots 0..topPositions-1 form the "top" figures the alert reads: the ranker scores every item at
   * the feature spec's inferencePosition (0), so only the first slots are judged against the position
   * the prediction assumed (drift.ts explains and measures why). Default 3.
   */
  readonly topPositions: number;
}

/** Optional caller authentication on the public RPC. */
export interface AuthConfig {
  /** When set, every call needs metadata `authorization: Bearer <token>`. Default unset. */
  readonly token?: string | undefined;
}

/** Everything a caller may set; every field optional (see {@link DEFAULT_COORDINATOR_CONFIG}). */
export interface CoordinatorConfig {
  /** Overall deadline when the client sets none, in ms. Default 150 ms. */
  readonly defaultDeadlineMs?: number;
  /** Per-stage budgets, in ms. */
  readonly budgets?: Partial<StageBudgets>;
  /** Candidates asked from each item shard (k'). Default 200. */
  readonly perShardK?: number;
  /** Candidates kept after merging the shards' lists (~500). Default 500. */
  readonly mergeLimit?: number;
  /** Trending candidates added to the pool for exploration / cold start. Default 50. */
  readonly trendingCandidates?: number;
  /** Objective weights per surface; unknown surfaces use `default`. */
  readonly surfaces?: Readonly<Record<string, SurfaceWeightsInput>>;
  /**
   * Expected watch time that maps to f = 1 in the blend, in seconds: f(w) = min(1, log1p(w) /
   * log1p(watchNormS)). Default 600 s.
   */
  readonly watchNormS?: number;
  readonly exploration?: Partial<ExplorationConfig>;
  readonly diversity?: Partial<DiversityConfig>;
  readonly admission?: Partial<AdmissionConfig>;
  readonly auth?: AuthConfig;
  /** Largest request message accepted by the public server, in bytes. Default 4 MiB. */
  readonly maxReceiveMessageBytes?: number;
  /** Timeout of one JetStream publish ack in LogEvents, in ms. Default 5000 ms. */
  readonly publishAckTimeoutMs?: number;
  readonly featureLog?: Partial<FeatureLogConfig>;
  readonly drift?: Partial<PredictionDriftConfig>;
  /**
   * Requests already queued on the node's own item shard or user partition from which a call goes
   * over NATS instead (to a twin replica, or the same actor). Default {@link LOCAL_OVERLOADED_AT}.
   */
  readonly localOverloadedAt?: number;
}

/** The validated config every part of the coordinator reads. */
export interface ResolvedCoordinatorConfig {
  readonly defaultDeadlineMs: number;
  readonly budgets: StageBudgets;
  readonly perShardK: number;
  readonly mergeLimit: number;
  readonly trendingCandidates: number;
  readonly surfaces: Readonly<Record<string, SurfaceWeights>> & { readonly default: SurfaceWeights };
  readonly watchNormS: number;
  readonly exploration: ExplorationConfig;
  readonly diversity: DiversityConfig;
  readonly admission: AdmissionConfig;
  readonly auth: AuthConfig;
  readonly maxReceiveMessageBytes: number;
  readonly publishAckTimeoutMs: number;
  readonly featureLog: FeatureLogConfig;
  readonly drift: PredictionDriftConfig;
  readonly localOverloadedAt: number;
}

/**
 * Defaults. Surface weights lean on watch time (the north star) while keeping P(click) in the blend;
 * `up_next` leans further on watch because the user is already watching.
 */
export const DEFAULT_COORDINATOR_CONFIG: ResolvedCoordinatorConfig = Object.freeze({
  defaultDeadlineMs: 150,
  budgets: Object.freeze({ userStateMs: 20, retrievalMs: 30, rankingMs: 40, policyMs: 2, fallbackMs: 20 }),
  perShardK: 200,
  mergeLimit: 500,
  trendingCandidates: 50,
  surfaces: Object.freeze({
    default: Object.freeze({ click: 0.5, watch: 0.5, completion: 0 }),
    home: Object.freeze({ click: 0.6, watch: 0.4, completion: 0 }),
    up_next: Object.freeze({ click: 0.3, watch: 0.7, completion: 0 }),
  }),
  watchNormS: 600,
  exploration: Object.freeze({ epsilon: 0.05, protectedTopSlots: 1 }),
  diversity: Object.freeze({ window: 10, maxPerCategory: 3 }),
  admission: Object.freeze({ maxConcurrent: 256, maxQueue: 256, maxQueueWaitMs: 20 }),
  auth: Object.freeze({}),
  maxReceiveMessageBytes: 4 * 1024 * 1024,
  publishAckTimeoutMs: 5000,
  // 1% of 50k QPS × ~20 served rows × 80 floats ≈ 3 MB/s fleet-wide: enough for skew and joins.
  featureLog: Object.freeze({ sampleRate: 0.01, maxAgeMs: 2 * 24 * 3_600_000, maxBytes: 1024 ** 3 }),
  // 5% of one coordinator's requests: at 10 QPS that is ~1,350 top-slot impressions per 15 min,
  // enough for minImpressions; 20k requests cover 10 min of joins up to ~33 sampled requests/s.
  drift: Object.freeze({ sampleRate: 0.05, maxTracked: 20_000, joinWindowMs: 600_000, windowMs: 900_000, alertAbove: 0.1, minImpressions: 1000, topPositions: 3 }),
  localOverloadedAt: LOCAL_OVERLOADED_AT,
});

function positiveNumber(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new TypeError(`coordinator option ${name} must be a positive finite number, got ${String(v)}`);
  }
  return v;
}

function nonNegativeNumber(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new TypeError(`coordinator option ${name} must be a non-negative finite number, got ${String(v)}`);
  }
  return v;
}

function positiveInt(name: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new TypeError(`coordinator option ${name} must be an integer in 1..${max}, got ${String(v)}`);
  }
  return v;
}

function nonNegativeInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new TypeError(`coordinator option ${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

function weights(name: string, w: unknown): SurfaceWeights {
  if (typeof w !== 'object' || w === null) throw new TypeError(`coordinator option ${name} must be {click, watch}`);
  const { click, watch, completion } = w as { click?: unknown; watch?: unknown; completion?: unknown };
  const c = nonNegativeNumber(`${name}.click`, click);
  const wt = nonNegativeNumber(`${name}.watch`, watch);
  const cp = nonNegativeNumber(`${name}.completion`, completion ?? 0);
  if (c + wt + cp === 0) throw new TypeError(`coordinator option ${name} must have click + watch + completion > 0`);
  return Object.freeze({ click: c, watch: wt, completion: cp });
}

/** Merges `config` over the defaults and validates every knob (TypeError naming the option). */
export function resolveCoordinatorConfig(config: CoordinatorConfig = {}): ResolvedCoordinatorConfig {
  const d = DEFAULT_COORDINATOR_CONFIG;
  const b = { ...d.budgets, ...config.budgets };
  const budgets: StageBudgets = Object.freeze({
    userStateMs: positiveNumber('budgets.userStateMs', b.userStateMs),
    retrievalMs: positiveNumber('budgets.retrievalMs', b.retrievalMs),
    rankingMs: positiveNumber('budgets.rankingMs', b.rankingMs),
    policyMs: positiveNumber('budgets.policyMs', b.policyMs),
    fallbackMs: positiveNumber('budgets.fallbackMs', b.fallbackMs),
  });
  // A surface the defaults know merges over its default weights, so `--set
  // coordinator.surfaces.home.completion=1` changes one weight; a new surface needs click and watch.
  const surfacesIn: Record<string, unknown> = { ...d.surfaces };
  for (const [name, w] of Object.entries(config.surfaces ?? {})) {
    const base = Object.hasOwn(d.surfaces, name) ? d.surfaces[name] : undefined;
    surfacesIn[name] = base !== undefined && typeof w === 'object' && w !== null ? { ...base, ...w } : w;
  }
  const surfaces: Record<string, SurfaceWeights> = {};
  for (const [name, w] of Object.entries(surfacesIn)) surfaces[name] = weights(`surfaces.${name}`, w);
  const e = { ...d.exploration, ...config.exploration };
  const epsilon = share('exploration.epsilon', e.epsilon);
  const dv = { ...d.diversity, ...config.diversity };
  const a = { ...d.admission, ...config.admission };
  const token = config.auth?.token;
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw new TypeError('coordinator option auth.token must be a non-empty string when set');
  }
  const perShardK = positiveInt('perShardK', config.perShardK ?? d.perShardK, 2000);
  const fl = { ...d.featureLog, ...config.featureLog };
  const sampleRate = share('featureLog.sampleRate', fl.sampleRate);
  const maxAgeMs = validateEventMaxAgeMs('coordinator option featureLog.maxAgeMs', fl.maxAgeMs);
  const drift = resolveDriftConfig({ ...d.drift, ...config.drift });
  return Object.freeze({
    defaultDeadlineMs: positiveNumber('defaultDeadlineMs', config.defaultDeadlineMs ?? d.defaultDeadlineMs),
    budgets,
    perShardK,
    mergeLimit: positiveInt('mergeLimit', config.mergeLimit ?? d.mergeLimit, 100_000),
    trendingCandidates: nonNegativeInt('trendingCandidates', config.trendingCandidates ?? d.trendingCandidates),
    surfaces: Object.freeze(surfaces) as ResolvedCoordinatorConfig['surfaces'],
    watchNormS: positiveNumber('watchNormS', config.watchNormS ?? d.watchNormS),
    exploration: Object.freeze({
      epsilon,
      protectedTopSlots: nonNegativeInt('exploration.protectedTopSlots', e.protectedTopSlots),
    }),
    diversity: Object.freeze({
      window: nonNegativeInt('diversity.window', dv.window),
      maxPerCategory: positiveInt('diversity.maxPerCategory', dv.maxPerCategory),
    }),
    admission: Object.freeze({
      maxConcurrent: positiveInt('admission.maxConcurrent', a.maxConcurrent),
      maxQueue: nonNegativeInt('admission.maxQueue', a.maxQueue),
      maxQueueWaitMs: nonNegativeNumber('admission.maxQueueWaitMs', a.maxQueueWaitMs),
    }),
    auth: Object.freeze(token === undefined ? {} : { token }),
    maxReceiveMessageBytes: positiveInt('maxReceiveMessageBytes', config.maxReceiveMessageBytes ?? d.maxReceiveMessageBytes),
    publishAckTimeoutMs: positiveNumber('publishAckTimeoutMs', config.publishAckTimeoutMs ?? d.publishAckTimeoutMs),
    featureLog: Object.freeze({ sampleRate, maxAgeMs, maxBytes: positiveInt('featureLog.maxBytes', fl.maxBytes) }),
    drift,
    localOverloadedAt: positiveInt('localOverloadedAt', config.localOverloadedAt ?? d.localOverloadedAt, 100_000),
  });
}

function share(name: string, v: unknown): number {
  const x = nonNegativeNumber(name, v);
  if (x > 1) throw new TypeError(`coordinator option ${name} must be in [0, 1], got ${x}`);
  return x;
}

function resolveDriftConfig(dr: Record<keyof PredictionDriftConfig, unknown>): PredictionDriftConfig {
  const joinWindowMs = positiveInt('drift.joinWindowMs', dr.joinWindowMs, 86_400_000);
  const windowMs = positiveInt('drift.windowMs', dr.windowMs, 86_400_000);
  // 15 buckets of at least a millisecond each.
  if (windowMs < 15) throw new TypeError(`coordinator option drift.windowMs must be at least 15 ms (15 buckets), got ${windowMs}`);
  return Object.freeze({
    sampleRate: share('drift.sampleRate', dr.sampleRate),
    maxTracked: positiveInt('drift.maxTracked', dr.maxTracked, 10_000_000),
    joinWindowMs,
    windowMs,
    alertAbove: positiveNumber('drift.alertAbove', dr.alertAbove),
    minImpressions: nonNegativeInt('drift.minImpressions', dr.minImpressions),
    // k ≤ 1000 (validate.ts Limits): 1000 means "every slot".
    topPositions: positiveInt('drift.topPositions', dr.topPositions, 1000),
  });
}

/** The weights of `surface`, or the `default` surface's when it has none. */
export function surfaceWeights(config: ResolvedCoordinatorConfig, surface: string): SurfaceWeights {
  return config.surfaces[surfaceKey(config, surface)] ?? config.surfaces.default;
}

/**
 * The configured surface a request's `surface` is served as: its own name when it has weights, else
 * "default" (an empty or unknown surface). Bounded by the config, so it can label metrics.
 */
export function surfaceKey(config: ResolvedCoordinatorConfig, surface: string): string {
  return surface !== '' && Object.hasOwn(config.surfaces, surface) ? surface : 'default';
}
