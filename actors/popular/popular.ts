/**
 * The popular/trending actor: answers `Subjects.popular(cluster)` (PopularRequest →
 * CandidateBatchReply) from a {@link PopularIndex} built from the world's history and kept current
 * through `applyEvents` (the stream consumer, a later issue, calls it).
 *
 * Threading: the lists are materialised by `refresh` on a timer and replies are cached encoded per
 * (key, trending, n), so a request costs a map lookup on the main thread (µs); nothing here is worth
 * a worker hop. The refresh itself sorts every active video per list: O(active videos × lists) on
 * the main thread — fine for the tiny and default worlds, to be moved to a worker for catalogues in
 * the millions (see the report).
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
import { readEventBatches, readVideoBatches } from '../../offline/world/reader.js';
import type { PopularIndexOptions } from './popular-index.js';
import { PopularIndex, resolvePopularIndexOptions } from './popular-index.js';

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
  /** 'events' (default) or 'clock': what "now" is when lists are computed. */
  readonly timeBase?: 'events' | 'clock';
  /** Injected clock (tests). Default the system clock. */
  readonly clock?: Clock;
}

/** Counters for /metrics. */
export interface PopularStats {
  readonly items: number;
  readonly counterEntries: number;
  readonly requests: number;
  readonly refreshes: number;
  readonly lastRefreshMs: number;
  readonly eventsApplied: number;
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

/** Builds an index from a world directory (videos, then every event in order) and refreshes it. */
export async function popularIndexFromWorld(worldDir: string, options: PopularIndexOptions = {}): Promise<PopularIndex> {
  const index = new PopularIndex(options);
  for await (const batch of readVideoBatches(worldDir)) {
    for (const v of batch) index.setItem({ videoId: v.videoId, creatorId: v.creatorId, category: v.category, durationS: v.durationS, uploadTsMs: v.uploadTsMs });
  }
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
  resolvePopularIndexOptions(opts.lists);
  const clock = opts.clock ?? systemClock;
  const index = opts.worldDir === undefined ? new PopularIndex(opts.lists) : await popularIndexFromWorld(opts.worldDir, opts.lists);
  return new PopularImpl(opts.nc, opts.cluster, index, refreshIntervalMs, timeBase, clock);
}

class PopularImpl implements PopularHandle {
  readonly index: PopularIndex;
  readonly #sub: Subscription;
  readonly #timer: NodeJS.Timeout;
  readonly #timeBase: 'events' | 'clock';
  readonly #clock: Clock;
  /** Encoded replies per (key, trending, n), cleared at every refresh. */
  readonly #replies = new Map<string, Uint8Array>();
  #requests = 0;
  #refreshes = 0;
  #lastRefreshMs = 0;
  #events = 0;
  #stopped = false;

  constructor(nc: NatsConnection, cluster: string, index: PopularIndex, intervalMs: number, timeBase: 'events' | 'clock', clock: Clock) {
    this.index = index;
    this.#timeBase = timeBase;
    this.#clock = clock;
    this.#sub = nc.subscribe(Subjects.popular(cluster), {
      queue: Subjects.queueGroup(cluster, 'popular', 0),
      callback: (err, msg) => {
        if (err === null) msg.respond(this.#answer(msg.data));
      },
    });
    this.#timer = setInterval(() => this.refresh(), intervalMs);
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
  }

  refresh(): void {
    const t0 = performance.now();
    const now = this.#timeBase === 'events' ? this.index.watermarkMs : this.#clock.nowMs();
    this.index.refresh(now);
    this.#replies.clear();
    this.#refreshes++;
    this.#lastRefreshMs = performance.now() - t0;
  }

  stats(): PopularStats {
    return {
      items: this.index.items,
      counterEntries: this.index.counterEntries,
      requests: this.#requests,
      refreshes: this.#refreshes,
      lastRefreshMs: this.#lastRefreshMs,
      eventsApplied: this.#events,
    };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
  }
}
