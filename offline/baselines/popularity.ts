/**
 * Popularity baseline: videos ranked by time-decayed click count over the training days, globally
 * or per (country, device) segment (falling back to global when a segment is thin).
 */
import { EventType } from '../../core/events.js';
import { readEventBatches, readWorldManifest } from '../world/reader.js';
import { DAY_MS } from '../world/format.js';

/** Options of {@link PopularityRecommender.fit}. */
export interface PopularityOptions {
  /** Days to count. Default the manifest's trainDays. */
  readonly days?: readonly number[];
  /** Half-life of a click's weight, days. Default 2. Infinity = plain counts. */
  readonly halfLifeDays?: number;
  /** Keep per-(country, device) lists. Default false. */
  readonly bySegment?: boolean;
}

function segmentKey(country: string, device: string): string {
  return `${country}|${device}`;
}

function rank(scores: Map<number, number>): number[] {
  return [...scores.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([id]) => id);
}

/** A fitted popularity ranking. */
export class PopularityRecommender {
  /** All clicked videos, most popular first (ties by id). */
  readonly ranking: readonly number[];
  readonly #segments: Map<string, readonly number[]>;
  readonly #userSegment: Map<number, string>;

  private constructor(ranking: number[], segments: Map<string, number[]>, userSegment: Map<number, string>) {
    this.ranking = ranking;
    this.#segments = segments;
    this.#userSegment = userSegment;
  }

  /** Counts clicks in a world's training days. */
  static async fit(dir: string, opts: PopularityOptions = {}): Promise<PopularityRecommender> {
    const m = await readWorldManifest(dir);
    const days = opts.days ?? m.split.trainDays;
    const halfLifeMs = (opts.halfLifeDays ?? 2) * DAY_MS;
    const endMs = m.startMs + (Math.max(...days, -1) + 1) * DAY_MS;
    const global = new Map<number, number>();
    const segments = new Map<string, Map<number, number>>();
    const userSegment = new Map<number, string>();
    for await (const batch of readEventBatches(dir, { days })) {
      for (const e of batch) {
        if (opts.bySegment === true) userSegment.set(e.userId, segmentKey(e.context.country, e.context.device));
        if (e.type !== EventType.CLICK) continue;
        const w = Number.isFinite(halfLifeMs) ? Math.pow(0.5, (endMs - e.tsMs) / halfLifeMs) : 1;
        global.set(e.videoId, (global.get(e.videoId) ?? 0) + w);
        if (opts.bySegment === true) {
          const key = segmentKey(e.context.country, e.context.device);
          let s = segments.get(key);
          if (s === undefined) segments.set(key, (s = new Map()));
          s.set(e.videoId, (s.get(e.videoId) ?? 0) + w);
        }
      }
    }
    const ranked = new Map<string, number[]>();
    for (const [key, s] of segments) ranked.set(key, rank(s));
    return new PopularityRecommender(rank(global), ranked, userSegment);
  }

  /**
   * Top `k` videos not in `exclude`: the user's segment list first (when fitted by segment and the
   * user was seen), then the global list.
   */
  recommend(userId: number, k: number, exclude: ReadonlySet<number> = new Set()): number[] {
    const out: number[] = [];
    const taken = new Set<number>();
    const seg = this.#userSegment.get(userId);
    const lists = seg === undefined ? [this.ranking] : [this.#segments.get(seg) ?? [], this.ranking];
    for (const list of lists) {
      for (const id of list) {
        if (out.length >= k) return out;
        if (exclude.has(id) || taken.has(id)) continue;
        taken.add(id);
        out.push(id);
      }
    }
    return out;
  }
}
