/**
 * Synthetic users. Nothing per user is stored: every attribute and latent interest is derived from
 * (world seed, user id[, day]) by a seeded generator, so 100M user ids cost no memory and any
 * process can regenerate any user exactly.
 */
import { SeededRng } from '../../core/clock.js';
import { hashId } from '../../core/hash.js';
import type { Catalog } from './catalog.js';
import { TAGS_PER_CATEGORY } from './catalog.js';
import type { UserRecord } from './format.js';

/** A dozen countries, skewed, with a representative UTC offset (hours) for local time. */
export const COUNTRIES: readonly { readonly code: string; readonly share: number; readonly utcOffsetH: number }[] = [
  { code: 'US', share: 0.22, utcOffsetH: -5 },
  { code: 'IN', share: 0.16, utcOffsetH: 5 },
  { code: 'BR', share: 0.14, utcOffsetH: -3 },
  { code: 'ID', share: 0.09, utcOffsetH: 7 },
  { code: 'MX', share: 0.07, utcOffsetH: -6 },
  { code: 'JP', share: 0.06, utcOffsetH: 9 },
  { code: 'DE', share: 0.05, utcOffsetH: 1 },
  { code: 'GB', share: 0.05, utcOffsetH: 0 },
  { code: 'FR', share: 0.04, utcOffsetH: 1 },
  { code: 'NG', share: 0.04, utcOffsetH: 1 },
  { code: 'PH', share: 0.04, utcOffsetH: 8 },
  { code: 'KR', share: 0.04, utcOffsetH: 9 },
];

/** Device shares (primary device of a user). */
const DEVICE_SHARES: readonly [string, number][] = [
  ['android', 0.45],
  ['ios', 0.35],
  ['web', 0.12],
  ['tv', 0.05],
  ['unknown', 0.03],
];

/** Relative session rate by local hour (quiet nights, evening peak). */
export const DIURNAL: readonly number[] = [
  0.35, 0.2, 0.12, 0.08, 0.07, 0.1, 0.25, 0.45, 0.55, 0.55, 0.55, 0.6, 0.7, 0.65, 0.6, 0.6, 0.65, 0.75, 0.85, 0.95, 1.0,
  1.0, 0.85, 0.6,
];

const SALT_USER = 0x05e4a11c;
const SALT_USER_DAY = 0x0da7d41f;
const SALT_COUNTRY = 0x0c0a7e11;

function pick<T>(items: readonly [T, number][], u: number): T {
  let acc = 0;
  for (const [item, share] of items) {
    acc += share;
    if (u < acc) return item;
  }
  return (items[items.length - 1] as [T, number])[0];
}

/** The latent and observable state of one user (for one day, after drift). */
export interface SimUser {
  readonly userId: number;
  readonly countryIndex: number;
  readonly device: string;
  /** Expected sessions per day. */
  readonly activity: number;
  /** Interest over categories, max 1 (after the day's drift). */
  readonly interest: Float32Array;
  /** Cumulative of `interest` for drawing a category. */
  readonly interestCum: Float32Array;
  /** Favourite tags (sub-genres) and creators: the (user, item) taste that drives watch time. */
  readonly favTags: readonly number[];
  readonly favCreators: readonly number[];
  /** How strongly this user follows popularity vs. its own taste, 0..1. */
  readonly mainstream: number;
}

/**
 * Derives users from the world seed. Countries tilt category interest (each country has its own
 * favourite genres), so per-country popularity differs from global popularity.
 */
export class Population {
  readonly numUsers: number;
  readonly #seed: number;
  readonly #catalog: Catalog;
  /** Per country: category draw weights (catalogue weights × a country tilt). */
  readonly #countryCategoryCum: Float64Array[];

  constructor(seed: number, numUsers: number, catalog: Catalog) {
    this.numUsers = numUsers;
    this.#seed = seed;
    this.#catalog = catalog;
    const k = catalog.numCategories;
    this.#countryCategoryCum = COUNTRIES.map((_, ci) => {
      const rng = new SeededRng(hashId(ci, seed ^ SALT_COUNTRY));
      const cum = new Float64Array(k);
      let s = 0;
      for (let c = 0; c < k; c++) {
        s += (catalog.categoryWeights[c] ?? 0) * Math.exp(0.8 * rng.normal());
        cum[c] = s;
      }
      return cum;
    });
  }

  /** Observable attributes of user `userId` (1-based); cheap: three draws. */
  record(userId: number): UserRecord {
    const rng = new SeededRng(hashId(userId, this.#seed ^ SALT_USER));
    const countryIndex = this.#countryIndex(rng.next());
    const device = pick(DEVICE_SHARES, rng.next());
    // Heavy-tailed activity: log-normal sessions/day, median 0.35, capped at 20.
    const activity = Math.min(20, Math.exp(Math.log(0.35) + 1.0 * rng.normal()));
    return { userId, country: COUNTRIES[countryIndex]?.code ?? '', device, activity: Math.round(activity * 1000) / 1000 };
  }

  /** Index into {@link COUNTRIES} of user `userId`. */
  countryIndexOf(userId: number): number {
    return this.#countryIndex(new SeededRng(hashId(userId, this.#seed ^ SALT_USER)).next());
  }

  #countryIndex(u: number): number {
    let acc = 0;
    for (let i = 0; i < COUNTRIES.length; i++) {
      acc += COUNTRIES[i]?.share ?? 0;
      if (u < acc) return i;
    }
    return COUNTRIES.length - 1;
  }

  /** Full latent state of user `userId` on day `day` (interests drift a little day to day). */
  user(userId: number, day: number): SimUser {
    const rec = this.record(userId);
    const countryIndex = this.countryIndexOf(userId);
    const cat = this.#catalog;
    const k = cat.numCategories;
    const rng = new SeededRng(hashId(userId, (this.#seed ^ SALT_USER) + 1));
    const cum = this.#countryCategoryCum[countryIndex] as Float64Array;
    const total = cum[k - 1] ?? 1;
    // 1-4 favourite categories with Dirichlet(1) weights, on top of a faint background interest.
    const nFav = 1 + Math.min(3, Math.floor(-Math.log(Math.max(1e-9, rng.next())) * 1.6));
    const interest = new Float32Array(k);
    for (let c = 0; c < k; c++) interest[c] = 0.04 * ((cum[c] ?? 0) - (c > 0 ? (cum[c - 1] ?? 0) : 0)) / total * k;
    const favCats: number[] = [];
    for (let f = 0; f < nFav; f++) {
      const target = rng.next() * total;
      let c = 0;
      while (c < k - 1 && (cum[c] ?? 0) <= target) c++;
      favCats.push(c);
      interest[c] = (interest[c] ?? 0) + -Math.log(Math.max(1e-9, rng.next()));
    }
    const favTags: number[] = [];
    const favCreators: number[] = [];
    for (const c of favCats) {
      const tags = 1 + rng.int(2);
      for (let i = 0; i < tags; i++) favTags.push(c * TAGS_PER_CATEGORY + rng.int(TAGS_PER_CATEGORY));
      const creators = cat.creatorsByCategory[c];
      if (creators !== undefined && creators.length > 0) {
        const m = 1 + rng.int(3);
        for (let i = 0; i < m; i++) favCreators.push(creators[Math.floor(Math.pow(rng.next(), 2) * creators.length)] ?? 0);
      }
    }
    const mainstream = rng.next();
    // Day drift: multiplicative log-normal noise per category, fresh each day.
    const drift = new SeededRng(hashId(userId, hashId(day, this.#seed ^ SALT_USER_DAY)));
    let max = 0;
    for (let c = 0; c < k; c++) {
      const v = (interest[c] ?? 0) * Math.exp(0.3 * drift.normal());
      interest[c] = v;
      if (v > max) max = v;
    }
    const interestCum = new Float32Array(k);
    let s = 0;
    for (let c = 0; c < k; c++) {
      interest[c] = (interest[c] ?? 0) / max;
      s += interest[c] ?? 0;
      interestCum[c] = s;
    }
    return { userId, countryIndex, device: rec.device, activity: rec.activity, interest, interestCum, favTags, favCreators, mainstream };
  }

  /**
   * Session start times of user `userId` on day `day` as seconds into the UTC day, ascending:
   * Poisson(activity) sessions, placed by the diurnal curve in the user's local time.
   */
  sessionStarts(userId: number, day: number, activity: number, countryIndex: number): number[] {
    const rng = new SeededRng(hashId(userId, hashId(day, this.#seed ^ SALT_USER_DAY) + 7));
    let n = 0;
    const limit = Math.exp(-activity);
    let p = rng.next();
    while (p > limit && n < 64) {
      n++;
      p *= rng.next();
    }
    const offset = COUNTRIES[countryIndex]?.utcOffsetH ?? 0;
    const starts: number[] = [];
    for (let i = 0; i < n; i++) {
      for (let tries = 0; tries < 32; tries++) {
        const sec = rng.int(86_400);
        const localHour = (((Math.floor(sec / 3600) + offset) % 24) + 24) % 24;
        if (rng.next() < (DIURNAL[localHour] ?? 1)) {
          starts.push(sec);
          break;
        }
      }
    }
    return starts.sort((a, b) => a - b);
  }
}
