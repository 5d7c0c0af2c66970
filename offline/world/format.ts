/**
 * The world format: the one on-disk contract between the offline data tools (synthetic generator,
 * KuaiRand converter), training, evaluation and the serving cluster's bootstrap. A world is a
 * directory `data/worlds/<name>/` holding:
 *
 * - `world.json` — a {@link WorldManifest};
 * - `videos.ndjson` — one {@link VideoRecord} per line, ascending `videoId`;
 * - `users.ndjson` — one {@link UserRecord} per line, ascending `userId`;
 * - `events/day-000.ndjson`, `day-001.ndjson`, ... — {@link InteractionEvent}s, one per line,
 *   time-ordered within and across files, `eventId` unique.
 *
 * Every file is UTF-8 NDJSON (one JSON object and `\n` per line, no blank lines), so it streams.
 */
import type { InteractionEvent } from '../../core/events.js';
import type { ItemMeta } from '../../core/features/item.js';

export type { InteractionEvent };

/** Which days (0-based, from {@link WorldManifest.startMs}) each split holds. */
export interface WorldSplit {
  readonly trainDays: readonly number[];
  readonly validDays: readonly number[];
  readonly testDays: readonly number[];
}

/** Event totals per type over all days (`events` counts every line of every day file). */
export interface WorldCounts {
  readonly events: number;
  readonly impressions: number;
  readonly clicks: number;
  readonly watches: number;
  readonly likes: number;
  readonly skips: number;
}

/** Where a world came from. */
export type WorldSource = 'synthetic' | 'kuairand';

/** `world.json`. */
export interface WorldManifest {
  readonly name: string;
  /** Generator seed (0 for converted datasets). */
  readonly seed: number;
  readonly numVideos: number;
  readonly numUsers: number;
  readonly numCreators: number;
  /** Category ids are 0..numCategories-1; matches FeatureSpec.numCategories (default 32). */
  readonly numCategories: number;
  /** Number of day files under `events/`. */
  readonly days: number;
  /** Epoch ms of UTC midnight starting day 0; day d covers [startMs + d·86.4e6, startMs + (d+1)·86.4e6). */
  readonly startMs: number;
  /** ISO 3166 alpha-2 codes users come from. */
  readonly countries: readonly string[];
  readonly split: WorldSplit;
  readonly counts: WorldCounts;
  readonly source: WorldSource;
  /** Version of the code that wrote the world; bump when the same seed would give other bytes. */
  readonly generatorVersion: number;
  /** ISO-8601 time the world was written (the only field not determined by the seed). */
  readonly createdAt: string;
}

/** One video: the catalogue metadata the item tower sees, plus generator-side attributes. */
export type VideoRecord = ItemMeta & {
  /** Tag ids (small integers; KuaiRand: its `tag` column). */
  readonly tags: readonly number[];
  /** True for clickbait: high click appeal, short watches. Always false for real datasets. */
  readonly clickbait: boolean;
  /** Latent quality in [0, 1] (synthetic); 0.5 when unknown. */
  readonly quality: number;
};

/** One user as the world knows it (latent interests are not stored; the generator derives them). */
export interface UserRecord {
  readonly userId: number;
  /** ISO 3166 alpha-2 code; empty when unknown. */
  readonly country: string;
  /** One of DEVICES (core/events.ts). */
  readonly device: string;
  /** Expected sessions per day. */
  readonly activity: number;
}

/** File and folder names inside a world directory. */
export const WORLD_FILES = {
  manifest: 'world.json',
  videos: 'videos.ndjson',
  users: 'users.ndjson',
  eventsDir: 'events',
} as const;

/** Milliseconds in one day. */
export const DAY_MS = 86_400_000;

/** When the world's history ends: startMs + days (epoch ms). */
export function worldEndMs(m: Pick<WorldManifest, 'startMs' | 'days'>): number {
  return m.startMs + m.days * DAY_MS;
}

/** `day-007.ndjson` for day 7 (three digits, more when a world has over 999 days). */
export function dayFileName(day: number): string {
  return `day-${String(day).padStart(3, '0')}.ndjson`;
}

/** Day index of an event time in a world starting at `startMs` (may be negative or ≥ days). */
export function dayOf(tsMs: number, startMs: number): number {
  return Math.floor((tsMs - startMs) / DAY_MS);
}

/** Default split for `days` days: last day test, the day before validation, the rest train. */
export function defaultSplit(days: number): WorldSplit {
  if (!Number.isInteger(days) || days < 3) throw new TypeError(`days must be an integer >= 3 for a train/valid/test split, got ${days}`);
  const trainDays: number[] = [];
  for (let d = 0; d < days - 2; d++) trainDays.push(d);
  return { trainDays, validDays: [days - 2], testDays: [days - 1] };
}
