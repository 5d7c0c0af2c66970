/**
 * The in-process ceiling: the coordinator's own {@link RecommendPipeline}, unchanged, over ports
 * that call the actors' in-process cores directly — the same user-state lookup
 * ({@link UserStatePartition.get}: profile + user tower), the same faiss searches
 * ({@link ItemShardIndex.search} per shard, built by the shard's own `openItemShard`), the same
 * ranking call (one ONNX Runtime session of ranker.onnx, no worker hop, no batcher) and the same
 * popular lists ({@link PopularIndex}). No NATS, no gRPC, no protobuf, no threads: what one process
 * could do if distribution were free. `make bench` divides the cluster's QPS per server core by
 * this figure (DESIGN §7, the ceiling ratio).
 *
 * QPS per core = requests / CPU seconds of this process (process.cpuUsage covers every thread,
 * so ONNX Runtime or OpenMP threads count too) during a closed loop over a fixed request list.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { SeededRng } from '../../core/clock.js';
import { Deadline } from '../../core/deadline.js';
import type { RequestContext } from '../../core/events.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { MODEL_FILES, TENSORS } from '../../core/model/contract.js';
import type { ModelManifest } from '../../core/model/contract.js';
import type { CandidateBatchMsg, ShardSearchReplyMsg, ShardSearchRequestMsg, UserStateReplyMsg } from '../../protos/codec.js';
import { contextToMsg } from '../../protos/convert.js';
import { resolveConfig } from '../../cluster/config.js';
import type { UpnextConfigInput } from '../../cluster/config.js';
import type { ResolvedCoordinatorConfig } from '../../actors/coordinator/config.js';
import { loadServingModel } from '../../actors/coordinator/model.js';
import { RecommendPipeline } from '../../actors/coordinator/pipeline.js';
import { servingTimeOffsetMs } from '../../actors/coordinator/index.js';
import { readWorldManifest } from '../../offline/world/reader.js';
import { worldEndMs } from '../../offline/world/format.js';
import type { PipelinePorts, PopularSource, RankerScorer, RankerScores, ShardSearcher, UserStateSource } from '../../actors/coordinator/ports.js';
import type { RecommendResult } from '../../actors/coordinator/types.js';
import type { RecommendQuery } from '../../actors/coordinator/validate.js';
import { validateRecommendRequest } from '../../actors/coordinator/validate.js';
import { openItemShard } from '../../actors/item-shard/bootstrap.js';
import { ItemTower } from '../../actors/item-shard/item-tower.js';
import { SERVING_SESSION_OPTIONS } from '../../actors/model/serving-session.js';
import type { ItemShardIndex } from '../../actors/item-shard/shard-index.js';
import { pinFaissToOneThread } from '../../actors/item-shard/faiss.js';
import { popularIndexFromWorld } from '../../actors/popular/popular.js';
import type { PopularIndex } from '../../actors/popular/popular-index.js';
import { POPULAR_CACHE_TTL_MS, cacheKey, sliceCandidateBatch } from '../../actors/popular/popular-cache.js';
import { UserStatePartition } from '../../actors/user-state/partition.js';
import { UserTower } from '../../actors/user-state/user-tower.js';
import { RequestMix } from '../generator/request-mix.js';
import type { RequestMixSpec } from '../generator/request-mix.js';
import { loadUserIds, loadVideoIds } from '../generator/world-ids.js';
import { cpuSecondsSince } from './table.js';
import { SERVER_STAGES, mapStages, stageMsOfTimings } from '../measure/outcome.js';
import type { ServerStage } from '../measure/outcome.js';
import { quantileSorted } from '../measure/quantile.js';

/** User state from one in-memory partition holding every user (P does not change an answer). */
export class InProcessUserState implements UserStateSource {
  readonly partition: UserStatePartition;

  constructor(partition: UserStatePartition) {
    this.partition = partition;
  }

  get(userId: number, context: RequestContext, deadline: Deadline): Promise<UserStateReplyMsg> {
    return this.partition.get({ userId, context: contextToMsg(context), deadlineMs: deadline.atMs });
  }
}

/** Shard searches straight into each shard's faiss index and feature columns. */
export class InProcessShards implements ShardSearcher {
  readonly shards: readonly ItemShardIndex[];

  constructor(shards: readonly ItemShardIndex[]) {
    this.shards = shards;
  }

  async search(shard: number, request: ShardSearchRequestMsg): Promise<ShardSearchReplyMsg> {
    const index = this.shards[shard];
    if (index === undefined) throw new RangeError(`no shard ${shard} in this process`);
    const t0 = performance.now();
    // The worker converts the decoded vector the same way (actors/item-shard/worker.ts).
    const query = request.userVector instanceof Float32Array ? request.userVector : Float32Array.from(request.userVector);
    const candidates = index.search(query, request.k, request.excludeVideoIds);
    return { shard, candidates, shardSize: index.size, searchMs: performance.now() - t0 };
  }
}

/** One ONNX Runtime session of ranker.onnx on the calling thread: no pool, no batcher, no gRPC. */
export class InProcessRanker implements RankerScorer {
  readonly #session: ort.InferenceSession;
  readonly width: number;

  private constructor(session: ort.InferenceSession, width: number) {
    this.#session = session;
    this.width = width;
  }

  /** Same session options as the ranker replica's workers (one intra-op thread). */
  static async open(modelDir: string, spec: FeatureSpec): Promise<InProcessRanker> {
    const session = await ort.InferenceSession.create(path.join(modelDir, MODEL_FILES.ranker), { ...SERVING_SESSION_OPTIONS });
    return new InProcessRanker(session, rankerRowWidth(spec));
  }

  async score(rows: Float32Array, nRows: number): Promise<RankerScores> {
    const t = TENSORS.ranker;
    const out = await this.#session.run({ [t.features]: new ort.Tensor('float32', rows.subarray(0, nRows * this.width), [nRows, this.width]) });
    const pClick = out[t.pClick]?.data;
    const watch = out[t.watchLog1p]?.data;
    if (!(pClick instanceof Float32Array) || !(watch instanceof Float32Array)) throw new Error('ranker.onnx returned no float32 outputs');
    return { pClick, watchLog1p: watch, replica: 'in-process' };
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}

/**
 * Popular lists from the index itself, cached the way the coordinator's PopularCache caches them:
 * one list of `fetchSize` entries per (country, device, list) for `ttlMs`, sliced per request. (The
 * first version asked the index on every request; its `#features`/`candidates` were 8% of the
 * ceiling's CPU, work the cluster does not do per request, which understated the ceiling.)
 */
export class InProcessPopular implements PopularSource {
  readonly index: PopularIndex;
  readonly #fetchSize: number;
  readonly #ttlMs: number;
  readonly #cache = new Map<string, { readonly batch: CandidateBatchMsg; readonly atMs: number }>();

  constructor(index: PopularIndex, fetchSize: number, ttlMs = POPULAR_CACHE_TTL_MS) {
    this.index = index;
    this.#fetchSize = fetchSize;
    this.#ttlMs = ttlMs;
  }

  async get(country: string, device: string, n: number, trending: boolean): Promise<CandidateBatchMsg> {
    const key = cacheKey(country, device, trending);
    const now = performance.now();
    let hit = this.#cache.get(key);
    if (hit === undefined || now - hit.atMs > this.#ttlMs) {
      hit = { batch: this.index.candidates(country, device, Math.max(n, this.#fetchSize), trending), atMs: now };
      this.#cache.set(key, hit);
    }
    return sliceCandidateBatch(hit.batch, n);
  }
}

/** Options of {@link openInProcessCluster}. */
export interface InProcessClusterOptions {
  /** World directory (offline/world format). Required. */
  readonly worldDir: string;
  /** `models/<version>/`. Required. */
  readonly modelDir: string;
  /**
   * The cluster config the end-to-end run uses (S, index options, coordinator knobs); the ceiling
   * takes the same values so both do the same work. Default: cluster/config.ts defaults.
   */
  readonly config?: UpnextConfigInput;
  /**
   * Item-shard snapshot folder (e.g. `<cluster runDir>/snapshots`): restores the shards the cluster
   * built instead of building them again. Default: build in memory, write nothing.
   */
  readonly snapshotDir?: string;
  /**
   * Shards already built with the same S and index options (e.g. by recall.ts's
   * buildEncodedShards); used instead of opening them. Default: open them here.
   */
  readonly shards?: readonly ItemShardIndex[];
  /** One line per start-up phase. Default silent. */
  readonly log?: (line: string) => void;
}

/** The pipeline over in-process ports, and what it was built from. */
export interface InProcessCluster {
  readonly pipeline: RecommendPipeline;
  readonly ports: PipelinePorts;
  readonly shards: readonly ItemShardIndex[];
  readonly userState: UserStatePartition;
  readonly popular: PopularIndex;
  readonly coordinator: ResolvedCoordinatorConfig;
  readonly manifest: ModelManifest;
  /** Items over all shards. */
  readonly items: number;
  /** faiss factory string of each shard. */
  readonly factories: readonly string[];
  /** Wall ms per start-up phase. */
  readonly startupMs: Readonly<Record<string, number>>;
  /** Releases the ONNX sessions. Idempotent. */
  close(): Promise<void>;
}

/** Loads the world and the model into one process and wires the pipeline to in-process ports. */
export async function openInProcessCluster(opts: InProcessClusterOptions): Promise<InProcessCluster> {
  if (typeof opts.worldDir !== 'string' || opts.worldDir === '') throw new TypeError('option worldDir must be a non-empty string');
  if (typeof opts.modelDir !== 'string' || opts.modelDir === '') throw new TypeError('option modelDir must be a non-empty string');
  pinFaissToOneThread();
  const log = opts.log ?? (() => {});
  const config = resolveConfig(opts.config);
  const { port: _port, ...coordinator } = config.coordinator;
  const startupMs: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const v = await fn();
    startupMs[name] = performance.now() - t0;
    log(`ceiling: ${name} ${(startupMs[name] / 1000).toFixed(1)} s`);
    return v;
  };

  const model = await loadServingModel(opts.modelDir);
  const manifest = JSON.parse(await readFile(path.join(opts.modelDir, MODEL_FILES.manifest), 'utf8')) as ModelManifest;
  const S = config.cluster.itemShards;
  if (opts.shards !== undefined && opts.shards.length !== S) throw new TypeError(`option shards must hold cluster.itemShards = ${S} shards, got ${opts.shards.length}`);
  const shards = opts.shards ?? await timed('item shards', async () => {
    const itemTower = await ItemTower.load(opts.modelDir);
    const out: ItemShardIndex[] = [];
    for (let s = 0; s < S; s++) {
      const opened = await openItemShard({
        worldDir: opts.worldDir,
        shard: s,
        shardCount: S,
        tower: itemTower,
        snapshotDir: opts.snapshotDir,
        index: config.itemShard.index,
        towerBatchRows: config.itemShard.towerBatchRows,
        perShardK: config.coordinator.perShardK,
      });
      out.push(opened.index);
    }
    await itemTower.close();
    return out;
  });
  const userTower = await UserTower.load(opts.modelDir);
  const userState = await timed('user state', async () => {
    const p = new UserStatePartition({ partition: 0, partitionCount: 1, embedder: userTower, embeddingCacheSize: config.userState.embeddingCacheSize });
    await p.loadWorld(opts.worldDir);
    return p;
  });
  const popular = await timed('popular', () => popularIndexFromWorld(opts.worldDir, config.popular.lists));
  const ranker = await InProcessRanker.open(opts.modelDir, model.spec);
  const ports: PipelinePorts = {
    userState: new InProcessUserState(userState),
    shards: new InProcessShards(shards),
    ranker,
    popular: new InProcessPopular(popular, Math.max(coordinator.mergeLimit, coordinator.trendingCandidates)),
  };
  // Dates items the way the cluster's coordinators do (coordinator.timeBase), so answers compare.
  const world = await readWorldManifest(opts.worldDir);
  const servingTimeOffset = servingTimeOffsetMs(config.coordinator.timeBase, worldEndMs(world), Date.now());
  const pipeline = new RecommendPipeline({ ports, config: coordinator, model, itemShards: S, servingTimeOffsetMs: servingTimeOffset });
  let closed: Promise<void> | undefined;
  return {
    pipeline,
    ports,
    shards,
    userState,
    popular,
    coordinator,
    manifest,
    items: shards.reduce((n, s) => n + s.size, 0),
    factories: shards.map((s) => s.factory),
    startupMs,
    close: () => {
      closed ??= ranker.release();
      return closed;
    },
  };
}

/** Options of {@link ceilingQueries}. */
export interface CeilingQueriesOptions {
  readonly worldDir: string;
  /** Requests to make. */
  readonly count: number;
  /** The load generator's request mix (users Zipf over the world's ids, new-user share, k, surface, context). */
  readonly mix: RequestMixSpec;
  /** Default 1. */
  readonly seed?: number;
}

/**
 * A fixed request list drawn the way the load generator draws it (loadtest/generator/request-mix.ts),
 * validated like the public server validates it; request ids are `ceiling-<i>` so exploration, which
 * hashes the request id, is reproducible.
 */
export async function ceilingQueries(o: CeilingQueriesOptions): Promise<RecommendQuery[]> {
  const users = await loadUserIds({ worldDir: o.worldDir, rangeStart: 0, rangeCount: 1 });
  const videos = await loadVideoIds({ worldDir: o.worldDir, rangeStart: 0, rangeCount: 1, max: 1 });
  const mix = new RequestMix(o.mix, users.ids, videos.ids, new SeededRng(o.seed ?? 1), undefined, 'lt', users.contexts);
  return Array.from({ length: o.count }, (_, i) => {
    const r = mix.recommendRequest(0);
    return validateRecommendRequest({ userId: r.userId, k: r.k, context: r.context, surface: r.surface, requestId: `ceiling-${i}` });
  });
}

/** Answers `q` through the in-process pipeline with the coordinator's default deadline. */
export function recommendInProcess(c: InProcessCluster, q: RecommendQuery): Promise<RecommendResult> {
  return c.pipeline.recommend(q, Deadline.after(c.coordinator.defaultDeadlineMs));
}

/** Options of {@link runCeiling}. */
export interface RunCeilingOptions {
  /** Requests answered before timing starts (JIT, caches). Default min(200, queries/10). */
  readonly warmUp?: number;
  /** Requests in flight at once (closed loop). Default 1: nothing to overlap without I/O. */
  readonly concurrency?: number;
}

/** What the ceiling run measured. */
export interface CeilingResult {
  readonly requests: number;
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  /** requests / CPU seconds of this process. */
  readonly qpsPerCore: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Answers per outcome (ok, degraded, fallback, shed): the ceiling must not win by degrading. */
  readonly outcomes: Readonly<Record<string, number>>;
  readonly concurrency: number;
  /**
   * Each pipeline stage's time in the timed answers, from the pipeline's own timings (the ones a
   * `debug` request gets back), mean and median, ms. At concurrency 1 (the default) one request
   * runs at a time in one thread, so a stage's time is its CPU: this is where the ceiling's CPU per
   * request goes, and what the cluster's stage timings compare with (`make bench` prints both).
   * Throws if an answer came back without timings (the figures would be silently low).
   */
  readonly stagesMs: Readonly<Record<ServerStage, { readonly mean: number; readonly p50: number }>>;
}

/** Runs `queries` through the in-process pipeline in a closed loop, timing CPU and latency. */
export async function runCeiling(c: InProcessCluster, queries: readonly RecommendQuery[], o: RunCeilingOptions = {}): Promise<CeilingResult> {
  const concurrency = o.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`option concurrency must be a positive integer, got ${String(concurrency)}`);
  const warmUp = o.warmUp ?? Math.min(200, Math.floor(queries.length / 10));
  if (!Number.isInteger(warmUp) || warmUp < 0 || warmUp >= queries.length) throw new TypeError(`option warmUp must be an integer in 0..${queries.length - 1}, got ${String(warmUp)}`);
  for (let i = 0; i < warmUp; i++) await recommendInProcess(c, queries[i]!);
  // debug: the answers carry the pipeline's stage timings (filled for every request; only returned on debug).
  const timed = queries.slice(warmUp).map((q) => (q.debug ? q : { ...q, debug: true }));
  const latencies = new Float64Array(timed.length);
  const stages = mapStages(() => new Float64Array(timed.length));
  const outcomes: Record<string, number> = {};
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const loop = async () => {
    for (let i = next++; i < timed.length; i = next++) {
      const s = performance.now();
      const r = await recommendInProcess(c, timed[i]!);
      latencies[i] = performance.now() - s;
      outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
      if (r.timings === undefined) throw new Error(`ceiling answer ${timed[i]!.requestId} carries no stage timings although it asked for them`);
      const ms = stageMsOfTimings(r.timings);
      for (const stage of SERVER_STAGES) stages[stage][i] = ms[stage];
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const wallSeconds = (performance.now() - t0) / 1000;
  const cpuSeconds = cpuSecondsSince(cpu0);
  latencies.sort();
  const stagesMs = mapStages((stage) => {
    const v = stages[stage].sort();
    return { mean: v.reduce((a, x) => a + x, 0) / Math.max(1, v.length), p50: quantileSorted(v, 0.5) };
  });
  return {
    requests: timed.length,
    cpuSeconds,
    wallSeconds,
    qpsPerCore: timed.length / Math.max(cpuSeconds, 1e-9),
    p50Ms: quantileSorted(latencies, 0.5),
    p99Ms: quantileSorted(latencies, 0.99),
    outcomes,
    concurrency,
    stagesMs,
  };
}
