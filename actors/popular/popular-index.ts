/**
 * Popular and trending lists (DESIGN §2), pure: no clock reads, no I/O. Every count is an
 * exponentially decayed sum of engagements (a CLICK, or a WATCH of more than 0 s, weighs 1), kept
 * per video for the global list and for each (country, device) pair:
 *
 * - popular  = the slow counter (half-life `popularHalfLifeMs`, default 24 h);
 * - trending = growth × support × freshness, where growth = (fast + 1) / (slow·Hf/Hs + 1) compares
 *   the fast counter (half-life `trendingHalfLifeMs`, default 1 h) with what the long-run rate
 *   predicts for that window (1 for a steady video, up to Hs/Hf for a brand-new burst),
 *   support = log1p(fast) keeps three stray clicks from topping the list, and freshness
 *   = 1 + exp(-age / freshnessMs) favours new uploads (cold start, exploration).
 *
 * Two counters and a timestamp per (key, video): O(1) memory per active video, no time buckets.
 */
import type { InteractionEvent } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import { deviceIndex } from '../../core/features/context.js';
import { DEVICES } from '../../core/events.js';
import type { ItemFeatures, ItemMeta, ItemStats } from '../../core/features/item.js';
import { applyEventToItem, emptyItemStats } from '../../core/features/item.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';
import { emptyCandidateBatch, pushCandidate } from '../../protos/convert.js';

/** Options of {@link PopularIndex} (all optional). */
export interface PopularIndexOptions {
  /** Half-life of the popular counter. Default 86400000 (24 h). */
  readonly popularHalfLifeMs?: number;
  /** Half-life of the trending (recent) counter. Default 3600000 (1 h). */
  readonly trendingHalfLifeMs?: number;
  /** Age scale of the new-video boost. Default 172800000 (48 h). */
  readonly freshnessMs?: number;
  /** Entries kept per list at refresh. Default 500. */
  readonly listSize?: number;
  /** Smallest recent (fast) count for a video to be trending. Default 2. */
  readonly minTrendingCount?: number;
}

/** {@link PopularIndexOptions} with defaults filled in. */
export interface ResolvedPopularIndexOptions {
  readonly popularHalfLifeMs: number;
  readonly trendingHalfLifeMs: number;
  readonly freshnessMs: number;
  readonly listSize: number;
  readonly minTrendingCount: number;
}

/** Defaults, then validation (TypeError naming the option). */
export function resolvePopularIndexOptions(o: PopularIndexOptions = {}): ResolvedPopularIndexOptions {
  const r = {
    popularHalfLifeMs: o.popularHalfLifeMs ?? 86_400_000,
    trendingHalfLifeMs: o.trendingHalfLifeMs ?? 3_600_000,
    freshnessMs: o.freshnessMs ?? 172_800_000,
    listSize: o.listSize ?? 500,
    minTrendingCount: o.minTrendingCount ?? 2,
  };
  for (const [k, v] of Object.entries(r)) {
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new TypeError(`option popular.${k} must be a positive number, got ${String(v)}`);
  }
  if (!Number.isInteger(r.listSize)) throw new TypeError(`option popular.listSize must be an integer, got ${r.listSize}`);
  if (r.trendingHalfLifeMs >= r.popularHalfLifeMs) throw new TypeError('option popular.trendingHalfLifeMs must be < popularHalfLifeMs');
  return r;
}

/** The key of the global list. */
export const GLOBAL_KEY = '*';

/** List key of a (country, device) pair; unknown devices map to "unknown", countries upper-cased. */
export function listKey(country: string, device: string): string {
  return `${country.toUpperCase()}|${DEVICES[deviceIndex(device)] ?? 'unknown'}`;
}

interface Counter {
  slow: number;
  fast: number;
  atMs: number;
}

/** One materialised list: video ids and their scores, best first. */
export interface RankedList {
  readonly videoIds: readonly number[];
  readonly scores: readonly number[];
}

/** Counters and materialised lists (see the module comment). */
export class PopularIndex {
  readonly options: ResolvedPopularIndexOptions;
  readonly #counters = new Map<string, Map<number, Counter>>();
  readonly #items = new Map<number, ItemMeta & ItemStats>();
  #popular = new Map<string, RankedList>();
  #trending = new Map<string, RankedList>();
  #watermarkMs = 0;
  #refreshedAtMs = 0;

  constructor(options: PopularIndexOptions = {}) {
    this.options = resolvePopularIndexOptions(options);
  }

  /** Registers (or updates) a video's metadata; its counters are kept. */
  setItem(meta: ItemMeta): void {
    const old = this.#items.get(meta.videoId);
    this.#items.set(meta.videoId, { ...(old ?? emptyItemStats()), ...meta });
  }

  /** Latest event time applied (epoch ms): the "now" of event-time refreshes. */
  get watermarkMs(): number {
    return this.#watermarkMs;
  }

  get refreshedAtMs(): number {
    return this.#refreshedAtMs;
  }

  /** Applies one interaction: item counters always, list counters for engagements. */
  applyEvent(e: InteractionEvent): void {
    this.#watermarkMs = Math.max(this.#watermarkMs, e.tsMs);
    const item = this.#items.get(e.videoId);
    if (item !== undefined) applyEventToItem(item, e, item.durationS);
    const engaged = e.type === EventType.CLICK || (e.type === EventType.WATCH && e.watchSeconds > 0);
    if (!engaged) return;
    this.#bump(GLOBAL_KEY, e.videoId, e.tsMs);
    this.#bump(listKey(e.context.country, e.context.device), e.videoId, e.tsMs);
  }

  /** Recomputes every list as of `nowMs` (event time or wall time; see popular.ts). */
  refresh(nowMs: number): void {
    const o = this.options;
    const ratio = o.trendingHalfLifeMs / o.popularHalfLifeMs;
    const popular = new Map<string, RankedList>();
    const trending = new Map<string, RankedList>();
    for (const [key, counters] of this.#counters) {
      const pop: [number, number][] = [];
      const trend: [number, number][] = [];
      for (const [videoId, c] of counters) {
        const dt = Math.max(0, nowMs - c.atMs);
        const slow = c.slow * Math.pow(0.5, dt / o.popularHalfLifeMs);
        const fast = c.fast * Math.pow(0.5, dt / o.trendingHalfLifeMs);
        pop.push([videoId, slow]);
        if (fast >= o.minTrendingCount) {
          const growth = (fast + 1) / (slow * ratio + 1);
          const upload = this.#items.get(videoId)?.uploadTsMs ?? 0;
          const age = Math.max(0, nowMs - upload);
          const freshness = upload > 0 ? 1 + Math.exp(-age / o.freshnessMs) : 1;
          trend.push([videoId, growth * Math.log1p(fast) * freshness]);
        }
      }
      popular.set(key, topN(pop, o.listSize));
      trending.set(key, topN(trend, o.listSize));
    }
    this.#popular = popular;
    this.#trending = trending;
    this.#refreshedAtMs = nowMs;
  }

  /** The materialised list of a key (as of the last refresh), or undefined. */
  list(key: string, trending: boolean): RankedList | undefined {
    return (trending ? this.#trending : this.#popular).get(key);
  }

  /**
   * Up to `n` candidates for (country, device): that pair's list, topped up from the global list
   * (no duplicates) when it is short or absent. Country "" with device "" asks for the global list.
   * Items carry their features for ranking.
   */
  candidates(country: string, device: string, n: number, trending: boolean): CandidateBatchMsg {
    const batch = emptyCandidateBatch();
    const seen = new Set<number>();
    const keys = country === '' && device === '' ? [GLOBAL_KEY] : [listKey(country, device), GLOBAL_KEY];
    for (const key of keys) {
      const l = this.list(key, trending);
      if (l === undefined) continue;
      for (let i = 0; i < l.videoIds.length && batch.videoIds.length < n; i++) {
        const id = l.videoIds[i] ?? 0;
        if (seen.has(id)) continue;
        seen.add(id);
        pushCandidate(batch, this.#features(id), l.scores[i] ?? 0);
      }
      if (batch.videoIds.length >= n) break;
    }
    return batch;
  }

  /** Counted (key, video) pairs, for memory stats. */
  get counterEntries(): number {
    let n = 0;
    for (const m of this.#counters.values()) n += m.size;
    return n;
  }

  get items(): number {
    return this.#items.size;
  }

  #features(videoId: number): ItemFeatures {
    return this.#items.get(videoId) ?? { videoId, creatorId: 0, category: 0, durationS: 0, uploadTsMs: 0, ...emptyItemStats() };
  }

  #bump(key: string, videoId: number, tsMs: number): void {
    let m = this.#counters.get(key);
    if (m === undefined) {
      m = new Map();
      this.#counters.set(key, m);
    }
    const c = m.get(videoId);
    const o = this.options;
    if (c === undefined) {
      m.set(videoId, { slow: 1, fast: 1, atMs: tsMs });
    } else if (tsMs >= c.atMs) {
      const dt = tsMs - c.atMs;
      c.slow = c.slow * Math.pow(0.5, dt / o.popularHalfLifeMs) + 1;
      c.fast = c.fast * Math.pow(0.5, dt / o.trendingHalfLifeMs) + 1;
      c.atMs = tsMs;
    } else {
      // A late event: add its weight as it has decayed by the counter's time.
      const dt = c.atMs - tsMs;
      c.slow += Math.pow(0.5, dt / o.popularHalfLifeMs);
      c.fast += Math.pow(0.5, dt / o.trendingHalfLifeMs);
    }
  }
}

function topN(entries: [number, number][], n: number): RankedList {
  // Ties break on the smaller video id so lists are deterministic.
  entries.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const top = entries.slice(0, n);
  return { videoIds: top.map((e) => e[0]), scores: top.map((e) => e[1]) };
}
