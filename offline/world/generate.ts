/**
 * The synthetic world generator: catalogue, users and `days` days of feed sessions, streamed to a
 * world directory (format.ts). Seeded and reproducible byte for byte (every file but world.json's
 * `createdAt`, which callers may also fix). Only the current day's session start list and the
 * sessions in progress are in memory; users are regenerated from the seed, never stored.
 */
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { hashId } from '../../core/hash.js';
import { simulateSession } from './behaviour.js';
import { Catalog } from './catalog.js';
import type { WorldCounts, WorldManifest } from './format.js';
import { DAY_MS, defaultSplit } from './format.js';
import { COUNTRIES, Population } from './population.js';
import { SessionMerge } from './session-merge.js';
import type { SessionStream } from './session-merge.js';
import { WorldWriter, userLine, videoLine } from './writer.js';
import { join } from 'node:path';

/** Bump when the same options would produce different bytes. */
export const GENERATOR_VERSION = 1;

const SALT_SESSION = 0x5e55104e;
const OTHER_DEVICES = ['android', 'ios', 'web', 'tv'] as const;

/** Progress report, emitted about every 2,000 sessions and at the end of each day. */
export interface GenerationProgress {
  readonly phase: 'catalogue' | 'users' | 'events' | 'done';
  /** Day being simulated (events phase). */
  readonly day: number;
  readonly days: number;
  /** Share of all work done, 0..1 (events phase by sessions; earlier phases report 0). */
  readonly fraction: number;
  readonly events: number;
  /** Bytes of event files written so far. */
  readonly bytes: number;
  readonly elapsedMs: number;
}

/** Options of {@link generateWorld}. */
export interface GenerateOptions {
  /** World name: the directory `outDir/name`. */
  readonly name: string;
  /** Parent directory of worlds, e.g. `data/worlds`. */
  readonly outDir: string;
  /** Number of videos (ids 1..videos, in upload order). Default 2000. */
  readonly videos?: number;
  /** Number of user ids (1..users). Default 1000. */
  readonly users?: number;
  /** Simulated days (≥ 3: train, valid, test). Default 5. */
  readonly days?: number;
  /** Seed; the same seed and options give the same bytes. Default 1. */
  readonly seed?: number;
  /** Creators. Default max(1, round(videos / 50)). */
  readonly creators?: number;
  /** Categories (genres), 1..255. Default 32 (DEFAULT_FEATURE_SPEC.numCategories). */
  readonly categories?: number;
  /** Epoch ms of day 0, a UTC midnight. Default 2024-01-01T00:00:00Z. */
  readonly startMs?: number;
  /** Share of videos uploaded during the simulated days (cold start). Default 0.12. */
  readonly newVideoShare?: number;
  /** Share of clickbait videos. Default 0.05. */
  readonly clickbaitShare?: number;
  /** Zipf exponent of popularity. Default 0.9. */
  readonly zipfExponent?: number;
  /** `createdAt` written to world.json. Default the current time. */
  readonly createdAt?: string;
  /** Called with progress (for a progress bar). */
  readonly onProgress?: (p: GenerationProgress) => void;
}

/** {@link GenerateOptions} after defaults and validation. */
export interface ResolvedGenerateOptions {
  readonly name: string;
  readonly outDir: string;
  readonly videos: number;
  readonly users: number;
  readonly days: number;
  readonly seed: number;
  readonly creators: number;
  readonly categories: number;
  readonly startMs: number;
  readonly newVideoShare: number;
  readonly clickbaitShare: number;
  readonly zipfExponent: number;
  readonly createdAt: string | undefined;
}

function positiveInt(name: string, v: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new TypeError(`option ${name} must be an integer in 1..${max}, got ${String(v)}`);
  return v;
}

function share(name: string, v: number): number {
  if (!(v >= 0 && v <= 1)) throw new TypeError(`option ${name} must be in [0, 1], got ${String(v)}`);
  return v;
}

/** Applies defaults and validates, throwing a TypeError that names the bad option. */
export function resolveGenerateOptions(o: GenerateOptions): ResolvedGenerateOptions {
  if (typeof o.name !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(o.name) || o.name.startsWith('.')) {
    throw new TypeError(`option name must be a plain directory name, got ${JSON.stringify(o.name)}`);
  }
  if (typeof o.outDir !== 'string' || o.outDir.length === 0) throw new TypeError('option outDir must be a non-empty path');
  const videos = positiveInt('videos', o.videos ?? 2000, 50_000_000);
  const days = positiveInt('days', o.days ?? 5, 3650);
  if (days < 3) throw new TypeError(`option days must be >= 3 (train, valid and test days), got ${days}`);
  const startMs = o.startMs ?? Date.UTC(2024, 0, 1);
  if (!Number.isInteger(startMs) || startMs % DAY_MS !== 0) throw new TypeError(`option startMs must be a UTC midnight in epoch ms, got ${startMs}`);
  const zipfExponent = o.zipfExponent ?? 0.9;
  if (!(zipfExponent >= 0 && zipfExponent <= 3)) throw new TypeError(`option zipfExponent must be in [0, 3], got ${zipfExponent}`);
  const seed = o.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new TypeError(`option seed must be an integer in 0..2^32-1, got ${seed}`);
  return {
    name: o.name,
    outDir: o.outDir,
    videos,
    users: positiveInt('users', o.users ?? 1000, 4_000_000_000),
    days,
    seed,
    creators: positiveInt('creators', o.creators ?? Math.max(1, Math.round(videos / 50)), videos),
    categories: positiveInt('categories', o.categories ?? 32, 255),
    startMs,
    newVideoShare: share('newVideoShare', o.newVideoShare ?? 0.12),
    clickbaitShare: share('clickbaitShare', o.clickbaitShare ?? 0.05),
    zipfExponent,
    createdAt: o.createdAt,
  };
}

/** What {@link generateWorld} returns. */
export interface GeneratedWorld {
  readonly dir: string;
  readonly manifest: WorldManifest;
  readonly elapsedMs: number;
  /** Bytes of all files written. */
  readonly bytes: number;
  /** Events of sessions still running at the world's end, cut off (not written). */
  readonly droppedEvents: number;
}

/** Sessions of one day, sorted by start second (counting sort: O(n), stable in user order). */
interface DaySessions {
  readonly startSec: Uint32Array;
  readonly userId: Float64Array;
  readonly ordinal: Uint8Array;
}

function planDay(pop: Population, day: number): DaySessions {
  const counts = new Uint32Array(86_401);
  const users: number[] = [];
  const starts: number[] = [];
  for (let u = 1; u <= pop.numUsers; u++) {
    const rec = pop.record(u);
    if (rec.activity <= 0) continue;
    const s = pop.sessionStarts(u, day, rec.activity, pop.countryIndexOf(u));
    for (const sec of s) {
      users.push(u);
      starts.push(sec);
      counts[sec + 1] = (counts[sec + 1] ?? 0) + 1;
    }
  }
  for (let i = 1; i < counts.length; i++) counts[i] = (counts[i] ?? 0) + (counts[i - 1] ?? 0);
  const n = users.length;
  const out: DaySessions = { startSec: new Uint32Array(n), userId: new Float64Array(n), ordinal: new Uint8Array(n) };
  let prevUser = -1;
  let ordinal = 0;
  for (let i = 0; i < n; i++) {
    const sec = starts[i] as number;
    const at = counts[sec] as number;
    counts[sec] = at + 1;
    const u = users[i] as number;
    ordinal = u === prevUser ? ordinal + 1 : 0;
    prevUser = u;
    out.startSec[at] = sec;
    out.userId[at] = u;
    out.ordinal[at] = Math.min(255, ordinal);
  }
  return out;
}

/**
 * Generates a world into `outDir/name` (replacing one of that name) and returns its manifest.
 * Tiny worlds for tests: `generateWorld({ name, outDir, videos: 2000, users: 1000, days: 5, seed })`.
 */
/** The world's catalogue (videos and their hidden truths), rebuilt exactly from its generate options. */
export function catalogOf(o: ResolvedGenerateOptions): Catalog {
  return new Catalog({
    seed: o.seed,
    numVideos: o.videos,
    numCreators: o.creators,
    numCategories: o.categories,
    days: o.days,
    startMs: o.startMs,
    newVideoShare: o.newVideoShare,
    clickbaitShare: o.clickbaitShare,
    zipfExponent: o.zipfExponent,
  });
}

export async function generateWorld(options: GenerateOptions): Promise<GeneratedWorld> {
  const o = resolveGenerateOptions(options);
  const began = performance.now();
  const dir = join(o.outDir, o.name);
  const progress = (p: Omit<GenerationProgress, 'elapsedMs' | 'days'>): void =>
    options.onProgress?.({ ...p, days: o.days, elapsedMs: performance.now() - began });

  progress({ phase: 'catalogue', day: 0, fraction: 0, events: 0, bytes: 0 });
  const catalog = catalogOf(o);
  const pop = new Population(o.seed, o.users, catalog);
  const world = await WorldWriter.create(dir);
  try {
    const vw = world.videos();
    for (let id = 1; id <= o.videos; id++) await vw.writeLine(videoLine(catalog.record(id)));
    await world.close(vw);
    progress({ phase: 'users', day: 0, fraction: 0, events: 0, bytes: 0 });
    const uw = world.users();
    for (let u = 1; u <= o.users; u++) await uw.writeLine(userLine(pop.record(u)));
    await world.close(uw);

    const counts = { events: 0, impressions: 0, clicks: 0, watches: 0, likes: 0, skips: 0 };
    const merge = new SessionMerge();
    let seq = 0;
    let eventBytes = 0;
    for (let day = 0; day < o.days; day++) {
      const dayStart = o.startMs + day * DAY_MS;
      const plan = planDay(pop, day);
      const file = world.day(day);
      let n = 0;
      const emitUntil = async (limitMs: number, inclusive: boolean): Promise<void> => {
        for (;;) {
          const ts = merge.peekTs();
          if (inclusive ? ts > limitMs : ts >= limitMs) return;
          const next = merge.pop();
          if (next === undefined) return;
          const { session: s, event: e } = next;
          const out: InteractionEvent = {
            eventId: `${day}-${(n++).toString(36)}`,
            userId: s.userId,
            videoId: e.videoId,
            type: e.type,
            tsMs: e.tsMs,
            position: e.position,
            watchSeconds: e.watchSeconds,
            context: { device: s.device, country: s.country, localHour: s.localHour },
            surface: 'home',
            requestId: s.requestId,
          };
          count(counts, e.type);
          if (file.push(out)) await file.flush();
        }
      };
      const total = plan.userId.length;
      for (let i = 0; i < total; i++) {
        const userId = plan.userId[i] as number;
        const startMs = dayStart + (plan.startSec[i] as number) * 1000;
        await emitUntil(startMs, true);
        merge.push(makeSession(o.seed, pop, catalog, userId, day, startMs, plan.ordinal[i] as number, seq++));
        if (i % 2000 === 1999) {
          progress({ phase: 'events', day, fraction: (day + i / total) / o.days, events: counts.events, bytes: eventBytes + file.bytes });
        }
      }
      await emitUntil(dayStart + DAY_MS, false);
      await world.close(file);
      eventBytes += file.bytes;
      progress({ phase: 'events', day, fraction: (day + 1) / o.days, events: counts.events, bytes: eventBytes });
    }
    const droppedEvents = merge.clear();
    const manifest: WorldManifest = {
      name: o.name,
      seed: o.seed,
      numVideos: o.videos,
      numUsers: o.users,
      numCreators: o.creators,
      numCategories: o.categories,
      days: o.days,
      startMs: o.startMs,
      countries: COUNTRIES.map((c) => c.code),
      split: defaultSplit(o.days),
      counts,
      source: 'synthetic',
      generatorVersion: GENERATOR_VERSION,
      createdAt: o.createdAt ?? new Date().toISOString(),
    };
    await world.commit(manifest);
    const elapsedMs = performance.now() - began;
    progress({ phase: 'done', day: o.days - 1, fraction: 1, events: counts.events, bytes: eventBytes });
    return { dir, manifest, elapsedMs, bytes: world.bytes, droppedEvents };
  } catch (err) {
    await world.abort();
    throw err;
  }
}

function count(c: { events: number; impressions: number; clicks: number; watches: number; likes: number; skips: number }, type: EventType): void {
  c.events++;
  switch (type) {
    case EventType.IMPRESSION:
      c.impressions++;
      break;
    case EventType.CLICK:
      c.clicks++;
      break;
    case EventType.WATCH:
      c.watches++;
      break;
    case EventType.LIKE:
      c.likes++;
      break;
    case EventType.SKIP:
      c.skips++;
      break;
  }
}

function makeSession(
  seed: number,
  pop: Population,
  catalog: Catalog,
  userId: number,
  day: number,
  startMs: number,
  ordinal: number,
  seq: number,
): SessionStream {
  // Keyed by (user, start, ordinal), not by processing order, so a session is the same whatever else changes.
  const rng = new SeededRng(hashId(userId, hashId(startMs / 1000 + ordinal * 7919, seed ^ SALT_SESSION)));
  const user = pop.user(userId, day);
  const device = rng.next() < 0.1 ? (OTHER_DEVICES[rng.int(OTHER_DEVICES.length)] as string) : user.device;
  const country = COUNTRIES[user.countryIndex];
  const utcHour = Math.floor((startMs % DAY_MS) / 3_600_000);
  const localHour = (((utcHour + (country?.utcOffsetH ?? 0)) % 24) + 24) % 24;
  const events = simulateSession(catalog, user, { device, localHour }, startMs, rng);
  return {
    seq,
    userId,
    device,
    country: country?.code ?? '',
    localHour,
    requestId: sessionRequestId(day, seq),
    events,
    next: 0,
  };
}

/** A generated session's request id: its start day and sequence number, base 36 ("5.qzt"). */
function sessionRequestId(day: number, seq: number): string {
  return `${day.toString(36)}.${seq.toString(36)}`;
}

/**
 * The day a generated session started (the day its user's interests are drawn for), from its
 * request id; undefined for ids of another form. A session that runs past midnight logs events on
 * the next day's file with the day it started.
 */
export function sessionDayOf(requestId: string): number | undefined {
  const dot = requestId.indexOf('.');
  if (dot <= 0) return undefined;
  const day = parseInt(requestId.slice(0, dot), 36);
  return Number.isInteger(day) && day >= 0 ? day : undefined;
}

/** Re-exported for tools that inspect the world's latent structure (tests, diagnostics). */
export { Catalog, Population };
export type { WorldCounts };
