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
 * Two counters and a timestamp per (key, video): O(1) memory per active video, no time buckets. They
 * and the item counters live in typed-array tables ({@link IdTable}), not in Maps of objects, so
 * millions of entries neither fill the coordinator's JS heap nor lengthen its GC pauses.
 *
 * Items: catalogue metadata comes from a shared, compact {@link ItemCatalogue} when one is given
 * (the node's, catalogue-cache.ts) plus a small Map of videos registered through setItem; counters
 * (ItemStats) are kept only for videos that had events. A Map of a full object per catalogue video
 * cost ~1.2 GB of RSS on the 1M-video local world.
 *
 * Refresh cost does not grow with the counted entries (it was O(entries), ~80 ms every 5 s on the
 * coordinator's thread at 1M videos, and grows with the corpus):
 * - popular: every counter decays at the same rate, so time alone never reorders two of them; only a
 *   bump does, and only upwards. Each list's best `listSize` videos are therefore kept up to date
 *   on every bump ({@link IncrementalTop}, O(log listSize)), and a refresh only prices and sorts them;
 * - trending: a video's recent count only falls between its bumps, so a video below
 *   `minTrendingCount` at one pass stays below until it is bumped again. A pass scans only the
 *   videos that qualified at the last pass plus those bumped since (a full scan when "now" moves
 *   backwards).
 * {@link PopularIndex.refreshSteps} still does the work in slices so a caller on a busy event loop can
 * yield between them (popular.ts); a pass begun while another is suspended supersedes it, and rows
 * the older pass had taken are scanned by the newer. The result equals a full sort of every counted
 * entry's first `listSize` (same scores, same order, ties on the smaller id) as long as no event is
 * newer than "now" (always so with the event-time base; see {@link IncrementalTop} for the clock
 * base). The heap keeps {@link SPARE_MEMBERS} more than `listSize`, so rank keys and prices that
 * round differently (1 ulp) at the cut still cut like the full sort; counts decayed to exactly 0
 * (over ~1,000 half-lives) are the one case where the kept set may differ.
 */
import type { InteractionEvent } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import { deviceIndex } from '../../core/features/context.js';
import { DEVICES } from '../../core/events.js';
import type { ItemFeatures, ItemMeta, ItemStats } from '../../core/features/item.js';
import { applyEventToItem } from '../../core/features/item.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';
import type { ItemCatalogue } from '../user-state/catalogue.js';
import { IdTable } from '../../core/id-table.js';
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

/** A list key's counter columns: decayed popular and recent counts, as of `atMs`. */
type CounterColumn = 'slow' | 'fast' | 'atMs';
const COUNTER_COLUMNS: readonly CounterColumn[] = ['slow', 'fast', 'atMs'];
/** The item counters ({@link ItemStats}) of videos that had events. */
const STATS_COLUMNS: readonly (keyof ItemStats)[] = ['impressions', 'clicks', 'watches', 'watchRatioSum'];

/** One list key's counters and the state that keeps its refresh proportional to its activity. */
interface KeyState {
  readonly counters: IdTable<CounterColumn>;
  /** The best `listSize` videos by popular count, maintained on every bump. */
  readonly popular: IncrementalTop;
  /**
   * Rows (in `counters`) bumped since a trending pass last took them; undefined when not tracked
   * (before this key's first pass, or after more bumps than {@link bumpedLimit}): the key's next
   * pass scans every row.
   */
  bumped: Set<number> | undefined;
  /**
   * What a pass took from `bumped` and has not finished with ('all' = a full scan): a pass that
   * runs while that one is suspended, or after it was abandoned, scans these too.
   */
  taken: Set<number> | 'all' | undefined;
  /** Rows whose recent count met `minTrendingCount` at the last trending pass. */
  trendingPool: readonly number[];
}

/** Popular heap members kept beyond `listSize`, so float near-ties at the cut resolve as in a full sort. */
export const SPARE_MEMBERS = 8;

/** Past this many tracked bumps a key's next pass scans every row (a replay after start, a burst). */
function bumpedLimit(rows: number): number {
  return Math.max(4096, rows >> 2);
}

/** One materialised list: video ids and their scores, best first. */
export interface RankedList {
  readonly videoIds: readonly number[];
  readonly scores: readonly number[];
}

/** Counters and materialised lists (see the module comment). */
export class PopularIndex {
  readonly options: ResolvedPopularIndexOptions;
  readonly #keys = new Map<string, KeyState>();
  readonly #catalogue: ItemCatalogue | undefined;
  /** Videos registered through setItem (checked before the catalogue). */
  readonly #meta = new Map<number, ItemMeta>();
  /** Counters of known videos that had events. */
  readonly #stats = new IdTable<keyof ItemStats>(STATS_COLUMNS, 1024);
  /** applyEventToItem's operand (the one feature definition works on an ItemStats object). */
  readonly #scratch: ItemStats = { impressions: 0, clicks: 0, watchRatioSum: 0, watches: 0 };
  #popular = new Map<string, RankedList>();
  #trending = new Map<string, RankedList>();
  #watermarkMs = 0;
  #refreshedAtMs = 0;
  /** "Now" of the last completed trending pass; NaN before the first (forces a full scan). */
  #lastPassNowMs = Number.NaN;
  #lastRefreshScanned = 0;
  /** Generation of the latest pass begun: an older pass that resumes after it stops unwritten. */
  #passGeneration = 0;

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
      const t = this.#stats;
      const row = t.insert(e.videoId);
      const s = this.#scratch;
      for (const k of STATS_COLUMNS) s[k] = t.column(k)[row] as number;
      applyEventToItem(s, e, item.durationS);
      for (const k of STATS_COLUMNS) t.column(k)[row] = s[k];
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
   * or may not be seen by this pass (the next one sees them). A pass begun while this one is
   * suspended supersedes it: this one then ends at its next step without writing anything.
   */
  *refreshSteps(nowMs: number, sliceEntries = 2048): Generator<void, void, void> {
    const generation = ++this.#passGeneration;
    const o = this.options;
    const ratio = o.trendingHalfLifeMs / o.popularHalfLifeMs;
    const popular = new Map<string, RankedList>();
    const trending = new Map<string, RankedList>();
    const trend = new BoundedTop(o.listSize);
    // A video dropped from a trending pool can only qualify again through a bump while "now" moves
    // forward; when it moves back, every counted video is a candidate again.
    const backwards = !(nowMs >= this.#lastPassNowMs);
    let budget = sliceEntries;
    let scanned = 0;
    for (const [key, state] of this.#keys) {
      const { counters } = state;
      // popular: price and sort the kept videos, cut to listSize.
      const ids = state.popular.members();
      const slowAt = counters.column('slow');
      const atAt = counters.column('atMs');
      const scores = new Array<number>(ids.length);
      for (let i = 0; i < ids.length; i++) {
        const row = counters.rowOf(ids[i] as number);
        scores[i] = (slowAt[row] as number) * Math.pow(0.5, Math.max(0, nowMs - (atAt[row] as number)) / o.popularHalfLifeMs);
      }
      popular.set(key, rankedOf(ids, scores, o.listSize));
      scanned += ids.length;
      budget -= ids.length;
      if (budget <= 0) {
        budget = sliceEntries;
        yield;
        if (generation !== this.#passGeneration) return;
      }
      // trending: the last pass's qualifiers, the rows bumped since and any a superseded pass took.
      // Bumps that land while this generator is suspended go to the fresh set: the next pass's.
      const full = backwards || state.bumped === undefined || state.taken === 'all';
      let taken: Set<number> | 'all' = 'all';
      if (!full && state.bumped !== undefined) {
        taken = state.bumped;
        if (state.taken instanceof Set) for (const r of state.taken) taken.add(r);
      }
      state.taken = taken;
      state.bumped = new Set();
      const pool = taken === 'all' ? allRows(counters.size) : unionOf(state.trendingPool, taken);
      let slowOf = counters.column('slow');
      let fastOf = counters.column('fast');
      let atOf = counters.column('atMs');
      const qualified: number[] = [];
      trend.clear();
      for (const row of pool) {
        const dt = Math.max(0, nowMs - (atOf[row] as number));
        const fast = (fastOf[row] as number) * Math.pow(0.5, dt / o.trendingHalfLifeMs);
        if (fast >= o.minTrendingCount) {
          qualified.push(row);
          const videoId = counters.idAt(row);
          const slow = (slowOf[row] as number) * Math.pow(0.5, dt / o.popularHalfLifeMs);
          const growth = (fast + 1) / (slow * ratio + 1);
          const upload = this.#uploadTsMs(videoId);
          const age = Math.max(0, nowMs - upload);
          const freshness = upload > 0 ? 1 + Math.exp(-age / o.freshnessMs) : 1;
          trend.offer(videoId, growth * Math.log1p(fast) * freshness);
        }
        scanned++;
        if (--budget <= 0) {
          budget = sliceEntries;
          yield;
          if (generation !== this.#passGeneration) return;
          // Events applied while suspended may have grown the table (new arrays).
          slowOf = counters.column('slow');
          fastOf = counters.column('fast');
          atOf = counters.column('atMs');
        }
      }
      state.trendingPool = qualified;
      state.taken = undefined;
      trending.set(key, trend.ranked());
    }
    this.#popular = popular;
    this.#trending = trending;
    this.#refreshedAtMs = nowMs;
    this.#lastPassNowMs = nowMs;
    this.#lastRefreshScanned = scanned;
  }

  /** Entries the last completed refresh examined (kept popular videos + trending candidates). */
  get lastRefreshScanned(): number {
    return this.#lastRefreshScanned;
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
    for (const k of this.#keys.values()) n += k.counters.size;
    return n;
  }

  /** Bytes of the counter tables (list keys and items). */
  get counterBytes(): number {
    let n = this.#stats.bytes;
    for (const k of this.#keys.values()) n += k.counters.bytes;
    return n;
  }

  /** Known videos: the catalogue's plus those registered through setItem (an upper bound when they overlap). */
  get items(): number {
    return (this.#catalogue?.size ?? 0) + this.#meta.size;
  }

  #features(videoId: number): ItemFeatures {
    const meta = this.#itemMeta(videoId) ?? { videoId, creatorId: 0, category: 0, durationS: 0, uploadTsMs: 0 };
    const t = this.#stats;
    const row = t.rowOf(videoId);
    const stat = (k: keyof ItemStats): number => (row < 0 ? 0 : (t.column(k)[row] as number));
    const stats: ItemStats = { impressions: stat('impressions'), clicks: stat('clicks'), watches: stat('watches'), watchRatioSum: stat('watchRatioSum') };
    return { ...meta, impressions: stats.impressions, clicks: stats.clicks, watches: stats.watches, watchRatioSum: stats.watchRatioSum };
  }

  #bump(key: string, videoId: number, tsMs: number): void {
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { counters: new IdTable(COUNTER_COLUMNS), popular: new IncrementalTop(this.options.listSize + SPARE_MEMBERS), bumped: undefined, taken: undefined, trendingPool: [] };
      this.#keys.set(key, state);
    }
    const t = state.counters;
    const o = this.options;
    const before = t.size;
    const row = t.insert(videoId);
    const slow = t.column('slow');
    const fast = t.column('fast');
    const at = t.column('atMs');
    if (t.size > before) {
      slow[row] = 1;
      fast[row] = 1;
      at[row] = tsMs;
    } else if (tsMs >= (at[row] as number)) {
      const dt = tsMs - (at[row] as number);
      slow[row] = (slow[row] as number) * Math.pow(0.5, dt / o.popularHalfLifeMs) + 1;
      fast[row] = (fast[row] as number) * Math.pow(0.5, dt / o.trendingHalfLifeMs) + 1;
      at[row] = tsMs;
    } else {
      // A late event: add its weight as it has decayed by the counter's time.
      const dt = (at[row] as number) - tsMs;
      slow[row] = (slow[row] as number) + Math.pow(0.5, dt / o.popularHalfLifeMs);
      fast[row] = (fast[row] as number) + Math.pow(0.5, dt / o.trendingHalfLifeMs);
    }
    state.popular.update(videoId, Math.log2(slow[row] as number) + (at[row] as number) / o.popularHalfLifeMs);
    // Untracked (undefined) means the next pass scans the whole key anyway: the start-up replay and
    // bursts do not fill a set as large as the table.
    if (state.bumped !== undefined) {
      state.bumped.add(row);
      if (state.bumped.size > bumpedLimit(t.size)) state.bumped = undefined;
    }
  }
}

/** Rows 0 .. n-1. */
function* allRows(n: number): Generator<number, void, void> {
  for (let r = 0; r < n; r++) yield r;
}

/** `trendingPool` then the bumped videos not already in it. */
function* unionOf(pool: readonly number[], bumped: ReadonlySet<number>): Generator<number, void, void> {
  const inPool = new Set(pool);
  yield* pool;
  for (const id of bumped) if (!inPool.has(id)) yield id;
}

/** Best first (higher score, ties on the smaller id), at most `limit`. */
function rankedOf(ids: readonly number[], scores: readonly number[], limit = ids.length): RankedList {
  const order = ids.map((id, i) => [id, scores[i] as number] as const);
  order.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const kept = order.slice(0, limit);
  return { videoIds: kept.map((e) => e[0]), scores: kept.map((e) => e[1]) };
}

/**
 * The `n` videos with the highest popular count, kept exact as counters change. A counter's value at
 * time t is slow·0.5^((t − at)/H); every counter decays by the same factor, so their order at any t
 * is the order of the time-free rank key log2(slow) + at/H (forward decay: Cormode et al., "Forward
 * Decay", ICDE 2009). Only a bump changes a key, and only upwards (a bump adds weight), so a video
 * outside the kept set can enter only when it is bumped, by beating the worst kept video: a min-heap
 * with positions, O(log n) per bump. (The rank key ignores the clamp of a refresh's price at events
 * newer than "now", which only the clock time base can see: such a video ranks by its unclamped value.)
 */
class IncrementalTop {
  readonly #n: number;
  readonly #ids: number[] = [];
  readonly #keys: number[] = [];
  readonly #pos = new Map<number, number>();

  constructor(n: number) {
    this.#n = n;
  }

  /** The kept videos, in heap order. */
  members(): readonly number[] {
    return this.#ids;
  }

  /** Sets a video's rank key (higher is better). */
  update(id: number, key: number): void {
    const at = this.#pos.get(id);
    if (at !== undefined) {
      this.#keys[at] = key;
      this.#down(this.#up(at));
      return;
    }
    if (this.#ids.length < this.#n) {
      this.#ids.push(id);
      this.#keys.push(key);
      this.#pos.set(id, this.#ids.length - 1);
      this.#up(this.#ids.length - 1);
      return;
    }
    if (!worse(this.#ids[0] as number, this.#keys[0] as number, id, key)) return;
    this.#pos.delete(this.#ids[0] as number);
    this.#ids[0] = id;
    this.#keys[0] = key;
    this.#pos.set(id, 0);
    this.#down(0);
  }

  #swap(i: number, j: number): void {
    const ids = this.#ids;
    const keys = this.#keys;
    const a = ids[i] as number;
    const ka = keys[i] as number;
    ids[i] = ids[j] as number;
    keys[i] = keys[j] as number;
    ids[j] = a;
    keys[j] = ka;
    this.#pos.set(ids[i] as number, i);
    this.#pos.set(a, j);
  }

  #up(i: number): number {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!worse(this.#ids[i] as number, this.#keys[i] as number, this.#ids[p] as number, this.#keys[p] as number)) break;
      this.#swap(i, p);
      i = p;
    }
    return i;
  }

  #down(i: number): void {
    const len = this.#ids.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= len) return;
      const r = l + 1;
      const c = r < len && worse(this.#ids[r] as number, this.#keys[r] as number, this.#ids[l] as number, this.#keys[l] as number) ? r : l;
      if (!worse(this.#ids[c] as number, this.#keys[c] as number, this.#ids[i] as number, this.#keys[i] as number)) return;
      this.#swap(i, c);
      i = c;
    }
  }
}

/** (ia, sa) ranks below (ib, sb): lower score, ties on the larger id. */
function worse(ia: number, sa: number, ib: number, sb: number): boolean {
  return sa < sb || (sa === sb && ia > ib);
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

  offer(id: number, score: number): void {
    const ids = this.#ids;
    const sc = this.#scores;
    if (ids.length < this.#n) {
      let i = ids.length;
      ids.push(id);
      sc.push(score);
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(id, score, ids[p] as number, sc[p] as number)) break;
        ids[i] = ids[p] as number;
        sc[i] = sc[p] as number;
        i = p;
      }
      ids[i] = id;
      sc[i] = score;
      return;
    }
    if (!worse(ids[0] as number, sc[0] as number, id, score)) return;
    const len = ids.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= len) break;
      const r = l + 1;
      const c = r < len && worse(ids[r] as number, sc[r] as number, ids[l] as number, sc[l] as number) ? r : l;
      if (!worse(ids[c] as number, sc[c] as number, id, score)) break;
      ids[i] = ids[c] as number;
      sc[i] = sc[c] as number;
      i = c;
    }
    ids[i] = id;
    sc[i] = score;
  }

  /** The kept pairs, best first. */
  ranked(): RankedList {
    return rankedOf(this.#ids, this.#scores);
  }
}
