/**
 * Closed-loop online evaluation: the synthetic world's users ask the running cluster for a feed and
 * respond to what it serves with the world's own response model (offline/world/behaviour.ts
 * `respondToFeed`), an A/B test in simulation. Each request is played in every arm with the same
 * user, context, session time and response-RNG seed, so arm differences are paired:
 *
 * - `served`: the cluster's Recommend answer for the world user (their id, device, country);
 * - `coldstart`: the cluster's answer for a never-seen user id with the same context (the new-user
 *   path: user tower on an empty history, retrieval + trending, ranked) — what the cluster gives a
 *   user it knows nothing about;
 * - `logging`: the world's own logging policy (behaviour.ts `buildFeed`: interest, tag, creator,
 *   popular, fresh and trending draws from the user's TRUE latent tastes), k slots — the policy
 *   whose logs the models were trained on, so "served beats logging" means the cluster learned more
 *   than it was shown;
 * - `popular`: the world's true global popularity order (Catalog.popularity, the latent Zipf weight
 *   the logs were drawn from), top k, the same for everyone — an oracle popular list, no cluster;
 * - `random`: k distinct catalogue videos drawn uniformly (its own seeded stream per request).
 *
 * With `logEvents`, the served arm's simulated events go back through LogEvents with the request
 * id (as a client app would send them), so user state, popular lists and the feature log see them.
 */
import type { Clock } from '../../core/clock.js';
import { SeededRng, systemClock } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { SimEvent } from '../../offline/world/behaviour.js';
import { buildFeed, respondToFeed } from '../../offline/world/behaviour.js';
import type { LogEventCall, RecommendCall, RecommendReply } from '../../cluster/local/client.js';
import type { ArmDifference, ArmSummary, FeedOutcome } from './metrics.js';
import { feedOutcome, summariseArms } from './metrics.js';
import type { SimWorld } from './sim-world.js';
import { UserPicker, drawLocalHour, popularityOrder, randomFeed, requestSeed } from './sim-world.js';

/** The arms, in report order. */
export const ARMS = ['served', 'coldstart', 'logging', 'popular', 'random'] as const;
export type ArmName = (typeof ARMS)[number];

/** What each arm is, for the report. */
const ARM_DESCRIPTIONS: Readonly<Record<ArmName, string>> = {
  served: "the cluster's Recommend answer for the world user (their own id, device and country)",
  coldstart: "the cluster's Recommend answer for a never-seen user id (2^52 + request index) with the same context: the new-user path",
  logging: "the world's logging policy (offline/world/behaviour.ts buildFeed, which reads the user's true latent tastes), k slots; the policy that wrote the training logs; no cluster call",
  popular: "the world's true global popularity order (latent Zipf weight), top k, the same list for every user; no cluster call",
  random: 'k distinct catalogue videos drawn uniformly at random; no cluster call',
};

/** The calls online evaluation makes: a subset of cluster/local/client.ts `RecommenderClient`. */
export interface OnlineEvalClient {
  recommend(req: RecommendCall, opts?: { deadlineMs?: number }): Promise<RecommendReply>;
  logEvents(events: readonly LogEventCall[], opts?: { deadlineMs?: number }): Promise<{ accepted: number; duplicates: number }>;
}

/** Options of {@link runOnlineEval}. */
export interface OnlineEvalOptions {
  readonly client: OnlineEvalClient;
  readonly world: SimWorld;
  /** Requests to play (each in every arm). Default 2000. */
  readonly requests?: number;
  /** Request starts per second (fixed schedule; each waits while `maxInFlight` are open). Default 20. */
  readonly rate?: number;
  /** Seed of user draws, contexts, random feeds and responses. Default 1. */
  readonly seed?: number;
  /** Items asked for and slots per feed. Default 20. */
  readonly k?: number;
  /** Publish the served arm's events through LogEvents. Default false. */
  readonly logEvents?: boolean;
  /** Recommend requests open at once. Default 32. */
  readonly maxInFlight?: number;
  /** Per-call deadline, ms. Default 2000. */
  readonly deadlineMs?: number;
  /** Bootstrap resamples for the intervals. Default 1000. */
  readonly resamples?: number;
  /** Distinguishes this run's request and event ids from other runs'. Default: base-36 wall time. */
  readonly runTag?: string;
  /** Called after each request with (done, total). */
  readonly onProgress?: (done: number, total: number) => void;
  /** Wall clock for pacing and event times. Default the system clock. */
  readonly clock?: Clock;
}

/** The served arm in the first vs the last quarter of the run (does feedback move it?). */
export interface DriftReport {
  readonly requestsPerQuarter: number;
  readonly firstQuarter: ArmSummary;
  readonly lastQuarter: ArmSummary;
  /** last − first, per metric (bootstrap over each quarter's requests). */
  readonly differences: readonly ArmDifference[];
}

/** Everything {@link runOnlineEval} measured. */
export interface OnlineEvalReport {
  readonly conditions: {
    readonly world: { readonly dir: string; readonly name: string; readonly numVideos: number; readonly numUsers: number; readonly endMs: number };
    readonly requests: number;
    /** Requests answered in both cluster arms (the others are dropped from every arm). */
    readonly completed: number;
    readonly rate: number;
    /** Requests completed per second of wall time. */
    readonly achievedRate: number;
    readonly wallSeconds: number;
    readonly seed: number;
    readonly k: number;
    readonly logEvents: boolean;
    readonly userDraw: 'activity' | 'uniform';
    readonly sessionTime: string;
    readonly intervals: string;
    readonly arms: Readonly<Record<ArmName, string>>;
    readonly modelVersions: readonly string[];
  };
  readonly arms: Readonly<Record<ArmName, ArmSummary>>;
  /** served − each other arm, and coldstart − popular, per metric (paired). */
  readonly differences: readonly ArmDifference[];
  readonly servedDrift: DriftReport;
  /** Answers with a non-empty `degraded` list, per cluster arm. */
  readonly degradedAnswers: Readonly<Record<'served' | 'coldstart', number>>;
  readonly failures: { readonly requests: number; readonly samples: readonly string[] };
  readonly events: { readonly published: number; readonly accepted: number; readonly duplicates: number; readonly failedCalls: number };
}

const SALT_REQUEST = 0x0e7a1001;
const SALT_RESPONSE = 0x0e7a1002;
const SALT_RANDOM = 0x0e7a1003;
const SALT_BOOTSTRAP = 0x0e7a1004;
const SALT_LOGGING = 0x0e7a1005;
/** Never-seen user ids for the coldstart arm start here (loadtest's new users live above 2^52 too). */
const COLDSTART_USER_BASE = 2 ** 52;

const EVENT_TYPE_NAMES: Readonly<Record<EventType, LogEventCall['type']>> = {
  [EventType.IMPRESSION]: 'IMPRESSION',
  [EventType.CLICK]: 'CLICK',
  [EventType.WATCH]: 'WATCH',
  [EventType.LIKE]: 'LIKE',
  [EventType.SKIP]: 'SKIP',
};

function positive(name: string, v: number, integer: boolean): number {
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new TypeError(`option ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`);
  return v;
}

interface RequestResult {
  readonly outcomes: Record<ArmName, FeedOutcome>;
  readonly degraded: { served: boolean; coldstart: boolean };
  readonly modelVersion: string;
}

/**
 * Plays `requests` world users against the cluster behind `client`, each in every arm, and
 * summarises the arms. Never throws for a failed call: the request is counted under `failures` and
 * left out of every arm (so the arms stay paired). Throws a TypeError for a bad option.
 */
export async function runOnlineEval(o: OnlineEvalOptions): Promise<OnlineEvalReport> {
  const requests = positive('requests', o.requests ?? 2000, true);
  const rate = positive('rate', o.rate ?? 20, false);
  const k = positive('k', o.k ?? 20, true);
  const maxInFlight = positive('maxInFlight', o.maxInFlight ?? 32, true);
  const deadlineMs = positive('deadlineMs', o.deadlineMs ?? 2000, false);
  const seed = o.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0) throw new TypeError(`option seed must be a non-negative integer, got ${String(seed)}`);
  const clock = o.clock ?? systemClock;
  const runTag = o.runTag ?? Date.now().toString(36);
  const { world, client } = o;
  const { catalog, population } = world;
  const picker = new UserPicker(population);
  const popular = popularityOrder(catalog, world.endMs, k);
  const popularSources = popular.map(() => 'POPULAR');

  const results: (RequestResult | undefined)[] = new Array<RequestResult | undefined>(requests);
  const failures: string[] = [];
  let failed = 0;
  const events = { published: 0, accepted: 0, duplicates: 0, failedCalls: 0 };
  const versions = new Set<string>();
  const started = clock.nowMs();
  let done = 0;

  const playOne = async (i: number): Promise<void> => {
    const pickRng = new SeededRng(requestSeed(seed, SALT_REQUEST, i));
    const userId = picker.pick(pickRng);
    const localHour = drawLocalHour(pickRng);
    const rec = population.record(userId);
    const user = population.user(userId, world.servingDay);
    const context = { device: rec.device, country: rec.country, localHour };
    const setting = { device: rec.device, localHour };
    const requestId = `oe-${runTag}-${i}`;
    const wallAtRequest = clock.nowMs();
    // Sessions happen "now" in the world's time: its history ends when the run starts.
    const sessionMs = world.endMs + (wallAtRequest - started);
    let served: RecommendReply;
    let cold: RecommendReply;
    try {
      [served, cold] = await Promise.all([
        client.recommend({ userId, k, context, surface: 'home', requestId }, { deadlineMs }),
        client.recommend({ userId: COLDSTART_USER_BASE + i, k, context, surface: 'home', requestId: `${requestId}-cold` }, { deadlineMs }),
      ]);
    } catch (err) {
      failed++;
      if (failures.length < 5) failures.push(`request ${i}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    versions.add(served.modelVersion);
    // Every arm answers with a fresh stream from the same seed: the same user draws the same luck.
    const respond = (feed: readonly number[]): SimEvent[] =>
      respondToFeed(catalog, user, setting, feed, sessionMs, new SeededRng(requestSeed(seed, SALT_RESPONSE, i)));
    const servedFeed = served.items.map((it) => it.videoId);
    const servedEvents = respond(servedFeed);
    const coldFeed = cold.items.map((it) => it.videoId);
    const random = randomFeed(catalog, world.endMs, k, new SeededRng(requestSeed(seed, SALT_RANDOM, i)));
    const logging = buildFeed(catalog, user, sessionMs, k, new SeededRng(requestSeed(seed, SALT_LOGGING, i)));
    results[i] = {
      outcomes: {
        served: feedOutcome(catalog, servedFeed.length, served.items.map((it) => it.source), servedEvents),
        coldstart: feedOutcome(catalog, coldFeed.length, cold.items.map((it) => it.source), respond(coldFeed)),
        logging: feedOutcome(catalog, logging.length, logging.map(() => 'LOGGING'), respond(logging)),
        popular: feedOutcome(catalog, popular.length, popularSources, respond(popular)),
        random: feedOutcome(catalog, random.length, random.map(() => 'RANDOM'), respond(random)),
      },
      degraded: { served: served.degraded.length > 0, coldstart: cold.degraded.length > 0 },
      modelVersion: served.modelVersion,
    };
    if (o.logEvents === true && servedEvents.length > 0) {
      const calls: LogEventCall[] = servedEvents.map((e, j) => ({
        eventId: `${requestId}-${j}`,
        userId,
        videoId: e.videoId,
        type: EVENT_TYPE_NAMES[e.type],
        // World time → wall time: LogEvents takes wall time and maps it back to serving time.
        tsMs: Math.round(wallAtRequest + (e.tsMs - sessionMs)),
        position: e.position,
        watchSeconds: e.watchSeconds,
        context,
        surface: 'home',
        requestId,
      }));
      events.published += calls.length;
      try {
        const r = await client.logEvents(calls, { deadlineMs });
        events.accepted += r.accepted;
        events.duplicates += r.duplicates;
      } catch {
        events.failedCalls++;
      }
    }
  };

  const inFlight = new Set<Promise<void>>();
  const intervalMs = 1000 / rate;
  for (let i = 0; i < requests; i++) {
    const wait = started + i * intervalMs - clock.nowMs();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    const p: Promise<void> = playOne(i).finally(() => {
      inFlight.delete(p);
      o.onProgress?.(++done, requests);
    });
    inFlight.add(p);
  }
  await Promise.all(inFlight);
  const wallSeconds = (clock.nowMs() - started) / 1000;

  const completed = results.filter((r): r is RequestResult => r !== undefined);
  const armOutcomes = Object.fromEntries(ARMS.map((a) => [a, completed.map((r) => r.outcomes[a])])) as Record<ArmName, FeedOutcome[]>;
  const summary = summariseArms(armOutcomes, new SeededRng(requestSeed(seed, SALT_BOOTSTRAP, 0)), {
    k,
    ...(o.resamples !== undefined ? { resamples: o.resamples } : {}),
    compare: [
      ['served', 'random'],
      ['served', 'popular'],
      ['served', 'logging'],
      ['served', 'coldstart'],
      ['coldstart', 'popular'],
    ],
  });
  const quarter = Math.floor(completed.length / 4);
  const drift = summariseArms(
    { first: armOutcomes.served.slice(0, quarter), last: armOutcomes.served.slice(completed.length - quarter) },
    new SeededRng(requestSeed(seed, SALT_BOOTSTRAP, 1)),
    { k, ...(o.resamples !== undefined ? { resamples: o.resamples } : {}), compare: [['last', 'first']] },
  );
  const m = world.manifest;
  return {
    conditions: {
      world: { dir: world.dir, name: m.name, numVideos: m.numVideos, numUsers: m.numUsers, endMs: world.endMs },
      requests,
      completed: completed.length,
      rate,
      achievedRate: wallSeconds > 0 ? completed.length / wallSeconds : 0,
      wallSeconds,
      seed,
      k,
      logEvents: o.logEvents === true,
      userDraw: picker.mode,
      sessionTime: `${new Date(world.endMs).toISOString()} (the world's end) + seconds since the run started; local hour drawn from the world's diurnal curve`,
      intervals: `95% percentile bootstrap over requests (${o.resamples ?? 1000} resamples; the same resampled requests in every arm, so differences are paired)`,
      arms: ARM_DESCRIPTIONS,
      modelVersions: [...versions],
    },
    arms: summary.arms as Record<ArmName, ArmSummary>,
    differences: summary.differences,
    servedDrift: {
      requestsPerQuarter: quarter,
      firstQuarter: drift.arms.first as ArmSummary,
      lastQuarter: drift.arms.last as ArmSummary,
      differences: drift.differences,
    },
    degradedAnswers: {
      served: completed.filter((r) => r.degraded.served).length,
      coldstart: completed.filter((r) => r.degraded.coldstart).length,
    },
    failures: { requests: failed, samples: failures },
    events,
  };
}
