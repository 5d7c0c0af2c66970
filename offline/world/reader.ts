/**
 * Streaming readers for world directories (format.ts). Files are read in 1 MiB chunks and split on
 * newlines by hand (faster than `readline`); nothing holds more than one chunk of lines at a time.
 * Use the `...Batches` variants on hot paths: they skip the per-record promise of an async iterator.
 */
import { createReadStream } from 'node:fs';
import { access, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { InteractionEvent } from '../../core/events.js';
import { decodeCanonicalAt, decodeGeneric } from './codec.js';
import type { UserRecord, VideoRecord, WorldManifest } from './format.js';
import { WORLD_FILES, dayFileName } from './format.js';

const READ_CHUNK_BYTES = 1 << 20;

/** Decodes the line `text[start, end)` (offsets, so the splitter makes no substring per line). */
export type LineDecoder<T> = (text: string, start: number, end: number) => T;

/** A {@link LineDecoder} from a function of the line's text. */
export function lineDecoder<T>(decode: (line: string) => T): LineDecoder<T> {
  return (text, start, end) => decode(text.slice(start, end));
}

/**
 * Yields arrays of decoded lines of an NDJSON file, one array per read chunk (~1 MiB). Blank lines
 * are skipped; a line that fails to decode throws an Error naming the file and line number.
 */
export async function* readNdjsonBatches<T>(path: string, decode: LineDecoder<T>): AsyncGenerator<T[]> {
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: READ_CHUNK_BYTES });
  let rest = '';
  let lineNo = 0;
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = rest.length > 0 ? rest + chunk : chunk;
      const batch: T[] = [];
      let start = 0;
      let nl = text.indexOf('\n', start);
      while (nl >= 0) {
        lineNo++;
        if (nl > start) batch.push(decodeAt(text, start, nl, decode, path, lineNo));
        start = nl + 1;
        nl = text.indexOf('\n', start);
      }
      rest = start < text.length ? text.slice(start) : '';
      if (batch.length > 0) yield batch;
    }
    if (rest.trim().length > 0) yield [decodeAt(rest, 0, rest.length, decode, path, lineNo + 1)];
  } finally {
    stream.destroy();
  }
}

function decodeAt<T>(text: string, start: number, end: number, decode: LineDecoder<T>, path: string, lineNo: number): T {
  try {
    return decode(text, start, end);
  } catch (err) {
    throw new Error(`${path}:${lineNo}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function* flatten<T>(batches: AsyncIterable<T[]>): AsyncGenerator<T> {
  for await (const batch of batches) yield* batch;
}

/** True when `dir` holds a complete world (its `world.json` is written last). */
export async function worldExists(dir: string): Promise<boolean> {
  try {
    await access(join(dir, WORLD_FILES.manifest));
    return true;
  } catch {
    return false;
  }
}

/** Reads and checks `world.json`. */
export async function readWorldManifest(dir: string): Promise<WorldManifest> {
  const path = join(dir, WORLD_FILES.manifest);
  const m = JSON.parse(await readFile(path, 'utf8')) as Partial<WorldManifest>;
  for (const key of ['numVideos', 'numUsers', 'numCategories', 'days', 'startMs'] as const) {
    if (typeof m[key] !== 'number') throw new TypeError(`${path}: field ${key} must be a number`);
  }
  if (typeof m.name !== 'string') throw new TypeError(`${path}: field name must be a string`);
  if (m.split === undefined || !Array.isArray(m.split.trainDays)) throw new TypeError(`${path}: field split is missing`);
  return m as WorldManifest;
}

function decodeVideo(line: string): VideoRecord {
  const v = JSON.parse(line) as Partial<VideoRecord>;
  if (typeof v.videoId !== 'number') throw new TypeError('video field videoId must be a number');
  if (typeof v.category !== 'number') throw new TypeError('video field category must be a number');
  return v as VideoRecord;
}

function decodeUser(line: string): UserRecord {
  const u = JSON.parse(line) as Partial<UserRecord>;
  if (typeof u.userId !== 'number') throw new TypeError('user field userId must be a number');
  return u as UserRecord;
}

function decodeEventAt(text: string, start: number, end: number): InteractionEvent {
  return decodeCanonicalAt(text, start, end) ?? decodeGeneric(text.slice(start, end));
}

/** Videos in ascending videoId, in batches. */
export function readVideoBatches(dir: string): AsyncGenerator<VideoRecord[]> {
  return readNdjsonBatches(join(dir, WORLD_FILES.videos), lineDecoder(decodeVideo));
}

/** Videos in ascending videoId. */
export function readVideos(dir: string): AsyncIterable<VideoRecord> {
  return flatten(readVideoBatches(dir));
}

/** Users in ascending userId, in batches. */
export function readUserBatches(dir: string): AsyncGenerator<UserRecord[]> {
  return readNdjsonBatches(join(dir, WORLD_FILES.users), lineDecoder(decodeUser));
}

/** Users in ascending userId. */
export function readUsers(dir: string): AsyncIterable<UserRecord> {
  return flatten(readUserBatches(dir));
}

/** Options of {@link readEvents}. */
export interface ReadEventsOptions {
  /** Days to read (0-based); default every day file present. Read in ascending order. */
  readonly days?: readonly number[];
}

/** Day numbers that have an event file, ascending. */
export async function listEventDays(dir: string): Promise<number[]> {
  const names = await readdir(join(dir, WORLD_FILES.eventsDir));
  const days: number[] = [];
  for (const name of names) {
    const m = /^day-(\d+)\.ndjson$/.exec(name);
    if (m?.[1] !== undefined) days.push(Number(m[1]));
  }
  return days.sort((a, b) => a - b);
}

/**
 * Events of the chosen days in time order, in batches (one per ~1 MiB read). A requested day with
 * no file yields nothing (a world may have quiet days); an unknown directory throws ENOENT.
 */
export async function* readEventBatches(dir: string, opts: ReadEventsOptions = {}): AsyncGenerator<InteractionEvent[]> {
  const present = await listEventDays(dir);
  const wanted = opts.days === undefined ? present : present.filter((d) => opts.days?.includes(d));
  for (const day of wanted) {
    yield* readNdjsonBatches(join(dir, WORLD_FILES.eventsDir, dayFileName(day)), decodeEventAt);
  }
}

/** Events of the chosen days in time order. */
export function readEvents(dir: string, opts: ReadEventsOptions = {}): AsyncIterable<InteractionEvent> {
  return flatten(readEventBatches(dir, opts));
}
