/**
 * The popular/trending actor: answers `Subjects.popular(cluster)` (PopularRequest →
 * CandidateBatchReply) from a {@link PopularIndex} built from the world's history and kept current
 * by the events LogEvents accepts, read from the cluster's event stream (option `eventFeed`).
 *
 * Threading: the lists are materialised by a refresh on a timer and replies are cached encoded per
 * (key, trending, n), so a request costs a map lookup on the main thread (µs); nothing here is worth
 * a worker hop. The timer's refresh runs on the main thread too (the coordinator's loop), so it is
 * cut into slices of at most ~`refreshSliceMs` (default 1 ms) with a setImmediate between them: a
 * full pass over ~210k counted (list, video) pairs of the 1M-video local world took 93–190 ms as one
 * blocking sort; bounded top-N selection makes it cheaper and slicing bounds the stall (numbers in
 * the report). `refresh()` on the handle stays synchronous (tests, tools).
 *
 * Catalogue: with a world, video metadata comes from the node's shared catalogue
 * (user-state/catalogue-cache.ts, loaded off the main thread), not a Map per video.
 *
 * Stream replay: at start the lists are rebuilt from the world, then the event stream is applied
 * from a start time (JetStream DeliverPolicy by start time, on storage time), not from its first
 * sequence: now − `replayWindowMs`, by default {@link POPULAR_REPLAY_HALF_LIVES} popular
 * half-lives (10 × 24 h). An engagement that old weighs 2^-10 < 0.1% of a fresh one in the popular
 * counter (the slowest one; trending decays 24× faster), so each event left out would have added
 * less than 0.1% of its fresh weight to any score. Not decayed, so truncated: the cumulative item
 * stats (impressions, clicks, watches, watch ratio) returned with candidates count only the world
 * plus that window of the stream. The stream's own retention (event-stream/stream.ts, 7 days by
 * default) may be shorter; then the whole stream is replayed.
 *
 * Time: lists are computed "as of" `timeBase` — 'events' (default) uses the newest event time seen,
 * so a replayed historical world has meaningful recent windows; 'clock' uses the injected clock's
 * wall time (live traffic). The clock also drives the refresh timer.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import type { InteractionEvent } from '../../core/events.js';
import { invalidArgument, toStatus } from '../../core/status.js';
import { Subjects, validateClusterName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { CandidateBatchReplyMsg } from '../../protos/codec.js';
import { statusToMsg } from '../../protos/convert.js';
import { readEventBatches } from '../../offline/world/reader.js';
import { startEventFeed } from '../event-stream/feed.js';
import type { EventFeedHandle, EventFeedStats } from '../event-stream/feed.js';
import { ItemCatalogue, buildCatalogueColumns } from '../user-state/catalogue.js';
import type { CatalogueLease } from '../user-state/catalogue-cache.js';
import { acquireCatalogue } from '../user-state/catalogue-cache.js';
import type { PopularIndexOptions } from './popular-index.js';
import { PopularIndex, resolvePopularIndexOptions } from './popular-index.js';

/** Popular half-lives of stream history replayed at start (see the module comment). */
export const POPULAR_REPLAY_HALF_LIVES = 10;

/** Largest `n` a PopularRequest may ask for. */
export const MAX_POPULAR_N = 1000;

/** Options of {@link startPopular}. */
export interface PopularOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** World whose videos and history seed the lists; omit to start empty. */
  readonly worldDir?: string;
  /** List parameters (half-lives, sizes). */
  readonly lists?: PopularIndexOptions;
  /** How often lists are recomputed, ms. Default 5000. */
  readonly refreshIntervalMs?: number;
  /** Longest stretch one timer refresh holds the event loop before yielding, ms. Default 1. */
  readonly refreshSliceMs?: number;
  /** Where the node's catalogue file lives (shared with user partitions); omit to parse the world. */
  readonly snapshotDir?: string;
  /** 'events' (default) or 'clock': what "now" is when lists are computed. */
  readonly timeBase?: 'events' | 'clock';
  /** Injected clock (tests). Default the system clock. */
  readonly clock?: Clock;
  /**
   * Count the events LogEvents accepts, read from the cluster's JetStream stream (every partition's
   * subject, from `replayWindowMs` ago: the lists are rebuilt from the world at each start, and
   * that window of the stream is applied on top). Default true; the server needs JetStream.
   */
  readonly eventFeed?: boolean;
  /**
   * How far back the event stream is replayed at start, ms (by storage time). Default
   * {@link POPULAR_REPLAY_HALF_LIVES} × `lists.popularHalfLifeMs` (10 days with the defaults).
   */
  readonly replayWindowMs?: number;
  /** Retention of the event stream (its max_age) when this actor creates or updates it, ms; 0 = unlimited. Default: see event-stream/stream.ts. */
  readonly streamMaxAgeMs?: number;
  /**
   * Also hands every batch this actor applies (the stream feed's, the start-up replay included) to
   * this listener, after the lists counted it: how the node gives its coordinator's prediction-drift
   * monitor the events without a second stream consumer. It runs on the feed's turn, so it must be
   * cheap; what it throws is counted (`listenerFailures`) and swallowed, never retried (a retry would
   * count the batch twice in the lists). Default none.
   */
  readonly onEvents?: (events: readonly InteractionEvent[]) => void;
}

/** Counters for /metrics. */
export interface PopularStats {
  readonly items: number;
  readonly counterEntries: number;
  /** Bytes of the counter tables (typed arrays, outside the JS heap; popular-index.ts). */
  readonly counterBytes: number;
  readonly requests: number;
  readonly refreshes: number;
  /** Timer passes skipped because no event arrived and "now" (the event watermark) did not move. */
  readonly refreshesSkipped: number;
  /** Wall time of the last refresh, ms (sliced: from its first slice to its last). */
  readonly lastRefreshMs: number;
  /** Longest single slice of the last refresh: how long it blocked the event loop, ms. */
  readonly lastRefreshMaxSliceMs: number;
  /** Entries the last refresh examined: the kept popular videos plus the trending candidates (popular-index.ts). */
  readonly lastRefreshScanned: number;
  readonly eventsApplied: number;
  /** Batches whose `onEvents` listener threw (the lists counted them; the listener missed them). */
  readonly listenerFailures: number;
  /** The event-stream feed's counters, when it runs. */
  readonly eventFeed?: EventFeedStats;
}

/** A running popular/trending actor. */
export interface PopularHandle {
  /** The in-process index (read-only use: benches, tests). */
  readonly index: PopularIndex;
  applyEvents(events: readonly InteractionEvent[]): void;
  /** Recomputes the lists now (also runs every refreshIntervalMs). */
  refresh(): void;
  stats(): PopularStats;
  stop(): Promise<void>;
}

/**
 * Builds an index from a world directory (its catalogue, then every event in order) and refreshes
 * it. Pass `catalogue` to reuse one already loaded (the node's shared one).
 */
export async function popularIndexFromWorld(worldDir: string, options: PopularIndexOptions = {}, catalogue?: ItemCatalogue): Promise<PopularIndex> {
  const index = new PopularIndex(options, catalogue ?? new ItemCatalogue(await buildCatalogueColumns(worldDir, false)));
  for await (const batch of readEventBatches(worldDir)) for (const e of batch) index.applyEvent(e);
  index.refresh(index.watermarkMs);
  return index;
}

/** Builds the lists from the world (when given), then subscribes. */
export async function startPopular(opts: PopularOptions): Promise<PopularHandle> {
  try {
    validateClusterName(opts.cluster);
  } catch (err) {
    throw new TypeError(`option cluster: ${(err as Error).message}`);
  }
  const refreshIntervalMs = opts.refreshIntervalMs ?? 5000;
  if (!(Number.isFinite(refreshIntervalMs) && refreshIntervalMs > 0)) throw new TypeError(`option refreshIntervalMs must be > 0, got ${refreshIntervalMs}`);
  const timeBase = opts.timeBase ?? 'events';
  if (timeBase !== 'events' && timeBase !== 'clock') throw new TypeError(`option timeBase must be 'events' or 'clock'`);
  const refreshSliceMs = opts.refreshSliceMs ?? 1;
  if (!(Number.isFinite(refreshSliceMs) && refreshSliceMs > 0)) throw new TypeError(`option refreshSliceMs must be > 0, got ${refreshSliceMs}`);
  if (opts.snapshotDir !== undefined && (typeof opts.snapshotDir !== 'string' || opts.snapshotDir.length === 0)) throw new TypeError('option snapshotDir must be a non-empty string');
  if (opts.onEvents !== undefined && typeof opts.onEvents !== 'function') throw new TypeError('option onEvents must be a function');
  const lists = resolvePopularIndexOptions(opts.lists);
  const replayWindowMs = opts.replayWindowMs ?? POPULAR_REPLAY_HALF_LIVES * lists.popularHalfLifeMs;
  if (!(Number.isFinite(replayWindowMs) && replayWindowMs > 0)) throw new TypeError(`option replayWindowMs must be > 0, got ${replayWindowMs}`);
  const clock = opts.clock ?? systemClock;
  let lease: CatalogueLease | undefined;
  let index: PopularIndex;
  if (opts.worldDir === undefined) {
    index = new PopularIndex(opts.lists);
  } else {
    lease = await acquireCatalogue(opts.worldDir, opts.snapshotDir);
    try {
      index = await popularIndexFromWorld(opts.worldDir, opts.lists, lease.catalogue);
    } catch (err) {
      lease.release();
      throw err;
    }
  }
  const actor = new PopularImpl(opts.nc, opts.cluster, index, { intervalMs: refreshIntervalMs, sliceMs: refreshSliceMs, timeBase, clock, lease, onEvents: opts.onEvents });
  if (opts.eventFeed ?? true) {
    try {
      actor.follow(
        await startEventFeed({
          nc: opts.nc,
          cluster: opts.cluster,
          subject: Subjects.allEvents(opts.cluster),
          afterSeq: 0,
          // Wall time, not `clock`: JetStream stamps messages with the server's wall clock.
          startTimeMs: Math.max(0, Date.now() - replayWindowMs),
          ...(opts.streamMaxAgeMs === undefined ? {} : { maxAgeMs: opts.streamMaxAgeMs }),
          apply: async (batch) => actor.applyEvents(batch.map((b) => b.event)),
          log: (e) => process.stderr.write(`${JSON.stringify({ ...e, actor: 'popular' })}\n`),
        }),
      );
    } catch (err) {
      await actor.stop();
      throw err;
    }
  }
  return actor;
}

interface PopularRuntime {
  readonly intervalMs: number;
  readonly sliceMs: number;
  readonly timeBase: 'events' | 'clock';
  readonly clock: Clock;
  readonly lease: CatalogueLease | undefined;
  readonly onEvents: ((events: readonly InteractionEvent[]) => void) | undefined;
}

class PopularImpl implements PopularHandle {
  readonly index: PopularIndex;
  readonly #sub: Subscription;
  readonly #timer: NodeJS.Timeout;
  readonly #timeBase: 'events' | 'clock';
  readonly #clock: Clock;
  readonly #sliceMs: number;
  #feed: EventFeedHandle | undefined;
  readonly #lease: CatalogueLease | undefined;
  readonly #onEvents: ((events: readonly InteractionEvent[]) => void) | undefined;
  #listenerFailures = 0;
  /** A sliced refresh is running (the timer skips a tick rather than overlap it). */
  #refreshing = false;
  #lastMaxSliceMs = 0;
  /** Encoded replies per (key, trending, n), cleared at every refresh. */
  readonly #replies = new Map<string, Uint8Array>();
  #requests = 0;
  #refreshes = 0;
  #lastRefreshMs = 0;
  #events = 0;
  #stopped = false;

  constructor(nc: NatsConnection, cluster: string, index: PopularIndex, rt: PopularRuntime) {
    this.index = index;
    this.#timeBase = rt.timeBase;
    this.#clock = rt.clock;
    this.#sliceMs = rt.sliceMs;
    this.#lease = rt.lease;
    this.#onEvents = rt.onEvents;
    this.#sub = nc.subscribe(Subjects.popular(cluster), {
      queue: Subjects.queueGroup(cluster, 'popular', 0),
      callback: (err, msg) => {
        if (err === null) msg.respond(this.#answer(msg.data));
      },
    });
    this.#timer = setInterval(() => this.#refreshSliced(), rt.intervalMs);
    this.#timer.unref();
  }

  #answer(bytes: Uint8Array): Uint8Array {
    this.#requests++;
    let reply: CandidateBatchReplyMsg;
    try {
      const req = Codecs.popularRequest.decode(bytes);
      if (!Number.isInteger(req.n) || req.n < 1 || req.n > MAX_POPULAR_N) throw invalidArgument('n', `must be in 1..${MAX_POPULAR_N}, got ${req.n}`);
      const cacheKey = `${req.country}\u0000${req.device}\u0000${req.trending ? 1 : 0}\u0000${req.n}`;
      const cached = this.#replies.get(cacheKey);
      if (cached !== undefined) return cached;
      reply = { candidates: this.index.candidates(req.country, req.device, req.n, req.trending) };
      const encoded = Codecs.candidateBatchReply.encode(reply);
      if (this.#replies.size < 10_000) this.#replies.set(cacheKey, encoded);
      return encoded;
    } catch (err) {
      reply = { status: statusToMsg(toStatus(err)), candidates: null };
      return Codecs.candidateBatchReply.encode(reply);
    }
  }

  applyEvents(events: readonly InteractionEvent[]): void {
    for (const e of events) this.index.applyEvent(e);
    this.#events += events.length;
    if (this.#onEvents === undefined) return;
    try {
      this.#onEvents(events);
    } catch {
      this.#listenerFailures++;
    }
  }

  refresh(): void {
    const t0 = performance.now();
    this.index.refresh(this.#now());
    this.#refreshed(performance.now() - t0, performance.now() - t0);
  }

  /** The timer's refresh: slices of at most ~sliceMs, a setImmediate between them. */
  #refreshSliced(): void {
    if (this.#refreshing || this.#stopped) return;
    const now = this.#now();
    // Nothing new since the last pass (no event applied, and "now" is the event watermark): the lists
    // would come out identical, so skip the pass. It cost the coordinator's thread ~110 ms every 5 s
    // on the 1M-video world (~0.02 cores) while recomputing the same lists.
    if (this.#refreshes > 0 && now === this.#lastNow && this.#events === this.#eventsAtLastRefresh) {
      this.#skipped++;
      return;
    }
    this.#lastNow = now;
    this.#eventsAtLastRefresh = this.#events;
    this.#refreshing = true;
    const t0 = performance.now();
    const steps = this.index.refreshSteps(now, 256);
    let maxSlice = 0;
    const slice = (): void => {
      if (this.#stopped) {
        this.#refreshing = false;
        return;
      }
      const s = performance.now();
      let done = false;
      do done = steps.next().done === true;
      while (!done && performance.now() - s < this.#sliceMs);
      maxSlice = Math.max(maxSlice, performance.now() - s);
      if (!done) {
        setImmediate(slice);
        return;
      }
      this.#refreshing = false;
      this.#refreshed(performance.now() - t0, maxSlice);
    };
    slice();
  }

  /** "Now" and the events applied at the last timer pass, to skip passes that would change nothing. */
  #lastNow = Number.NaN;
  #eventsAtLastRefresh = 0;
  #skipped = 0;

  #now(): number {
    return this.#timeBase === 'events' ? this.index.watermarkMs : this.#clock.nowMs();
  }

  #refreshed(wallMs: number, maxSliceMs: number): void {
    this.#replies.clear();
    this.#refreshes++;
    this.#lastRefreshMs = wallMs;
    this.#lastMaxSliceMs = maxSliceMs;
  }

  stats(): PopularStats {
    return {
      items: this.index.items,
      counterEntries: this.index.counterEntries,
      counterBytes: this.index.counterBytes,
      requests: this.#requests,
      refreshes: this.#refreshes,
      refreshesSkipped: this.#skipped,
      lastRefreshMs: this.#lastRefreshMs,
      lastRefreshMaxSliceMs: this.#lastMaxSliceMs,
      lastRefreshScanned: this.index.lastRefreshScanned,
      eventsApplied: this.#events,
      listenerFailures: this.#listenerFailures,
      ...(this.#feed !== undefined ? { eventFeed: this.#feed.stats() } : {}),
    };
  }

  /** Hands over the stream feed that calls applyEvents (stopped with the actor). */
  follow(feed: EventFeedHandle): void {
    this.#feed = feed;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#feed?.stop();
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
    this.#lease?.release();
  }
}
