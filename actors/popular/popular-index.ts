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
 *
 * Items: catalogue metadata comes from a shared, compact {@link ItemCatalogue} when one is given
 * (the node's, catalogue-cache.ts) plus a small Map of videos registered through setItem; counters
 * (ItemStats) are kept only for videos that had events. A Map of a full object per catalogue video
 * cost ~1.2 GB of RSS on the 1M-video local world.
 *
 * Refresh cost: each list keeps its best `listSize` entries in a bounded heap (O(entries · log
 * listSize)) instead of sorting every counted entry, and {@link PopularIndex.refreshSteps} does the
 * work in slices so a caller on a busy event loop can yield between them (popular.ts). The result
 * equals a full sort's first `listSize` entries exactly (same scores, same order, ties on the smaller
 * id).
 */
import type { InteractionEvent } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import { deviceIndex } from '../../core/features/context.js';
import { DEVICES } from '../../core/events.js';
import type { ItemFeatures, ItemMeta, ItemStats } from '../../core/features/item.js';
import { applyEventToItem, emptyItemStats } from '../../core/features/item.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';
import type { ItemCatalogue } from '../user-state/catalogue.js';
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
  readonly #catalogue: ItemCatalogue | undefined;
  /** Videos registered through setItem (checked before the catalogue). */
  readonly #meta = new Map<number, ItemMeta>();
  /** Counters of known videos that had events. */
  readonly #stats = new Map<number, ItemStats>();
  #popular = new Map<string, RankedList>();
  #trending = new Map<string, RankedList>();
  #watermarkMs = 0;
  #refreshedAtMs = 0;

  /** `catalogue`: metadata of the world's videos (shared, read-only); default none. */
  constructor(options: PopularIndexOptions = {}, catalogue?: ItemCatalogue) {
    this.options = resolvePopularIndexOptions(options);
    this.#catalogue = catalogue;
  }

  /** Registers (or updates) a video's metadata; its counters are kept. */
  setItem(meta: ItemMeta): void {
    this.#meta.set(meta.videoId, { videoId: meta.videoId, creatorId: meta.creatorId, category: meta.category, durationS: meta.durationS, uploadTsMs: meta.uploadTsMs });
  }

  #itemMeta(videoId: number): ItemMeta | undefined {
    return this.#meta.get(videoId) ?? this.#catalogue?.meta(videoId);
  }

  #uploadTsMs(videoId: number): number {
    const m = this.#meta.get(videoId);
    if (m !== undefined) return m.uploadTsMs;
    const c = this.#catalogue;
    if (c === undefined) return 0;
    const r = c.rowOf(videoId);
    return r < 0 ? 0 : (c.columns.uploadTsMs[r] as number);
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
    const item = this.#itemMeta(e.videoId);
    if (item !== undefined) {
      let stats = this.#stats.get(e.videoId);
      if (stats === undefined) {
        stats = emptyItemStats();
        this.#stats.set(e.videoId, stats);
      }
      applyEventToItem(stats, e, item.durationS);
    }
    const engaged = e.type === EventType.CLICK || (e.type === EventType.WATCH && e.watchSeconds > 0);
    if (!engaged) return;
    this.#bump(GLOBAL_KEY, e.videoId, e.tsMs);
    this.#bump(listKey(e.context.country, e.context.device), e.videoId, e.tsMs);
  }

  /** Recomputes every list as of `nowMs` (event time or wall time; see popular.ts). */
  refresh(nowMs: number): void {
    const steps = this.refreshSteps(nowMs);
    while (!steps.next().done);
  }

  /**
   * {@link refresh} in slices: yields after about every `sliceEntries` counted entries; the new
   * lists replace the old ones only when the generator finishes. Events applied between slices may
   * or may not be seen by this pass (the next one sees them).
   */
  *refreshSteps(nowMs: number, sliceEntries = 2048): Generator<void, void, void> {
    const o = this.options;
    const ratio = o.trendingHalfLifeMs / o.popularHalfLifeMs;
    const popular = new Map<string, RankedList>();
    const trending = new Map<string, RankedList>();
    const pop = new BoundedTop(o.listSize);
    const trend = new BoundedTop(o.listSize);
    let budget = sliceEntries;
    for (const [key, counters] of this.#counters) {
      pop.clear();
      trend.clear();
      // keys() + get() rather than entries(): no [key, value] pair allocated per entry, so fewer
      // scavenges land inside a slice.
      for (const videoId of counters.keys()) {
        const c = counters.get(videoId) as Counter;
        const dt = Math.max(0, nowMs - c.atMs);
        const slow = c.slow * Math.pow(0.5, dt / o.popularHalfLifeMs);
        const fast = c.fast * Math.pow(0.5, dt / o.trendingHalfLifeMs);
        pop.offer(videoId, slow);
        if (fast >= o.minTrendingCount) {
          const growth = (fast + 1) / (slow * ratio + 1);
          const upload = this.#uploadTsMs(videoId);
          const age = Math.max(0, nowMs - upload);
          const freshness = upload > 0 ? 1 + Math.exp(-age / o.freshnessMs) : 1;
          trend.offer(videoId, growth * Math.log1p(fast) * freshness);
        }
        if (--budget <= 0) {
          budget = sliceEntries;
          yield;
        }
      }
      popular.set(key, pop.ranked());
      trending.set(key, trend.ranked());
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

  /** Known videos: the catalogue's plus those registered through setItem (an upper bound when they overlap). */
  get items(): number {
    return (this.#catalogue?.size ?? 0) + this.#meta.size;
  }

  #features(videoId: number): ItemFeatures {
    const meta = this.#itemMeta(videoId) ?? { videoId, creatorId: 0, category: 0, durationS: 0, uploadTsMs: 0 };
    const stats = this.#stats.get(videoId) ?? emptyItemStats();
    return { ...meta, impressions: stats.impressions, clicks: stats.clicks, watches: stats.watches, watchRatioSum: stats.watchRatioSum };
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

/**
 * The best `n` (video, score) pairs seen, best = higher score, ties on the smaller video id: a
 * min-heap whose root is the worst kept pair, so each offer costs O(log n).
 */
class BoundedTop {
  readonly #n: number;
  #ids: number[] = [];
  #scores: number[] = [];

  constructor(n: number) {
    this.#n = n;
  }

  clear(): void {
    this.#ids = [];
    this.#scores = [];
  }

  /** a ranks below b. */
  #worse(ia: number, sa: number, ib: number, sb: number): boolean {
    return sa < sb || (sa === sb && ia > ib);
  }

  offer(id: number, score: number): void {
    const ids = this.#ids;
    const sc = this.#scores;
    if (ids.length < this.#n) {
      let i = ids.length;
      ids.push(id);
      sc.push(score);
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.#worse(id, score, ids[p] as number, sc[p] as number)) break;
        ids[i] = ids[p] as number;
        sc[i] = sc[p] as number;
        i = p;
      }
      ids[i] = id;
      sc[i] = score;
      return;
    }
    if (!this.#worse(ids[0] as number, sc[0] as number, id, score)) return;
    const len = ids.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= len) break;
      const r = l + 1;
      const c = r < len && this.#worse(ids[r] as number, sc[r] as number, ids[l] as number, sc[l] as number) ? r : l;
      if (!this.#worse(ids[c] as number, sc[c] as number, id, score)) break;
      ids[i] = ids[c] as number;
      sc[i] = sc[c] as number;
      i = c;
    }
    ids[i] = id;
    sc[i] = score;
  }

  /** The kept pairs, best first. */
  ranked(): RankedList {
    const order = this.#ids.map((id, i) => [id, this.#scores[i] as number] as const);
    order.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    return { videoIds: order.map((e) => e[0]), scores: order.map((e) => e[1]) };
  }
}
