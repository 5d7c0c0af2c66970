/**
 * The coordinator actor: a stateless public endpoint composing the Recommend pipeline (pipeline.ts)
 * over NATS (user state, item shards), the ranker client (KServe v2 gRPC) and the popular lists, and
 * the public gRPC server (server.ts). Runs on the node's main event loop: every stage is I/O the
 * event loop multiplexes; the CPU parts (merge, ranker rows, policy) cost well under a millisecond
 * per request, so a worker hop would cost more than it saves.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../core/clock.js';
import { Deadline } from '../../core/deadline.js';
import { systemClock } from '../../core/clock.js';
import type { InteractionEvent } from '../../core/events.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { validateClusterName } from '../../core/subjects.js';
import { PopularCache } from '../popular/popular-cache.js';
import { RankerClient } from '../ranker/client.js';
import { LocalFirstRankerScorer } from '../ranker/local-first.js';
import type { LocalRanker } from '../ranker/local-first.js';
import { AdmissionController } from './admission.js';
import type { CoordinatorConfig, ResolvedCoordinatorConfig } from './config.js';
import { resolveCoordinatorConfig } from './config.js';
import { PredictionDriftMonitor } from './drift.js';
import { EventPublisher } from './events.js';
import { FeatureLog } from './feature-log.js';
import { loadServingModel, servingModelFromManifest } from './model.js';
import { NatsShardSearcher, NatsUserStateSource } from './nats-ports.js';
import { LocalFirstShardSearcher, LocalFirstUserStateSource } from './local-ports.js';
import type { InProcessItemShard, InProcessUserPartition } from './local-ports.js';
import { RecommendPipeline } from './pipeline.js';
import { StageTimer } from './stage-timer.js';
import type { PipelinePorts, ServingModel } from './ports.js';
import type { RecommenderServer } from './server.js';
import { startRecommenderServer } from './server.js';
import type { CoordinatorStats } from './stats.js';
import { PipelineCounters, STAGES, completenessStats } from './stats.js';
import type { HistogramSnapshot, Stage } from './stats.js';
import type { RoutingTable } from '../../shardmap/routing-table.js';

export { Limits } from './validate.js';
export { DEFAULT_COORDINATOR_CONFIG, resolveCoordinatorConfig } from './config.js';
export type { CoordinatorConfig, ResolvedCoordinatorConfig, SurfaceWeights, StageBudgets } from './config.js';
export type { CoordinatorStats, HistogramSnapshot } from './stats.js';
export type { PipelinePorts, PopularSource, RankerScorer, ShardSearcher, UserStateSource, ServingModel } from './ports.js';
export { RECOMMENDER_SERVICE, loadRecommenderPackage } from './server.js';
export { Source } from './types.js';

/** Options of {@link startCoordinator}. */
export interface CoordinatorOptions {
  /** An already-connected NATS connection (not closed by stop()). Required. */
  readonly nc: NatsConnection;
  /** Cluster name scoping every subject. Required. */
  readonly cluster: string;
  /** S: virtual item shards. Required. */
  readonly itemShards: number;
  /** P: virtual user partitions. Required. */
  readonly userPartitions: number;
  /**
   * Ranker replica addresses (host:port), read on every pick so the client follows shard-map
   * changes, e.g. `() => rankerAddresses(map)`. Required unless `ports.ranker` is given.
   */
  readonly rankerAddresses?: () => readonly string[];
  /**
   * The ranker replica running in this process, when there is one (read per request: the shard map
   * may start or stop it). With it, ranking prefers that replica in-process (no gRPC) and calls the
   * replicas in `rankerAddresses` other than it only when it is missing, overloaded or failing
   * (actors/ranker/local-first.ts); stats().rankerPaths counts which path answered. Default: none,
   * every ranking call goes over gRPC. Ignored when `ports.ranker` is given.
   */
  readonly localRanker?: () => LocalRanker | undefined;
  /**
   * The item shards running in this process (read per call: the shard map may start or stop them).
   * With it, retrieval searches them in-process and the other shards over NATS
   * (local-ports.ts); stats().localPaths counts which path answered. Default: every shard over NATS.
   * Ignored when `ports.shards` is given. `space` is the request's embedding space: during a tower
   * switch a process holds a shard on both tower pairs, and each request searches its own.
   */
  readonly localItemShard?: (shard: number, space: string) => InProcessItemShard | undefined;
  /** The same for user partitions in this process. Ignored when `ports.userState` is given. */
  readonly localUserPartition?: (partition: number) => InProcessUserPartition | undefined;
  /** `models/<version>/` holding manifest.json. One of modelDir / manifest is required. */
  readonly modelDir?: string;
  readonly manifest?: ModelManifest;
  /**
   * Embedding space of the towers the cluster's shards and partitions serve for this model
   * (actors/model/embedding-space.ts `readEmbeddingSpace`), named in every user-state read and shard
   * search so that no vector is searched against another tower's index. Default '' (unchecked).
   */
  readonly embeddingSpace?: string;
  /** Bind address of the public server. Default 127.0.0.1. */
  readonly host?: string;
  /** Public server port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** Knobs (see config.ts for every default). */
  readonly config?: CoordinatorConfig;
  /**
   * Replacements for the pipeline's collaborators. Defaults: NATS user state and item-shard search,
   * a RankerClient over `rankerAddresses`, and a PopularCache (actors/popular) holding up to
   * max(mergeLimit, trendingCandidates) candidates per (country, device, list). Tests swap in fakes.
   */
  readonly ports?: Partial<PipelinePorts>;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /**
   * Serving time = wall time − this, ms. 0 (default) for live data. For a replayed historical world
   * (the synthetic demo world is dated 2024) the node sets it so the world's history ends when the
   * cluster starts: items' ages in the ranker rows then fall in the range the model was trained on
   * (hours to days, not years), and LogEvents' event times are mapped the same way. Deadlines sent
   * to the actors stay in wall time. See {@link servingTimeOffsetMs}.
   */
  readonly servingTimeOffsetMs?: number;
  /**
   * Retention of the event stream when this coordinator is the one that creates it, ms (config
   * `eventStream.maxAgeMs`; 0 = unlimited). Default: the stream module's 7 days.
   */
  readonly eventStreamMaxAgeMs?: number;
  /** Transport security of the public server. Default insecure; the node passes mTLS credentials when `tls` is configured. */
  readonly serverCredentials?: grpc.ServerCredentials;
  /** Credentials the ranker client dials replicas with. Default insecure; mTLS credentials when `tls` is configured. */
  readonly rankerCredentials?: grpc.ChannelCredentials;
  /**
   * Whether the event stream's events reach {@link CoordinatorHandle.noteEvents} now (the node's
   * popular actor runs with its feed); read by stats() as `predictionDrift.eventsSource`, so a
   * coordinator whose drift figures cannot fill says so instead of showing zeros. Default: never.
   */
  readonly driftEventsSource?: () => boolean;
  /**
   * The user-routing table clients may fetch with GetRouting (the node builds it from its shard
   * map, shardmap/routing-table.ts). Absent: GetRouting answers UNAVAILABLE.
   */
  readonly routing?: () => RoutingTable | undefined;
}

/** How the coordinator dates items and events (config `coordinator.timeBase`). */
export type ServingTimeBase = 'auto' | 'clock' | 'world';

/**
 * The serving-time offset for a world whose history ends at `worldEndMs`: 'clock' → 0; 'world' →
 * now − worldEndMs (the history ends "now"); 'auto' → 'world' when the history ended more than a day
 * before `nowMs` (a replayed world), else 0 (live data). Pure, for tests.
 */
export function servingTimeOffsetMs(mode: ServingTimeBase, worldEndMs: number | undefined, nowMs: number): number {
  if (mode === 'clock' || worldEndMs === undefined) return 0;
  const behind = nowMs - worldEndMs;
  if (mode === 'auto' && behind <= 86_400_000) return 0;
  return Math.max(0, Math.round(behind));
}

/** A running coordinator. */
export interface CoordinatorHandle {
  /** host:port of the public gRPC server. */
  readonly address: string;
  readonly port: number;
  /** Stops serving: health NOT_SERVING, waits for in-flight calls (≤ 2 s), closes the ranker client. Idempotent. */
  stop(): Promise<void>;
  stats(): CoordinatorStats;
  /** Follows a shard-map change of S (requests in flight keep the old S). */
  setShardCount(itemShards: number): void;
  /**
   * Hot-swaps the model (its version and calibration) from a directory or a manifest, for requests
   * that start from now on; `space` is the embedding space of its towers (default: unchanged, as
   * for a ranker-only switch).
   */
  setModel(model: string | ModelManifest, space?: string): Promise<void>;
  /**
   * Events read from the cluster's event stream, for the prediction-drift join (drift.ts): the node
   * passes what its popular actor reads. A no-op when `coordinator.drift.sampleRate` is 0.
   */
  noteEvents(events: readonly InteractionEvent[]): void;
}

/** Longest start-up wait for the warm-up request, ms. */
const WARM_UP_MS = 250;

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new TypeError(`options.${name} must be a positive integer, got ${String(v)}`);
  return v;
}

async function resolveModel(model: string | ModelManifest): Promise<ServingModel> {
  return typeof model === 'string' ? loadServingModel(model) : servingModelFromManifest(model);
}

/** Validates options, loads the model, ensures the event stream, and starts the public server. */
export async function startCoordinator(opts: CoordinatorOptions): Promise<CoordinatorHandle> {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('options must be an object');
  if (typeof opts.nc?.request !== 'function') throw new TypeError('options.nc must be a connected NatsConnection');
  if (typeof opts.cluster !== 'string') throw new TypeError('options.cluster must be a string');
  try {
    validateClusterName(opts.cluster);
  } catch (err) {
    throw new TypeError(`options.cluster: ${(err as Error).message}`);
  }
  const itemShards = positiveInt('itemShards', opts.itemShards);
  const userPartitions = positiveInt('userPartitions', opts.userPartitions);
  if (opts.ports?.ranker === undefined && typeof opts.rankerAddresses !== 'function') {
    throw new TypeError('options.rankerAddresses must be a function returning host:port strings');
  }
  if (opts.modelDir === undefined && opts.manifest === undefined) throw new TypeError('options.modelDir or options.manifest is required');
  if (opts.driftEventsSource !== undefined && typeof opts.driftEventsSource !== 'function') throw new TypeError('options.driftEventsSource must be a function returning a boolean');
  if (opts.routing !== undefined && typeof opts.routing !== 'function') throw new TypeError('options.routing must be a function returning the routing table or undefined');
  const config: ResolvedCoordinatorConfig = resolveCoordinatorConfig(opts.config);
  const clock = opts.clock ?? systemClock;
  const model: ServingModel = { ...(await resolveModel(opts.manifest ?? (opts.modelDir as string))), space: opts.embeddingSpace ?? '' };

  const { nc, cluster } = opts;
  let rankerClient: RankerClient | undefined;
  let localFirst: LocalFirstRankerScorer | undefined;
  if (opts.ports?.ranker === undefined) {
    const all = opts.rankerAddresses!;
    const localRanker = opts.localRanker;
    if (localRanker !== undefined && typeof localRanker !== 'function') throw new TypeError('options.localRanker must be a function returning the local ranker or undefined');
    // With a local replica, the gRPC client leaves it out: when the local path is overloaded or
    // failing, the same replica over gRPC would be no better.
    const remote =
      localRanker === undefined
        ? all
        : () => {
            const own = localRanker()?.address;
            return own === undefined ? all() : all().filter((a) => a !== own);
          };
    rankerClient = new RankerClient({ addresses: remote, clock, ...(opts.rankerCredentials !== undefined ? { credentials: opts.rankerCredentials } : {}) });
    if (localRanker !== undefined) localFirst = new LocalFirstRankerScorer({ local: localRanker, remote: rankerClient, hasRemote: () => remote().length > 0 });
  }
  const popularCache =
    opts.ports?.popular === undefined ? new PopularCache({ nc, cluster, fetchSize: Math.max(config.mergeLimit, config.trendingCandidates), clock }) : undefined;
  for (const key of ['localItemShard', 'localUserPartition'] as const) {
    if (opts[key] !== undefined && typeof opts[key] !== 'function') throw new TypeError(`options.${key} must be a function returning the local actor or undefined`);
  }
  const natsUsers = new NatsUserStateSource(nc, cluster, userPartitions);
  const natsShards = new NatsShardSearcher(nc, cluster);
  const localUsers =
    opts.ports?.userState === undefined && opts.localUserPartition !== undefined
      ? new LocalFirstUserStateSource({ local: opts.localUserPartition, nats: natsUsers, partitions: userPartitions, overloadedAt: config.localOverloadedAt })
      : undefined;
  const localShards =
    opts.ports?.shards === undefined && opts.localItemShard !== undefined ? new LocalFirstShardSearcher({ local: opts.localItemShard, nats: natsShards, overloadedAt: config.localOverloadedAt }) : undefined;
  const ports: PipelinePorts = {
    userState: opts.ports?.userState ?? localUsers ?? natsUsers,
    shards: opts.ports?.shards ?? localShards ?? natsShards,
    ranker: opts.ports?.ranker ?? localFirst ?? rankerClient!,
    popular: opts.ports?.popular ?? popularCache!,
  };
  // Best-effort warm-up: the first NATS request sets up the client's reply subscription and the
  // first decode JITs the codecs; doing it here keeps the first real request inside its budgets
  // (and fills a popular cache). Bounded, and its outcome does not matter.
  const warmUp = new StageTimer(Deadline.after(WARM_UP_MS, clock));
  await warmUp.settle<unknown>(() => (popularCache !== undefined ? popularCache.warm() : ports.popular.get('', 'unknown', 1, false)));
  warmUp.cancel();
  const counters = new PipelineCounters();
  const admission = new AdmissionController(config.admission, () => clock.monotonicMs());
  const offset = opts.servingTimeOffsetMs ?? 0;
  if (!Number.isFinite(offset) || offset < 0) throw new TypeError(`options.servingTimeOffsetMs must be a finite number >= 0, got ${String(offset)}`);
  let featureLog: FeatureLog | undefined;
  try {
    featureLog = config.featureLog.sampleRate > 0 ? await FeatureLog.create(nc, cluster, config.featureLog) : undefined;
  } catch (err) {
    rankerClient?.close();
    throw err;
  }
  const driftEventsSource = opts.driftEventsSource ?? (() => false);
  const drift = config.drift.sampleRate > 0 ? new PredictionDriftMonitor(config.drift, clock) : undefined;
  const pipeline = new RecommendPipeline({
    ports,
    config,
    model,
    itemShards,
    clock,
    counters,
    admission,
    servingTimeOffsetMs: offset,
    ...(featureLog !== undefined ? { featureLog } : {}),
    ...(drift !== undefined ? { drift } : {}),
  });
  let publisher: EventPublisher;
  try {
    publisher = await EventPublisher.create(nc, cluster, userPartitions, config.publishAckTimeoutMs, opts.eventStreamMaxAgeMs);
  } catch (err) {
    rankerClient?.close();
    throw err;
  }
  const events = { accepted: 0, duplicates: 0, failedCalls: 0 };
  let server: RecommenderServer;
  try {
    server = await startRecommenderServer({
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      config,
      clock,
      ...(opts.serverCredentials !== undefined ? { credentials: opts.serverCredentials } : {}),
      backend: {
        recommend: (q, deadline) => pipeline.recommend(q, deadline),
        logEvents: async (evs) => {
          try {
            // Event times arrive in wall time (0 was filled with wall "now"): map them to serving time.
            const r = await publisher.publish(offset === 0 ? evs : evs.map((e) => ({ ...e, tsMs: e.tsMs - offset })));
            events.accepted += r.accepted;
            events.duplicates += r.duplicates;
            return r;
          } catch (err) {
            events.failedCalls++;
            throw err;
          }
        },
        onRejected: () => {
          counters.rejected++;
        },
        ...(opts.routing !== undefined ? { routing: opts.routing } : {}),
      },
    });
  } catch (err) {
    rankerClient?.close();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    address: server.address,
    port: server.port,
    stop: () => {
      stopped ??= (async () => {
        admission.drainQueue();
        await server.stop();
        rankerClient?.close();
      })();
      return stopped;
    },
    stats: (): CoordinatorStats => {
      const latencyMs = {} as Record<Stage, HistogramSnapshot>;
      for (const s of STAGES) latencyMs[s] = counters.latency[s].snapshot();
      const a = admission.stats();
      return {
        requests: { ...counters.outcomes, rejected: counters.rejected },
        degradations: { ...counters.degradations },
        latencyMs,
        meanCoverage: counters.coverageCount > 0 ? counters.coverageSum / counters.coverageCount : 1,
        lastCoverage: counters.lastCoverage,
        featureCompleteness: completenessStats(counters.completeness),
        admission: { inFlight: a.inFlight, queued: a.queued, shedOverload: a.shedOverload, shedQueueTimeout: a.shedQueueTimeout },
        events: { ...events },
        itemShards: pipeline.itemShards,
        modelVersion: pipeline.model.version,
        ...(popularCache !== undefined ? { popularCache: popularCache.stats() } : {}),
        ...(localFirst !== undefined ? { rankerPaths: localFirst.stats() } : {}),
        ...(localShards !== undefined || localUsers !== undefined
          ? { localPaths: { ...(localShards !== undefined ? { itemShards: localShards.stats() } : {}), ...(localUsers !== undefined ? { userState: localUsers.stats() } : {}) } }
          : {}),
        ...(featureLog !== undefined ? { featureLog: { ...featureLog.stats(), buildFailures: counters.featureLogFailures } } : {}),
        ...(drift !== undefined ? { predictionDrift: { ...drift.snapshot(), eventsSource: driftEventsSource() } } : {}),
      };
    },
    setShardCount: (s) => pipeline.setShardCount(s),
    setModel: async (m, space) => pipeline.setModel({ ...(await resolveModel(m)), space: space ?? pipeline.model.space ?? '' }),
    noteEvents: (events) => drift?.noteEvents(events),
  };
}
