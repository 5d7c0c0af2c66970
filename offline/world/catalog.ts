/**
 * The synthetic video catalogue: creators and videos held as typed arrays (≈ 40 B per video, so
 * 10M videos fit in ~400 MB), plus the samplers the logging policy draws feeds from. Video ids are
 * 1..N in upload order, so "videos uploaded in [a, b]" is a contiguous id range.
 */
import { SeededRng } from '../../core/clock.js';
import { hashId } from '../../core/hash.js';
import type { VideoRecord } from './format.js';
import { DAY_MS } from './format.js';

/** Tags per category; tag id = category · TAGS_PER_CATEGORY + j (sub-genres). */
export const TAGS_PER_CATEGORY = 8;

/** Catalogue shape; see GenerateOptions for meanings and defaults. */
export interface CatalogOptions {
  readonly seed: number;
  readonly numVideos: number;
  readonly numCreators: number;
  readonly numCategories: number;
  readonly days: number;
  readonly startMs: number;
  /** Share of videos uploaded during the simulated days (cold start). */
  readonly newVideoShare: number;
  /** Share of clickbait videos. */
  readonly clickbaitShare: number;
  /** Zipf exponent of video popularity. */
  readonly zipfExponent: number;
}

/** Days of back catalogue before day 0 over which older videos are spread. */
const BACK_CATALOGUE_DAYS = 180;
/** Share of new videos that burst (trend) for ~2 days after upload. */
const TRENDING_SHARE = 0.03;

/** Cumulative weights over a list of video ids, for O(log n) weighted draws. */
class WeightedList {
  readonly ids: Int32Array;
  readonly cum: Float64Array;
  constructor(ids: Int32Array, weights: Float64Array) {
    this.ids = ids;
    this.cum = new Float64Array(ids.length);
    let s = 0;
    for (let i = 0; i < ids.length; i++) {
      s += weights[i] ?? 0;
      this.cum[i] = s;
    }
  }
  get size(): number {
    return this.ids.length;
  }
  /** A video id drawn by weight, or -1 when empty. */
  draw(u: number): number {
    const n = this.cum.length;
    if (n === 0) return -1;
    const target = u * (this.cum[n - 1] ?? 0);
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.cum[mid] ?? 0) <= target) lo = mid + 1;
      else hi = mid;
    }
    return this.ids[lo] ?? -1;
  }
}

/** Groups ids 1..N by a key in [0, groups) and builds one weighted list per group. */
function groupLists(n: number, groups: number, keyOf: (id: number) => number, weightOf: (id: number) => number): WeightedList[] {
  const counts = new Int32Array(groups);
  for (let id = 1; id <= n; id++) {
    const k = keyOf(id);
    if (k >= 0) counts[k] = (counts[k] ?? 0) + 1;
  }
  const ids = Array.from({ length: groups }, (_, g) => new Int32Array(counts[g] ?? 0));
  const weights = Array.from({ length: groups }, (_, g) => new Float64Array(counts[g] ?? 0));
  const fill = new Int32Array(groups);
  for (let id = 1; id <= n; id++) {
    const k = keyOf(id);
    if (k < 0) continue;
    const at = fill[k] ?? 0;
    fill[k] = at + 1;
    (ids[k] as Int32Array)[at] = id;
    (weights[k] as Float64Array)[at] = weightOf(id);
  }
  return ids.map((list, g) => new WeightedList(list, weights[g] as Float64Array));
}

/** Creators and videos of one synthetic world. Arrays are indexed by id (index 0 unused). */
export class Catalog {
  readonly numVideos: number;
  readonly numCreators: number;
  readonly numCategories: number;
  readonly numTags: number;
  /** Per video. */
  readonly creator: Int32Array;
  readonly category: Uint8Array;
  /** Primary tag (always in the video's category). */
  readonly tag1: Int16Array;
  /** Secondary tag or -1. */
  readonly tag2: Int16Array;
  readonly durationS: Float32Array;
  readonly uploadTsMs: Float64Array;
  /** Latent quality in [0, 1]. */
  readonly quality: Float32Array;
  readonly clickbait: Uint8Array;
  /** 1 for videos that trend for ~2 days after upload. */
  readonly trending: Uint8Array;
  /** Zipf popularity weight (rank r → (r+1)^-α). */
  readonly popularity: Float32Array;
  /** Per creator: home category. */
  readonly creatorCategory: Int32Array;
  /** Creators grouped by home category, for choosing favourite creators. */
  readonly creatorsByCategory: Int32Array[];
  /** Popularity-weighted draws over the whole catalogue, per category (flatter), per tag (flatter). */
  readonly globalList: WeightedList;
  readonly categoryLists: WeightedList[];
  readonly tagLists: WeightedList[];
  /** Videos of each creator (uniform draws). */
  readonly creatorVideos: Int32Array[];
  /** Ids of trending videos, ascending (so ascending upload time). */
  readonly trendingIds: Int32Array;
  /** Category draw weights (some genres are bigger than others). */
  readonly categoryWeights: Float64Array;

  constructor(o: CatalogOptions) {
    const n = o.numVideos;
    const c = o.numCreators;
    const k = o.numCategories;
    this.numVideos = n;
    this.numCreators = c;
    this.numCategories = k;
    this.numTags = k * TAGS_PER_CATEGORY;
    const rng = new SeededRng(hashId(o.seed, 0xca7a1065));

    this.categoryWeights = new Float64Array(k);
    for (let i = 0; i < k; i++) this.categoryWeights[i] = 1 / Math.pow(i + 2, 0.7);
    const catList = new WeightedList(Int32Array.from({ length: k }, (_, i) => i), this.categoryWeights);

    // Creators: a home category and a base quality; productivity is Zipf-like (a few prolific).
    this.creatorCategory = new Int32Array(c + 1);
    const creatorQuality = new Float32Array(c + 1);
    const creatorWeight = new Float64Array(c);
    for (let i = 1; i <= c; i++) {
      this.creatorCategory[i] = catList.draw(rng.next());
      creatorQuality[i] = rng.normal();
      creatorWeight[i - 1] = 1 / Math.pow(i, 0.6);
    }
    const creatorList = new WeightedList(Int32Array.from({ length: c }, (_, i) => i + 1), creatorWeight);

    this.creator = new Int32Array(n + 1);
    this.category = new Uint8Array(n + 1);
    this.tag1 = new Int16Array(n + 1);
    this.tag2 = new Int16Array(n + 1);
    this.durationS = new Float32Array(n + 1);
    this.uploadTsMs = new Float64Array(n + 1);
    this.quality = new Float32Array(n + 1);
    this.clickbait = new Uint8Array(n + 1);
    this.trending = new Uint8Array(n + 1);
    this.popularity = new Float32Array(n + 1);

    // Upload times: sorted so ids follow upload order. Back catalogue spread (denser recently),
    // the rest a steady flow over the simulated days.
    const uploads = new Float64Array(n);
    const newCount = Math.round(n * o.newVideoShare);
    const spanMs = o.days * DAY_MS;
    for (let i = 0; i < n; i++) {
      if (i < n - newCount) {
        const ageDays = BACK_CATALOGUE_DAYS * Math.pow(rng.next(), 1.5);
        uploads[i] = Math.floor(o.startMs - ageDays * DAY_MS - 1);
      } else {
        uploads[i] = Math.floor(o.startMs + rng.next() * spanMs);
      }
    }
    uploads.sort();

    // Popularity ranks: a random permutation (Zipf weight by rank).
    const rank = new Uint32Array(n);
    for (let i = 0; i < n; i++) rank[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = rank[i] as number;
      rank[i] = rank[j] as number;
      rank[j] = t;
    }

    for (let id = 1; id <= n; id++) {
      const cr = creatorList.draw(rng.next());
      this.creator[id] = cr;
      const cat = rng.next() < 0.8 ? (this.creatorCategory[cr] as number) : catList.draw(rng.next());
      this.category[id] = cat;
      this.tag1[id] = cat * TAGS_PER_CATEGORY + rng.int(TAGS_PER_CATEGORY);
      this.tag2[id] = rng.next() < 0.5 ? cat * TAGS_PER_CATEGORY + rng.int(TAGS_PER_CATEGORY) : -1;
      if (this.tag2[id] === this.tag1[id]) this.tag2[id] = -1;
      // Log-normal duration, median ~75 s, clamped to 5 s .. 1 h, whole seconds.
      this.durationS[id] = Math.round(Math.min(3600, Math.max(5, Math.exp(Math.log(75) + 1.1 * rng.normal()))));
      this.uploadTsMs[id] = uploads[id - 1] as number;
      const r = rank[id - 1] as number;
      this.popularity[id] = 1 / Math.pow(r + 1, o.zipfExponent);
      // Quality: creator's base, noise, and a mild lift for popular videos (popular tends to be good).
      const q = 0.35 * (creatorQuality[cr] as number) + 0.6 * rng.normal() + 0.5 * (0.5 - r / n);
      this.quality[id] = 1 / (1 + Math.exp(-q));
      this.clickbait[id] = rng.next() < o.clickbaitShare ? 1 : 0;
      this.trending[id] = (uploads[id - 1] as number) >= o.startMs && rng.next() < TRENDING_SHARE ? 1 : 0;
    }

    const pop = this.popularity;
    this.globalList = new WeightedList(Int32Array.from({ length: n }, (_, i) => i + 1), Float64Array.from({ length: n }, (_, i) => pop[i + 1] ?? 0));
    // Interest-driven draws are flatter than global popularity: niche videos reach the people who like them.
    this.categoryLists = groupLists(n, k, (id) => this.category[id] ?? -1, (id) => Math.pow(pop[id] ?? 0, 0.8));
    this.tagLists = groupLists(n, this.numTags, (id) => this.tag1[id] ?? -1, (id) => Math.pow(pop[id] ?? 0, 0.7));
    const byCreator = groupLists(n, c + 1, (id) => this.creator[id] ?? -1, () => 1);
    this.creatorVideos = byCreator.map((l) => l.ids);
    this.creatorsByCategory = groupLists(c, k, (cr) => this.creatorCategory[cr] ?? -1, () => 1).map((l) => l.ids);
    const trendingIds: number[] = [];
    for (let id = 1; id <= n; id++) if (this.trending[id] === 1) trendingIds.push(id);
    this.trendingIds = Int32Array.from(trendingIds);
  }

  /** True when video `id` is uploaded by `tsMs`. */
  available(id: number, tsMs: number): boolean {
    return id > 0 && (this.uploadTsMs[id] ?? Infinity) <= tsMs;
  }

  /** Largest id uploaded at or before `tsMs` (0 when none): ids follow upload order. */
  lastIdAt(tsMs: number): number {
    let lo = 0;
    let hi = this.numVideos;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.uploadTsMs[mid] ?? Infinity) <= tsMs) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The public record of video `id`. */
  record(id: number): VideoRecord {
    const t2 = this.tag2[id] ?? -1;
    return {
      videoId: id,
      creatorId: this.creator[id] ?? 0,
      category: this.category[id] ?? 0,
      durationS: this.durationS[id] ?? 0,
      uploadTsMs: this.uploadTsMs[id] ?? 0,
      tags: t2 >= 0 ? [this.tag1[id] ?? 0, t2] : [this.tag1[id] ?? 0],
      clickbait: this.clickbait[id] === 1,
      quality: Math.round((this.quality[id] ?? 0) * 1000) / 1000,
    };
  }
}

export type { WeightedList };
