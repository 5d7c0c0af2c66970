/**
 * What the generator asks for: users drawn Zipf-like from a world's user ids, a share of unknown
 * (new) users, k and surface drawn from weights, a device/country/hour context, and LogEvents
 * batches over the world's videos. A "hot window" concentrates a share of traffic on a few users
 * and items (the flash-crowd scenario). Pure: ids and randomness are handed in.
 */
import type { Rng } from '../../core/clock.js';
import type { InteractionEventMessage, RecommendRequestMessage } from '../client/recommender-client.js';
import type { UserContexts } from './world-ids.js';
import { WeightedChoice, ZipfSampler } from './zipf.js';

/** The request mix as plain data (scenario JSON `mix`, resolved with defaults). */
export interface RequestMixSpec {
  /** Zipf exponent for user popularity. Default 0.9. */
  readonly userZipfExponent: number;
  /** Zipf exponent for video popularity in LogEvents. Default 1.0. */
  readonly videoZipfExponent: number;
  /** Share of Recommend calls for users the cluster has never seen, 0..1. Default 0.05. */
  readonly newUserShare: number;
  /** Weights of k values, e.g. `{ "20": 0.6, "50": 0.4 }`. Default `{ "20": 1 }`. */
  readonly k: Readonly<Record<string, number>>;
  /** Weights of surfaces. Default `{ "home": 0.7, "up_next": 0.3 }`. */
  readonly surfaces: Readonly<Record<string, number>>;
  /** Weights of devices. Default ios 0.35, android 0.4, web 0.15, tv 0.1. */
  readonly devices: Readonly<Record<string, number>>;
  /** Countries drawn uniformly (for new users, or every user when `context` is "mix"). Default ["US", "BR", "IN", "DE", "JP"]. */
  readonly countries: readonly string[];
  /**
   * Where a known user's device and country come from: "user" (default) = the world's record of
   * that user (users.ndjson), as real traffic would carry; "mix" = drawn from `devices` and
   * `countries` for every request. New users and worlds without those fields always use the mix.
   */
  readonly context: 'user' | 'mix';
  /** Share of LogEvents events per type. Default impressions 0.6, clicks 0.15, watches 0.2, likes 0.03, skips 0.02. */
  readonly eventTypes: Readonly<Record<string, number>>;
  /**
   * Ask for the server's per-stage timings (RecommendRequest.debug) so the report can say which
   * stage a slow answer spent its time in. Default true: the server only copies six numbers it
   * measures anyway into the answer. False sends requests exactly as a production caller does.
   */
  readonly stageTimings: boolean;
}

export const DEFAULT_MIX: RequestMixSpec = {
  userZipfExponent: 0.9,
  videoZipfExponent: 1.0,
  newUserShare: 0.05,
  k: { '20': 1 },
  surfaces: { home: 0.7, up_next: 0.3 },
  devices: { ios: 0.35, android: 0.4, web: 0.15, tv: 0.1 },
  countries: ['US', 'BR', 'IN', 'DE', 'JP'],
  context: 'user',
  eventTypes: { IMPRESSION: 0.6, CLICK: 0.15, WATCH: 0.2, LIKE: 0.03, SKIP: 0.02 },
  stageTimings: true,
};

/** A window (ms from the phase start) in which `share` of traffic goes to a few hot users/items. */
export interface HotWindow {
  readonly startMs: number;
  readonly endMs: number;
  /** Share of requests (and events) in the window drawn from the hot set, 0..1. */
  readonly share: number;
  /** How many users form the hot set. */
  readonly users: number;
  /** How many videos form the hot set (LogEvents). */
  readonly items: number;
}

/** New users get ids far above any world id (worlds number users from 0), below 2^53. */
const NEW_USER_BASE = 2 ** 52;
/** Integer uniform in [0, n). */
function intBelow(rng: Rng, n: number): number {
  return Math.floor(rng.next() * n);
}

const EVENT_TYPES = ['IMPRESSION', 'CLICK', 'WATCH', 'LIKE', 'SKIP'] as const;

export class RequestMix {
  readonly #spec: RequestMixSpec;
  readonly #rng: Rng;
  readonly #userIds: ArrayLike<number>;
  readonly #videoIds: ArrayLike<number>;
  readonly #users: ZipfSampler;
  readonly #videos: ZipfSampler;
  readonly #k: WeightedChoice<number>;
  readonly #surface: WeightedChoice<string>;
  readonly #device: WeightedChoice<string>;
  readonly #eventType: WeightedChoice<(typeof EVENT_TYPES)[number]>;
  readonly #hot: HotWindow | undefined;
  readonly #hotUsers: readonly number[];
  readonly #hotVideos: readonly number[];
  readonly #idPrefix: string;
  readonly #userContexts: UserContexts | undefined;
  #seq = 0;

  /**
   * `userIds` and `videoIds` are in popularity order as far as the caller knows (rank 0 = most
   * popular); `idPrefix` makes event ids unique across generator processes; `userContexts` (aligned
   * with `userIds`) gives each world user's own device and country.
   */
  constructor(spec: RequestMixSpec, userIds: ArrayLike<number>, videoIds: ArrayLike<number>, rng: Rng, hot?: HotWindow, idPrefix = 'lt', userContexts?: UserContexts) {
    if (userIds.length === 0) throw new TypeError('userIds must not be empty');
    if (videoIds.length === 0) throw new TypeError('videoIds must not be empty');
    this.#spec = spec;
    this.#rng = rng;
    this.#userIds = userIds;
    this.#videoIds = videoIds;
    this.#users = new ZipfSampler(userIds.length, spec.userZipfExponent);
    this.#videos = new ZipfSampler(videoIds.length, spec.videoZipfExponent);
    this.#k = new WeightedChoice(Object.entries(spec.k).map(([k, w]) => [Number(k), w] as const));
    this.#surface = new WeightedChoice(Object.entries(spec.surfaces));
    this.#device = new WeightedChoice(Object.entries(spec.devices));
    this.#eventType = new WeightedChoice(
      EVENT_TYPES.map((t) => [t, spec.eventTypes[t] ?? 0] as const),
    );
    this.#hot = hot;
    // The hot set is drawn once, from the tail as much as the head: a flash crowd is about
    // something suddenly popular, not the usual favourites.
    this.#hotUsers = hot ? Array.from({ length: Math.min(hot.users, userIds.length) }, () => userIds[intBelow(rng, userIds.length)]!) : [];
    this.#hotVideos = hot ? Array.from({ length: Math.min(hot.items, videoIds.length) }, () => videoIds[intBelow(rng, videoIds.length)]!) : [];
    this.#idPrefix = idPrefix;
    this.#userContexts = spec.context === 'user' ? userContexts : undefined;
  }

  /** True when `tMs` falls in the hot window. */
  isHot(tMs: number): boolean {
    return this.#hot !== undefined && tMs >= this.#hot.startMs && tMs < this.#hot.endMs;
  }

  /** A Recommend request for an arrival intended at `tMs` (ms from the phase start). */
  recommendRequest(tMs: number): RecommendRequestMessage {
    const rng = this.#rng;
    let userId: number;
    let index = -1;
    if (this.isHot(tMs) && this.#hotUsers.length > 0 && rng.next() < this.#hot!.share) {
      userId = this.#hotUsers[intBelow(rng, this.#hotUsers.length)]!;
    } else if (rng.next() < this.#spec.newUserShare) {
      userId = NEW_USER_BASE + intBelow(rng, 2 ** 31);
    } else {
      index = this.#users.sample(rng);
      userId = this.#userIds[index]!;
    }
    return {
      userId,
      k: this.#k.pick(rng),
      context: this.#context(index),
      surface: this.#surface.pick(rng),
      ...(this.#spec.stageTimings ? { debug: true } : {}),
    };
  }

  /** A LogEvents batch of `size` events intended at `tMs`. */
  eventBatch(tMs: number, size: number, nowEpochMs: number): InteractionEventMessage[] {
    const rng = this.#rng;
    const hot = this.isHot(tMs) && this.#hotVideos.length > 0;
    const out: InteractionEventMessage[] = [];
    for (let i = 0; i < size; i++) {
      const videoId = hot && rng.next() < this.#hot!.share ? this.#hotVideos[intBelow(rng, this.#hotVideos.length)]! : this.#videoIds[this.#videos.sample(rng)]!;
      const type = this.#eventType.pick(rng);
      const userIndex = this.#users.sample(rng);
      out.push({
        eventId: `${this.#idPrefix}-${this.#seq++}`,
        userId: this.#userIds[userIndex]!,
        videoId,
        type,
        tsMs: nowEpochMs,
        position: intBelow(rng, 20),
        watchSeconds: type === 'WATCH' ? 1 + intBelow(rng, 600) : 0,
        context: this.#context(userIndex),
        surface: this.#surface.pick(rng),
      });
    }
    return out;
  }

  /** A request context: the world user's own device and country when known (`index` into the ids), else drawn. */
  #context(index = -1): { device: string; country: string; localHour: number } {
    const countries = this.#spec.countries;
    const device = this.#device.pick(this.#rng);
    const country = countries.length > 0 ? countries[intBelow(this.#rng, countries.length)]! : '';
    const known = index >= 0 ? this.#userContexts : undefined;
    return {
      device: (known?.device[index] ?? '') || device,
      country: (known?.country[index] ?? '') || country,
      localHour: intBelow(this.#rng, 24),
    };
  }
}
