/**
 * Ids the generator draws from: a world's users.ndjson / videos.ndjson when the world exists
 * (data/worlds/<name>/), else a numeric range. Streams the file and keeps at most `max` ids, so a
 * 100M-user world does not have to fit the generator.
 */
import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** Where ids come from. */
export interface IdSource {
  /** World directory (e.g. data/worlds/default); when it lacks the file, the range is used. */
  readonly worldDir?: string;
  /** First id of the fallback range. Default 0. */
  readonly rangeStart: number;
  /** Size of the fallback range. */
  readonly rangeCount: number;
  /** At most this many ids are read from the world. Default 1,000,000. */
  readonly max?: number;
}

/** Each world user's own country and device, index-aligned with the ids ('' when the file has none). */
export interface UserContexts {
  readonly country: readonly string[];
  readonly device: readonly string[];
}

/** The ids and where they came from (for the report's conditions). */
export interface LoadedIds {
  readonly ids: Float64Array;
  readonly origin: string;
  /** Users read from a world: their country and device, so a request carries its user's context. */
  readonly contexts?: UserContexts;
}

async function readIds(file: string, field: 'userId' | 'videoId', max: number): Promise<{ ids: Float64Array; contexts: UserContexts }> {
  const ids: number[] = [];
  const country: string[] = [];
  const device: string[] = [];
  // A handful of distinct codes: share one string per value instead of one per user.
  const interned = new Map<string, string>();
  const intern = (v: unknown): string => {
    if (typeof v !== 'string') return '';
    let s = interned.get(v);
    if (s === undefined) interned.set(v, (s = v));
    return s;
  };
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.length === 0) continue;
    const rec = JSON.parse(line) as Record<string, unknown>;
    const id = rec[field];
    if (typeof id === 'number') {
      ids.push(id);
      if (field === 'userId') {
        country.push(intern(rec['country']));
        device.push(intern(rec['device']));
      }
    }
    if (ids.length >= max) break;
  }
  lines.close();
  return { ids: Float64Array.from(ids), contexts: { country, device } };
}

function range(start: number, count: number): Float64Array {
  const ids = new Float64Array(count);
  for (let i = 0; i < count; i++) ids[i] = start + i;
  return ids;
}

/** User ids from `<worldDir>/users.ndjson`, else the range. */
export async function loadUserIds(src: IdSource): Promise<LoadedIds> {
  return load(src, 'users.ndjson', 'userId');
}

/** Video ids from `<worldDir>/videos.ndjson`, else the range. */
export async function loadVideoIds(src: IdSource): Promise<LoadedIds> {
  return load(src, 'videos.ndjson', 'videoId');
}

async function load(src: IdSource, fileName: string, field: 'userId' | 'videoId'): Promise<LoadedIds> {
  if (src.worldDir !== undefined) {
    const file = path.join(src.worldDir, fileName);
    if (existsSync(file)) {
      const { ids, contexts } = await readIds(file, field, src.max ?? 1_000_000);
      if (ids.length > 0) return { ids, origin: `${file} (${ids.length} ids)`, ...(field === 'userId' ? { contexts } : {}) };
    }
  }
  return { ids: range(src.rangeStart, src.rangeCount), origin: `range ${src.rangeStart}..${src.rangeStart + src.rangeCount - 1}` };
}
