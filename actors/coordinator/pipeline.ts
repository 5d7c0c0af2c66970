/**
 * The per-request Recommend pipeline of DESIGN.md §4: admission → user state → retrieval (scatter to
 * every item shard, gather until the deadline, merge; trending candidates) → ranking (one batched
 * ranker call) → policy → response. Every stage runs against an absolute deadline; a stage that fails
 * or misses it degrades the answer (new-user path, fewer shards, retrieval order, popular fill) and
 * says so, and an unexpected error still yields the popular fallback list — never a failed call.
 *
 * The pipeline talks to the world only through {@link PipelinePorts}, so it is unit-tested with fakes.
 */
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import type { Deadline } from '../../core/deadline.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { itemCtrPrior, itemFeatureCompleteness, itemWatchRatioPrior } from '../../core/features/item.js';
import { RankerRowWriter } from '../../core/features/ranker-row.js';
import type { UserView } from '../../core/features/towers.js';
import { itemShardOf } from '../../core/hash.js';
import { calibrate } from '../../core/model/calibration.js';
import { StatusCode, toStatus } from '../../core/status.js';
import type { CandidateBatchMsg, ShardSearchRequestMsg } from '../../protos/codec.js';
import { blankItemFeatures, candidateAt, candidateInto, emptyCandidateBatch, userViewFromReply } from '../../protos/convert.js';
import { AdmissionController } from './admission.js';
import type { ResolvedCoordinatorConfig } from './config.js';
import type { FeatureLogSink } from './feature-log.js';
import type { PredictionDriftSink } from './drift.js';
import { surfaceKey, surfaceWeights } from './config.js';
import type { ShardCandidates } from './merge.js';
import { mergeShardResults } from './merge.js';
import type { PolicyCandidate } from './policy.js';
import { applyPolicy, blendUtility } from './policy.js';
import type { PipelinePorts, ServingModel } from './ports.js';
import { PipelineCounters } from './stats.js';
import type { Settled } from './stage-timer.js';
import { StageTimer, describeFailure } from './stage-timer.js';
import type { RecommendOutcome, RecommendResult, RecommendedItem, StageTimings } from './types.js';
import { Source } from './types.js';
import type { RecommendQuery } from './validate.js';

/** Construction options of {@link RecommendPipeline}. */
export interface PipelineOptions {
  readonly ports: PipelinePorts;
  readonly config: ResolvedCoordinatorConfig;
  readonly model: ServingModel;
  /** S: virtual item shards (every request asks all of them). */
  readonly itemShards: number;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** Default: a fresh set of counters. */
  readonly counters?: PipelineCounters;
  /** Default: a controller built from `config.admission`. */
  readonly admission?: AdmissionController;
  /**
   * Serving time = wall time − this, ms: the "now" items' ages are measured from in the ranker rows.
   * 0 (default) for live data; a replayed historical world sets it so that its history ends when the
   * cluster starts (see servingTimeOffsetMs in index.ts). Deadlines always use wall time.
   */
  readonly servingTimeOffsetMs?: number;
  /** Where sampled served rows go (feature-log.ts); default none. */
  readonly featureLog?: FeatureLogSink;
  /** Told the calibrated P(click) of the ranked items of every answer (drift.ts samples them); default none. */
  readonly drift?: PredictionDriftSink;
}

/** One candidate in the pool that gets ranked: candidate `at` of a shard's or popular's columnar batch. */
interface PoolEntry {
  readonly batch: CandidateBatchMsg;
  readonly at: number;
  /** Two-tower score; 0 for candidates that did not come from retrieval (unknown affinity). */
  readonly retrievalScore: number;
  readonly shard: number;
  readonly origin: Source.RETRIEVAL | Source.TRENDING | Source.FALLBACK;
}

/** Upper bound on popular candidates asked for one fill (k ≤ 1000 plus what the filters drop). */
const MAX_POPULAR_FETCH = 5000;

function emptyUser(userId: number, numCategories: number): UserView {
  return {
    userId,
    recentVideoIds: [],
    recentCreatorIds: [],
    categoryAffinity: new Float32Array(numCategories),
    impressions: 0,
    clicks: 0,
    watches: 0,
    watchSeconds: 0,
  };
}

function finiteOr(v: number | undefined, fallback: number): number {
  return v !== undefined && Number.isFinite(v) ? v : fallback;
}

/** Expected watch seconds without a ranker: the item's smoothed watch ratio times its duration. */
function priorWatchSeconds(item: ItemFeatures): number {
  return itemWatchRatioPrior(item) * Math.max(0, item.durationS);
}

export class RecommendPipeline {
  readonly #ports: PipelinePorts;
  readonly #config: ResolvedCoordinatorConfig;
  readonly #clock: Clock;
  readonly #servingTimeOffsetMs: number;
  readonly #counters: PipelineCounters;
  readonly #admission: AdmissionController;
  readonly #featureLog: FeatureLogSink | undefined;
  readonly #drift: PredictionDriftSink | undefined;
  #model: ServingModel;
  #itemShards: number;

  constructor(opts: PipelineOptions) {
    if (!Number.isInteger(opts.itemShards) || opts.itemShards < 1) {
      throw new TypeError(`itemShards must be a positive integer, got ${String(opts.itemShards)}`);
    }
    this.#ports = opts.ports;
    this.#config = opts.config;
    this.#model = opts.model;
    this.#itemShards = opts.itemShards;
    this.#clock = opts.clock ?? systemClock;
    this.#servingTimeOffsetMs = opts.servingTimeOffsetMs ?? 0;
    this.#featureLog = opts.featureLog;
    this.#drift = opts.drift;
    this.#counters = opts.counters ?? new PipelineCounters();
    this.#admission = opts.admission ?? new AdmissionController(opts.config.admission, () => this.#clock.monotonicMs());
  }

  get model(): ServingModel {
    return this.#model;
  }

  /** Swaps the model for requests that start from now on (requests in flight keep theirs). */
  setModel(model: ServingModel): void {
    this.#model = model;
  }

  get itemShards(): number {
    return this.#itemShards;
  }

  /** Changes S for requests that start from now on. */
  setShardCount(itemShards: number): void {
    if (!Number.isInteger(itemShards) || itemShards < 1) throw new TypeError(`itemShards must be a positive integer, got ${itemShards}`);
    this.#itemShards = itemShards;
  }

  get counters(): PipelineCounters {
    return this.#counters;
  }

  get admission(): AdmissionController {
    return this.#admission;
  }

  /** Answers one validated request by `deadline`. Never rejects. */
  async recommend(q: RecommendQuery, deadline: Deadline): Promise<RecommendResult> {
    const t0 = this.#clock.monotonicMs();
    const timings: StageTimings = { admissionMs: 0, userStateMs: 0, retrievalMs: 0, rankingMs: 0, policyMs: 0, totalMs: 0 };
    // Snapshot per request: a model swap or shard-count change never mixes into a request in flight.
    const model = this.#model;
    const itemShards = this.#itemShards;
    const permit = await this.#admission.acquire(deadline.remainingMs());
    timings.admissionMs = this.#clock.monotonicMs() - t0;
    this.#counters.latency.admission.record(timings.admissionMs);
    if (!permit.admitted) {
      const fb = await this.#fallbackAnswer(q, deadline, [permit.reason], itemShards);
      return this.#finish(q, model, fb.items, 0, fb.degraded, 'shed', timings, t0);
    }
    try {
      return await this.#run(q, deadline, model, itemShards, timings, t0);
    } catch (err) {
      // A bug or an unexpected failure outside the request's control: still answer with popular.
      const fb = await this.#fallbackAnswer(q, deadline, [`internal: ${toStatus(err).message}`], itemShards);
      return this.#finish(q, model, fb.items, 0, fb.degraded, 'fallback', timings, t0);
    } finally {
      permit.release();
    }
  }

  async #run(
    q: RecommendQuery,
    deadline: Deadline,
    model: ServingModel,
    itemShards: number,
    timings: StageTimings,
    t0: number,
  ): Promise<RecommendResult> {
    const cfg = this.#config;
    const spec = model.spec;
    const degraded: string[] = [];
    const counters = this.#counters;

    // (2) user state: missing or late → a new user.
    let t = this.#clock.monotonicMs();
    const usTimer = new StageTimer(deadline.stage(cfg.budgets.userStateMs));
    // The embedding space of the model's towers (ports.ts ServingModel.space): named in the user-state
    // read and every shard search, so no vector is searched against another tower pair's index.
    const space = model.space ?? '';
    const us = await usTimer.settle(() => this.#ports.userState.get(q.userId, q.context, usTimer.deadline, { space, modelVersion: model.version }));
    usTimer.cancel();
    let user = emptyUser(q.userId, spec.numCategories);
    let embedding: readonly number[] | null = null;
    let userCompleteness: number | undefined;
    if (us.kind === 'ok') {
      user = userViewFromReply(us.value, spec.numCategories);
      userCompleteness = us.value.completeness;
      const replySpace = us.value.space ?? '';
      if (space !== '' && ((replySpace !== '' && replySpace !== space) || (replySpace === '' && us.value.embedding.length === 0))) {
        // A partition of other towers (a rolling restart onto a new model is half done): its vector
        // would retrieve nonsense here, so this request takes the new-user path (popular candidates).
        counters.degradations.spaceMismatch++;
        degraded.push(
          replySpace === ''
            ? `user embedding unavailable: partition ${us.value.partition} serves another embedding space than ${space}`
            : `user embedding is in embedding space ${replySpace}, this node serves ${space}: not searched`,
        );
      } else if (us.value.embedding.length === spec.embeddingDim) embedding = us.value.embedding;
      else degraded.push(`user embedding has ${us.value.embedding.length} floats, expected ${spec.embeddingDim}`);
    } else {
      counters.degradations.userState++;
      degraded.push(`user state ${describeFailure(us)}: treated as a new user`);
    }
    timings.userStateMs = this.#clock.monotonicMs() - t;
    counters.latency.userState.record(timings.userStateMs);
    const drop = new Set<number>(q.excludeVideoIds);
    for (const id of user.recentVideoIds) drop.add(id);

    // (3) retrieval: every shard in parallel, gathered until the stage deadline; trending alongside.
    t = this.#clock.monotonicMs();
    const rTimer = new StageTimer(deadline.stage(cfg.budgets.retrievalMs));
    const { country, device } = q.context;
    const trendingP =
      cfg.trendingCandidates > 0 ? rTimer.settle(() => this.#ports.popular.get(country, device, cfg.trendingCandidates, true)) : undefined;
    // Without an embedding there is nothing to search: popular candidates stand in (new-user path).
    const popularP = embedding === null ? rTimer.settle(() => this.#ports.popular.get(country, device, cfg.mergeLimit, false)) : undefined;
    const pool: PoolEntry[] = [];
    const inPool = new Set<number>();
    let coverage = 0;
    if (embedding !== null) {
      const request: ShardSearchRequestMsg = {
        userVector: embedding as number[],
        k: cfg.perShardK,
        excludeVideoIds: [...drop],
        deadlineMs: rTimer.deadline.atMs,
        space,
      };
      const replies = await Promise.all(
        Array.from({ length: itemShards }, (_, s) => rTimer.settle(() => this.#ports.shards.search(s, request, rTimer.deadline))),
      );
      const answered: ShardCandidates[] = [];
      replies.forEach((r, s) => {
        const code = r.kind === 'ok' ? (r.value.status?.code ?? 0) : 0;
        if (r.kind === 'ok' && code === 0) {
          answered.push({ shard: s, candidates: r.value.candidates ?? emptyCandidateBatch() });
          return;
        }
        counters.degradations.shardMiss++;
        // FAILED_PRECONDITION from a shard: it serves another embedding space (item-shard/worker.ts).
        if ((r.kind === 'ok' ? code : r.kind === 'error' ? r.status.code : 0) === StatusCode.FAILED_PRECONDITION) counters.degradations.spaceMismatch++;
        degraded.push(r.kind === 'ok' ? `shard ${s} failed (${r.value.status?.message ?? `code ${code}`})` : `shard ${s} ${describeFailure(r)}`);
      });
      const merged = mergeShardResults(answered, itemShards, cfg.mergeLimit, drop);
      coverage = merged.coverage;
      counters.recordCoverage(coverage);
      for (const m of merged.candidates) {
        inPool.add(m.videoId);
        pool.push({ batch: m.batch, at: m.at, retrievalScore: m.score, shard: m.shard, origin: Source.RETRIEVAL });
      }
    } else {
      degraded.push('retrieval skipped: no user embedding');
    }
    const addBatch = (settled: Settled<CandidateBatchMsg> | undefined, origin: Source.TRENDING | Source.FALLBACK, what: string) => {
      if (settled === undefined) return;
      if (settled.kind !== 'ok') {
        counters.degradations.trending++;
        degraded.push(`${what} candidates ${describeFailure(settled)}`);
        return;
      }
      const batch = settled.value;
      for (let i = 0; i < batch.videoIds.length; i++) {
        const id = batch.videoIds[i]!;
        if (inPool.has(id) || drop.has(id)) continue;
        inPool.add(id);
        pool.push({ batch, at: i, retrievalScore: 0, shard: itemShardOf(id, itemShards), origin });
      }
    };
    addBatch(await trendingP, Source.TRENDING, 'trending');
    addBatch(await popularP, Source.FALLBACK, 'popular');
    rTimer.cancel();
    timings.retrievalMs = this.#clock.monotonicMs() - t;
    counters.latency.retrieval.record(timings.retrievalMs);

    // (4) ranking: one batched call for the whole pool; on failure keep the pool's order.
    t = this.#clock.monotonicMs();
    const n = pool.length;
    const surface = surfaceKey(cfg, q.surface);
    const weights = surfaceWeights(cfg, surface);
    const candidates: PolicyCandidate[] = new Array<PolicyCandidate>(n);
    let ranked = false;
    let writer: RankerRowWriter | undefined;
    if (n > 0) {
      const nowMs = this.#clock.nowMs() - this.#servingTimeOffsetMs;
      writer = new RankerRowWriter(user, q.context, spec.inferencePosition, nowMs, spec);
      const rows = new Float32Array(n * writer.width);
      const item = blankItemFeatures();
      let itemCompleteness = 0;
      for (let i = 0; i < n; i++) {
        const e = pool[i]!;
        writer.write(rows, i, candidateInto(e.batch, e.at, item), e.retrievalScore);
        itemCompleteness += itemFeatureCompleteness(item);
      }
      counters.recordCompleteness(userCompleteness, itemCompleteness, n);
      const rankTimer = new StageTimer(deadline.stage(cfg.budgets.rankingMs));
      const scored = await rankTimer.settle(() => this.#ports.ranker.score(rows, n, rankTimer.deadline));
      rankTimer.cancel();
      if (scored.kind === 'ok' && scored.value.pClick.length >= n && scored.value.watchLog1p.length >= n) {
        ranked = true;
        const { pClick, watchLog1p } = scored.value;
        for (let i = 0; i < n; i++) {
          const e = pool[i]!;
          const p = calibrate(model.calibration, finiteOr(pClick[i], 0));
          const w = Math.expm1(Math.max(0, finiteOr(watchLog1p[i], 0)));
          candidates[i] = policyCandidate(e, blendUtility(p, w, weights, cfg.watchNormS, e.batch.durationS[e.at] ?? 0), p, w);
        }
      } else {
        counters.degradations.rankingSkipped++;
        const why = scored.kind === 'ok' ? `ranker returned ${scored.value.pClick.length} scores for ${n} rows` : describeFailure(scored);
        degraded.push(`ranking skipped: ${why}`);
      }
    }
    if (!ranked) {
      // Retrieval order (then trending, then popular) stands in for the ranker's utility.
      for (let i = 0; i < n; i++) {
        const e = pool[i]!;
        const item = candidateAt(e.batch, e.at);
        candidates[i] = policyCandidate(e, 1 - i / n, itemCtrPrior(item), priorWatchSeconds(item));
      }
    }
    timings.rankingMs = this.#clock.monotonicMs() - t;
    counters.latency.ranking.record(timings.rankingMs);

    // (5) policy.
    t = this.#clock.monotonicMs();
    let items = applyPolicy(candidates, {
      k: q.k,
      requestId: q.requestId,
      userId: q.userId,
      exploration: cfg.exploration,
      diversity: cfg.diversity,
    });
    timings.policyMs = this.#clock.monotonicMs() - t;
    counters.latency.policy.record(timings.policyMs);

    // Items the ranker scored: the policy's list (a popular fill below carries priors, not predictions).
    const rankedCount = ranked ? items.length : 0;

    // (6) exactly k: fill the tail from the popular list when the pool ran short.
    if (items.length < q.k) {
      counters.degradations.filledFromPopular++;
      const before = items.length;
      const fill = await this.#popularItems(q, deadline, drop, items, itemShards);
      items = fill.items;
      if (fill.failure !== undefined) degraded.push(fill.failure);
      if (items.length > before) degraded.push(`filled ${items.length - before} of ${q.k} slots from the popular list`);
      if (items.length < q.k) degraded.push(`only ${items.length} items available`);
    }
    if (ranked && writer !== undefined && this.#featureLog?.sampled(q.requestId)) {
      try {
        this.#logServedRows(q, model, pool, items, writer);
      } catch (err) {
        // The log is a sample: a failure here must never change the answer.
        counters.featureLogFailures++;
        if (counters.featureLogFailures === 1) console.error('feature log:', err);
      }
    }
    if (rankedCount > 0 && this.#drift?.sampled(q.requestId)) this.#drift.noteServed(q.requestId, items, this.#clock.nowMs(), rankedCount, surface);
    return this.#finish(q, model, items, coverage, degraded, degraded.length === 0 ? 'ok' : 'degraded', timings, t0);
  }

  /**
   * Publishes the rows of the served items that were ranked (the popular fill has none), written
   * again with the request's writer: the same inputs, hence the same bits the ranker scored (the
   * scored buffer itself went to the ranker's worker).
   */
  #logServedRows(q: RecommendQuery, model: ServingModel, pool: readonly PoolEntry[], items: readonly RecommendedItem[], writer: RankerRowWriter): void {
    const poolIndex = new Map<number, number>();
    pool.forEach((e, i) => poolIndex.set(e.batch.videoIds[e.at] ?? 0, i));
    const videoIds: number[] = [];
    const slots: number[] = [];
    const served: PoolEntry[] = [];
    items.forEach((item, slot) => {
      const i = poolIndex.get(item.videoId);
      if (i === undefined) return;
      videoIds.push(item.videoId);
      slots.push(slot);
      served.push(pool[i]!);
    });
    const rows = new Float32Array(served.length * writer.width);
    const scratch = blankItemFeatures();
    served.forEach((e, j) => writer.write(rows, j, candidateInto(e.batch, e.at, scratch), e.retrievalScore));
    this.#featureLog?.log({
      requestId: q.requestId,
      userId: q.userId,
      modelVersion: model.version,
      featureSpecHash: model.specHash,
      surface: q.surface,
      videoIds,
      slots,
      rows,
      width: writer.width,
    });
  }

  /** The whole answer from the popular list (shed or failed pipeline). */
  async #fallbackAnswer(
    q: RecommendQuery,
    deadline: Deadline,
    reasons: string[],
    itemShards: number,
  ): Promise<{ items: RecommendedItem[]; degraded: string[] }> {
    const fill = await this.#popularItems(q, deadline, new Set(q.excludeVideoIds), [], itemShards);
    const degraded = [...reasons];
    if (fill.failure !== undefined) degraded.push(fill.failure);
    if (fill.items.length < q.k) degraded.push(`only ${fill.items.length} items available`);
    return { items: fill.items, degraded };
  }

  /**
   * Appends popular items (source FALLBACK) to `head` until it holds k, skipping `drop` and ids
   * already there. Their scores are the popular scores normalised to (0, 1] and scaled below the last
   * score of `head`, so the list stays sorted. Waits at most `budgets.fallbackMs` (the popular cache
   * answers from memory; only a cold cache waits).
   */
  async #popularItems(
    q: RecommendQuery,
    deadline: Deadline,
    drop: ReadonlySet<number>,
    head: RecommendedItem[],
    itemShards: number,
  ): Promise<{ items: RecommendedItem[]; failure?: string }> {
    const n = Math.min(MAX_POPULAR_FETCH, q.k + drop.size + head.length);
    const timer = new StageTimer(deadline.stage(this.#config.budgets.fallbackMs));
    const got = await timer.settle(() => this.#ports.popular.get(q.context.country, q.context.device, n, false));
    timer.cancel();
    if (got.kind !== 'ok') return { items: head, failure: `popular list ${describeFailure(got)}` };
    const batch = got.value;
    const items = [...head];
    const taken = new Set(head.map((i) => i.videoId));
    let maxScore = 0;
    for (const s of batch.scores) if (Number.isFinite(s) && s > maxScore) maxScore = s;
    const scale = head.length > 0 ? Math.max(0, head[head.length - 1]!.score) : 1;
    let prev = Infinity;
    const count = batch.videoIds.length;
    for (let i = 0; i < count && items.length < q.k; i++) {
      const id = batch.videoIds[i]!;
      if (drop.has(id) || taken.has(id)) continue;
      taken.add(id);
      const item = candidateAt(batch, i);
      const norm = maxScore > 0 ? Math.max(0, finiteOr(batch.scores[i], 0)) / maxScore : 1 - i / count;
      const score = Math.min(prev, scale * norm);
      prev = score;
      items.push({
        videoId: id,
        score,
        pClick: itemCtrPrior(item),
        expectedWatchSeconds: priorWatchSeconds(item),
        source: Source.FALLBACK,
        shard: itemShardOf(id, itemShards),
      });
    }
    return { items };
  }

  #finish(
    q: RecommendQuery,
    model: ServingModel,
    items: readonly RecommendedItem[],
    coverage: number,
    degraded: readonly string[],
    outcome: RecommendOutcome,
    timings: StageTimings,
    t0: number,
  ): RecommendResult {
    timings.totalMs = this.#clock.monotonicMs() - t0;
    this.#counters.latency.total.record(timings.totalMs);
    this.#counters.outcomes[outcome]++;
    const base = { items, coverage, degraded, modelVersion: model.version, requestId: q.requestId, outcome };
    return q.debug ? { ...base, timings } : base;
  }
}

function policyCandidate(e: PoolEntry, utility: number, pClick: number, expectedWatchSeconds: number): PolicyCandidate {
  return {
    videoId: e.batch.videoIds[e.at] ?? 0,
    category: e.batch.categories[e.at] ?? 0,
    shard: e.shard,
    origin: e.origin,
    utility: Number.isFinite(utility) ? utility : 0,
    pClick,
    expectedWatchSeconds,
  };
}
