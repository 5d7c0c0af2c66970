/**
 * One feed session: the logging policy that fills the feed (not random: a popularity / interest /
 * creator / freshness mix) and the user's response to each slot (click, watch, like, skip).
 *
 * The response model is built so that the signals a recommender must learn are present and
 * separable:
 * - clicks follow category interest, clickbait appeal and position (examination bias);
 * - watch time follows the finer (user, item) taste — favourite sub-genre tags and creators — plus
 *   quality, and clickbait is watched briefly, so click alone does not predict watch time;
 * - device and local hour shift watch length (TV and evenings watch longer).
 */
import type { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { Catalog } from './catalog.js';
import { DAY_MS } from './format.js';
import type { SimUser } from './population.js';

/** One simulated event before it gets an id and the session's context. */
export interface SimEvent {
  readonly videoId: number;
  readonly type: EventType;
  readonly tsMs: number;
  readonly position: number;
  readonly watchSeconds: number;
}

/** Weights of the logging policy's candidate sources. */
const SOURCES = {
  interest: 0.42,
  tag: 0.14,
  creator: 0.12,
  /** Plus up to 0.15 more for mainstream users. */
  popular: 0.1,
  fresh: 0.08,
  trending: 0.05,
} as const;

/** Chance the user leaves the feed after any slot, and the extra chance after a skip. */
const LEAVE_PER_SLOT = 0.06;
const LEAVE_AFTER_SKIP = 0.12;

/** How long after upload new and trending videos are pushed, ms. */
const FRESH_WINDOW_MS = 2 * DAY_MS;

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Largest index i in ascending `ids` whose upload time is ≤ tsMs, plus one. */
function upperByUpload(ids: Int32Array, catalog: Catalog, tsMs: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((catalog.uploadTsMs[ids[mid] ?? 0] ?? Infinity) <= tsMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The logging policy: candidate videos for one feed of `length` slots at time `tsMs`. */
export function buildFeed(catalog: Catalog, user: SimUser, tsMs: number, length: number, rng: SeededRng): number[] {
  const feed: number[] = [];
  const newest = catalog.lastIdAt(tsMs);
  const freshFrom = catalog.lastIdAt(tsMs - FRESH_WINDOW_MS) + 1;
  const trendHi = upperByUpload(catalog.trendingIds, catalog, tsMs);
  const trendLo = upperByUpload(catalog.trendingIds, catalog, tsMs - FRESH_WINDOW_MS);
  const popular = SOURCES.popular + 0.15 * user.mainstream;
  const total = SOURCES.interest + SOURCES.tag + SOURCES.creator + popular + SOURCES.fresh + SOURCES.trending;
  for (let tries = 0; feed.length < length && tries < length * 4; tries++) {
    let u = rng.next() * total;
    let id = -1;
    if ((u -= SOURCES.interest) < 0) {
      const cum = user.interestCum;
      const target = rng.next() * (cum[cum.length - 1] ?? 1);
      let c = 0;
      while (c < cum.length - 1 && (cum[c] ?? 0) <= target) c++;
      id = catalog.categoryLists[c]?.draw(rng.next()) ?? -1;
    } else if ((u -= SOURCES.tag) < 0) {
      const tag = user.favTags[rng.int(user.favTags.length)];
      id = tag === undefined ? -1 : (catalog.tagLists[tag]?.draw(rng.next()) ?? -1);
    } else if ((u -= SOURCES.creator) < 0) {
      const cr = user.favCreators[rng.int(user.favCreators.length)];
      const vids = cr === undefined ? undefined : catalog.creatorVideos[cr];
      // Creator pages favour the latest uploads.
      if (vids !== undefined && vids.length > 0) {
        const hi = upperByUpload(vids, catalog, tsMs);
        id = hi > 0 ? (vids[hi - 1 - Math.floor(Math.pow(rng.next(), 2) * hi)] ?? -1) : -1;
      }
    } else if ((u -= popular) < 0) {
      id = catalog.globalList.draw(rng.next());
    } else if ((u -= SOURCES.fresh) < 0) {
      id = newest >= freshFrom ? freshFrom + rng.int(newest - freshFrom + 1) : -1;
    } else {
      id = trendHi > trendLo ? (catalog.trendingIds[trendLo + rng.int(trendHi - trendLo)] ?? -1) : -1;
    }
    if (id > 0 && catalog.available(id, tsMs) && !feed.includes(id)) feed.push(id);
  }
  return feed;
}

/** The user's latent appeal of one video (0..1 each part). */
interface Match {
  readonly category: number;
  readonly tag: number;
  readonly creator: number;
}

export function matchOf(catalog: Catalog, user: SimUser, id: number): Match {
  const t1 = catalog.tag1[id] ?? -1;
  const t2 = catalog.tag2[id] ?? -1;
  return {
    category: user.interest[catalog.category[id] ?? 0] ?? 0,
    tag: user.favTags.includes(t1) || (t2 >= 0 && user.favTags.includes(t2)) ? 1 : 0,
    creator: user.favCreators.includes(catalog.creator[id] ?? -1) ? 1 : 0,
  };
}

/**
 * The click log-odds of showing video `id` (match `m` for the user) at `position` at time `tsMs`,
 * before the per-impression noise (N(0, 0.3²) on the log-odds) that {@link respondToFeed} adds: the
 * world's true click model, so also the best any ranker could know (offline/eval/oracle.ts).
 */
export function clickLogitOf(catalog: Catalog, m: Match, id: number, tsMs: number, position: number): number {
  const q = (catalog.quality[id] ?? 0.5) - 0.5;
  const cb = catalog.clickbait[id] ?? 0;
  const trendBoost = catalog.trending[id] === 1 && tsMs - (catalog.uploadTsMs[id] ?? 0) < FRESH_WINDOW_MS ? 0.6 : 0;
  return -2.6 + 2.2 * m.category + 0.35 * m.tag + 0.5 * m.creator + 0.8 * q + 1.6 * cb + trendBoost - 0.07 * position;
}

/** Session context the response model reads. */
export interface SessionSetting {
  readonly device: string;
  readonly localHour: number;
}

/**
 * Simulates one session starting at `startMs`: the logging policy fills a feed of 10-20 slots
 * ({@link buildFeed}) and the user responds to it ({@link respondToFeed}). The RNG is consumed in
 * exactly that order (length, feed, response), which keeps generated worlds byte-identical.
 */
export function simulateSession(
  catalog: Catalog,
  user: SimUser,
  setting: SessionSetting,
  startMs: number,
  rng: SeededRng,
): SimEvent[] {
  const length = 10 + rng.int(11);
  const feed = buildFeed(catalog, user, startMs, length, rng);
  return respondToFeed(catalog, user, setting, feed, startMs, rng);
}

/**
 * The user's response to a given feed (video ids, top first) shown at `startMs` (epoch ms, the
 * world's time): the user scrolls top-down, each slot shown logs an IMPRESSION; a click leads to a
 * WATCH (seconds watched), maybe a LIKE, or a SKIP when the video is abandoned early; after each
 * slot the user may leave (6% a slot, 18% after a skip), so later slots are seen less often. Events
 * come out in non-decreasing time. Pure given `rng`: the same feed, user, setting, start and seed
 * give the same events.
 *
 * Ids outside the catalogue (not in 1..numVideos) are shown but never clicked: such a slot draws
 * only the scroll time and the leave decision.
 */
export function respondToFeed(
  catalog: Catalog,
  user: SimUser,
  setting: SessionSetting,
  feed: readonly number[],
  startMs: number,
  rng: SeededRng,
): SimEvent[] {
  const events: SimEvent[] = [];
  // Longer watches on TV and web, shorter on phones; evenings a little longer.
  const lengthPenalty = setting.device === 'tv' ? -0.15 : setting.device === 'web' ? 0.15 : 0.35;
  const evening = setting.localHour >= 19 && setting.localHour <= 23 ? 0.25 : 0;
  let t = startMs;
  for (let position = 0; position < feed.length; position++) {
    const id = feed[position] as number;
    events.push({ videoId: id, type: EventType.IMPRESSION, tsMs: t, position, watchSeconds: 0 });
    if (!(Number.isInteger(id) && id >= 1 && id <= catalog.numVideos)) {
      t += 1500 + rng.int(2500);
      if (rng.next() < LEAVE_PER_SLOT) break;
      continue;
    }
    const m = matchOf(catalog, user, id);
    const q = (catalog.quality[id] ?? 0.5) - 0.5;
    const cb = catalog.clickbait[id] ?? 0;
    const clickLogit = clickLogitOf(catalog, m, id, t, position) + 0.3 * rng.normal();
    let stop = LEAVE_PER_SLOT;
    if (rng.next() < sigmoid(clickLogit)) {
      const clickTs = t + 400 + rng.int(1600);
      events.push({ videoId: id, type: EventType.CLICK, tsMs: clickTs, position, watchSeconds: 0 });
      const duration = catalog.durationS[id] ?? 60;
      const watchLogit =
        -0.4 + 0.9 * m.category + 1.6 * m.tag + 0.9 * m.creator + 2.2 * q - 2.6 * cb - lengthPenalty * Math.log(duration / 60) + evening + 0.5 * rng.normal();
      const ratio = sigmoid(watchLogit);
      const watched = Math.max(0.5, Math.round(ratio * duration * 10) / 10);
      const endTs = clickTs + Math.round(watched * 1000);
      events.push({ videoId: id, type: EventType.WATCH, tsMs: endTs, position, watchSeconds: watched });
      if (ratio < 0.12) {
        events.push({ videoId: id, type: EventType.SKIP, tsMs: endTs, position, watchSeconds: 0 });
        stop += LEAVE_AFTER_SKIP;
      } else if (rng.next() < sigmoid(-4.2 + 3.5 * ratio + 1.2 * m.tag + 0.8 * m.creator)) {
        events.push({ videoId: id, type: EventType.LIKE, tsMs: endTs + 500 + rng.int(1500), position, watchSeconds: 0 });
      }
      t = endTs + 2500 + rng.int(2000);
    } else {
      t += 1500 + rng.int(2500);
    }
    if (rng.next() < stop) break;
  }
  return events;
}
