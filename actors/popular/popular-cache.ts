/**
 * Coordinator-side cache of popular/trending lists (DESIGN §6: overload sheds to the cached popular
 * list, answered in microseconds). An lru-cache keyed by (country, device, trending) holding the
 * first `fetchSize` candidates; `get` slices to n.
 *
 * Never blocks a fallback on NATS once anything is cached: a stale entry is served at once while one
 * background request refreshes it (lru-cache `allowStale` + `fetchMethod`), and a key never seen
 * before is answered from the global list of the same kind when that is cached (its own list is
 * fetched in the background). Only a cold cache waits for NATS, bounded by `requestTimeoutMs`, and
 * then answers an empty batch rather than an error.
 */
import { LRUCache } from 'lru-cache';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { UpnextError } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';
import { emptyCandidateBatch } from '../../protos/convert.js';

/** Options of {@link PopularCache}. */
export interface PopularCacheOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** Age after which an entry is refreshed (served stale meanwhile), ms. Default 5000. */
  readonly ttlMs?: number;
  /** Most (country, device, trending) entries kept. Default 2000. */
  readonly maxEntries?: number;
  /** Candidates fetched per entry (the largest n served without a refetch). Default 200. */
  readonly fetchSize?: number;
  /** Timeout of one NATS request, ms. Default 250. */
  readonly requestTimeoutMs?: number;
  /** Clock for TTLs (tests). Default the system clock. */
  readonly clock?: Clock;
}

const GLOBAL = { country: '', device: '' };

/** See the module comment. */
export class PopularCache {
  readonly #cache: LRUCache<string, CandidateBatchMsg>;
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #fetchSize: number;
  readonly #timeoutMs: number;
  #fetches = 0;
  #failures = 0;

  constructor(opts: PopularCacheOptions) {
    const ttl = opts.ttlMs ?? POPULAR_CACHE_TTL_MS;
    const max = opts.maxEntries ?? 2000;
    this.#fetchSize = opts.fetchSize ?? 200;
    this.#timeoutMs = opts.requestTimeoutMs ?? 250;
    for (const [k, v] of Object.entries({ ttlMs: ttl, maxEntries: max, fetchSize: this.#fetchSize, requestTimeoutMs: this.#timeoutMs })) {
      if (!(Number.isInteger(v) && v > 0)) throw new TypeError(`option ${k} must be a positive integer, got ${String(v)}`);
    }
    this.#nc = opts.nc;
    this.#subject = Subjects.popular(opts.cluster);
    const clock = opts.clock ?? systemClock;
    this.#cache = new LRUCache<string, CandidateBatchMsg>({
      max,
      ttl,
      allowStale: true,
      noDeleteOnStaleGet: true,
      noDeleteOnFetchRejection: true,
      allowStaleOnFetchRejection: true,
      perf: { now: () => clock.monotonicMs() },
      fetchMethod: (key) => this.#fetch(key),
    });
  }

  /**
   * Up to `n` candidates for (country, device). Resolves at once from the cache (fresh or stale);
   * see the module comment for misses.
   */
  async get(country: string, device: string, n: number, trending: boolean): Promise<CandidateBatchMsg> {
    const key = cacheKey(country, device, trending);
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      // get() with allowStale returns stale entries too; start a background refresh for those.
      if (this.#cache.getRemainingTTL(key) <= 0) void this.#cache.fetch(key).catch(() => undefined);
      return sliceCandidateBatch(hit, n);
    }
    const global = this.#cache.get(cacheKey(GLOBAL.country, GLOBAL.device, trending));
    const pending = this.#cache.fetch(key).catch(() => undefined);
    if (global !== undefined) return sliceCandidateBatch(global, n);
    const fetched = await pending;
    return fetched === undefined ? emptyCandidateBatch() : sliceCandidateBatch(fetched, n);
  }

  /** Synchronous lookup: the cached list (fresh or stale) or undefined; never touches NATS. */
  peek(country: string, device: string, n: number, trending: boolean): CandidateBatchMsg | undefined {
    const hit = this.#cache.get(cacheKey(country, device, trending));
    return hit === undefined ? undefined : sliceCandidateBatch(hit, n);
  }

  /** Fetches (country, device, trending) now and caches it; false when the fetch failed. */
  async refresh(country: string, device: string, trending: boolean): Promise<boolean> {
    try {
      await this.#cache.fetch(cacheKey(country, device, trending), { forceRefresh: true });
      return true;
    } catch {
      return false;
    }
  }

  /** Fills the global popular and trending lists (call at coordinator start). */
  async warm(): Promise<void> {
    await Promise.all([false, true].map((t) => this.#cache.fetch(cacheKey(GLOBAL.country, GLOBAL.device, t)).catch(() => undefined)));
  }

  stats(): { entries: number; fetches: number; failures: number } {
    return { entries: this.#cache.size, fetches: this.#fetches, failures: this.#failures };
  }

  async #fetch(key: string): Promise<CandidateBatchMsg> {
    const [country = '', device = '', trending = '0'] = key.split('\u0000');
    this.#fetches++;
    try {
      const msg = await this.#nc.request(
        this.#subject,
        Codecs.popularRequest.encode({ country, device, n: this.#fetchSize, trending: trending === '1' }),
        { timeout: this.#timeoutMs },
      );
      const reply = Codecs.candidateBatchReply.decode(msg.data);
      if (reply.status && reply.status.code !== 0) throw UpnextError.fromStatus(reply.status);
      return reply.candidates ?? emptyCandidateBatch();
    } catch (err) {
      this.#failures++;
      throw err;
    }
  }
}

/** Default age after which a cached list is refreshed, ms. */
export const POPULAR_CACHE_TTL_MS = 5000;

/** Key of one cached list: the raw (country, device) and which list. */
export function cacheKey(country: string, device: string, trending: boolean): string {
  // The raw country/device travel in the key (the popular actor normalises them); NUL separates.
  return `${country}\u0000${device}\u0000${trending ? 1 : 0}`;
}

/** The first `n` candidates of a batch (the batch itself when it holds no more). */
export function sliceCandidateBatch(b: CandidateBatchMsg, n: number): CandidateBatchMsg {
  if (b.videoIds.length <= n) return b;
  return {
    videoIds: b.videoIds.slice(0, n),
    scores: b.scores.slice(0, n),
    creatorIds: b.creatorIds.slice(0, n),
    categories: b.categories.slice(0, n),
    durationS: b.durationS.slice(0, n),
    uploadTsMs: b.uploadTsMs.slice(0, n),
    impressions: b.impressions.slice(0, n),
    clicks: b.clicks.slice(0, n),
    watches: b.watches.slice(0, n),
    watchRatioSums: b.watchRatioSums.slice(0, n),
  };
}
