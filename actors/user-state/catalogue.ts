/**
 * A compact, read-only video catalogue: the world's ItemMeta as typed-array columns keyed by a
 * sorted id array (binary search), instead of a Map of objects. Event application needs each video's
 * category and creator (user-state, `applyEventToUser`) or its whole metadata (popular/trending);
 * both read it from here.
 *
 * Why columns: a `Map<number, {category, creatorId}>` costs ~90 B per video, and every user
 * partition held its own copy (16 × 1M videos ≈ 1.4 GB on the default local world). These columns
 * take 34 B per video, and when they are backed by SharedArrayBuffers one copy serves every worker
 * thread of the node (see catalogue-cache.ts).
 *
 * On disk (`<snapshotDir>/item-catalogue-<world id>/`): `columns.bin` (the columns back to back,
 * little-endian, in {@link CATALOGUE_COLUMNS} order) and `meta.json` (written last, so its presence
 * marks a complete file). Reading it takes milliseconds; parsing videos.ndjson takes seconds.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { replaceDir } from '../../core/replace-dir.js';
import path from 'node:path';
import type { EventItemInfo } from '../../core/features/user.js';
import type { ItemMeta } from '../../core/features/item.js';
import { readVideoBatches, readWorldManifest } from '../../offline/world/reader.js';

/**
 * A world's identity for snapshot matching: `name@createdAt`, the same string as item-shard's
 * `worldSource` (restated here so user-state and popular need not load item-shard's faiss module).
 */
export async function worldIdentity(worldDir: string): Promise<string> {
  const m = await readWorldManifest(worldDir);
  return `${m.name}@${m.createdAt}`;
}

/** The catalogue's columns; row r describes video `ids[r]`, ids strictly ascending. */
export interface CatalogueColumns {
  readonly ids: Float64Array;
  readonly creatorIds: Float64Array;
  readonly categories: Int16Array;
  /** Seconds. */
  readonly durationS: Float64Array;
  /** Epoch ms. */
  readonly uploadTsMs: Float64Array;
}

/** Column order on disk. */
export const CATALOGUE_COLUMNS = ['ids', 'creatorIds', 'categories', 'durationS', 'uploadTsMs'] as const;

/** Bump when the file layout changes; older files are then rebuilt. */
export const CATALOGUE_FORMAT = 1;

const CTORS = {
  ids: Float64Array,
  creatorIds: Float64Array,
  categories: Int16Array,
  durationS: Float64Array,
  uploadTsMs: Float64Array,
} as const;

/** Bytes per row over all columns (34). */
export const CATALOGUE_ROW_BYTES = CATALOGUE_COLUMNS.reduce((s, c) => s + CTORS[c].BYTES_PER_ELEMENT, 0);

/** Empty columns of `rows` rows; `shared` backs each with a SharedArrayBuffer (worker threads). */
export function allocateCatalogueColumns(rows: number, shared: boolean): CatalogueColumns {
  const buffer = (bytesPerRow: number): ArrayBuffer => (shared ? new SharedArrayBuffer(rows * bytesPerRow) : new ArrayBuffer(rows * bytesPerRow)) as ArrayBuffer;
  return {
    ids: new Float64Array(buffer(8)),
    creatorIds: new Float64Array(buffer(8)),
    categories: new Int16Array(buffer(2)),
    durationS: new Float64Array(buffer(8)),
    uploadTsMs: new Float64Array(buffer(8)),
  };
}

/** Read-only lookups over {@link CatalogueColumns} (see the module comment). */
export class ItemCatalogue {
  readonly columns: CatalogueColumns;
  readonly size: number;

  constructor(columns: CatalogueColumns) {
    const n = columns.ids.length;
    for (const c of CATALOGUE_COLUMNS) {
      if (columns[c].length !== n) throw new TypeError(`catalogue column ${c} has ${columns[c].length} rows, ids has ${n}`);
    }
    this.columns = columns;
    this.size = n;
  }

  /** Row of `videoId`, or -1 when the catalogue does not hold it. O(log n). */
  rowOf(videoId: number): number {
    const ids = this.columns.ids;
    let lo = 0;
    let hi = ids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = ids[mid] as number;
      if (v < videoId) lo = mid + 1;
      else if (v > videoId) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  /** Category and creator of a video (what applyEventToUser needs), or undefined. */
  eventInfo(videoId: number): EventItemInfo | undefined {
    const r = this.rowOf(videoId);
    if (r < 0) return undefined;
    return { category: this.columns.categories[r] as number, creatorId: this.columns.creatorIds[r] as number };
  }

  /** Full catalogue metadata of a video, or undefined. */
  meta(videoId: number): ItemMeta | undefined {
    const r = this.rowOf(videoId);
    if (r < 0) return undefined;
    const c = this.columns;
    return { videoId, creatorId: c.creatorIds[r] as number, category: c.categories[r] as number, durationS: c.durationS[r] as number, uploadTsMs: c.uploadTsMs[r] as number };
  }

  /** Bytes held by the columns (shared between threads when SharedArrayBuffer-backed). */
  get bytes(): number {
    return this.size * CATALOGUE_ROW_BYTES;
  }
}

/**
 * Reads the world's videos.ndjson into columns. Ids must be unique; they are sorted here when the
 * file is not in ascending order (the world format promises it, converted datasets may not).
 */
export async function buildCatalogueColumns(worldDir: string, shared: boolean): Promise<CatalogueColumns> {
  const ids: number[] = [];
  const creators: number[] = [];
  const cats: number[] = [];
  const durs: number[] = [];
  const uploads: number[] = [];
  for await (const batch of readVideoBatches(worldDir)) {
    for (const v of batch) {
      ids.push(v.videoId);
      creators.push(v.creatorId);
      cats.push(v.category);
      durs.push(v.durationS);
      uploads.push(v.uploadTsMs);
    }
  }
  const n = ids.length;
  let order: number[] | undefined;
  for (let i = 1; i < n; i++) {
    if ((ids[i] as number) <= (ids[i - 1] as number)) {
      order = [...ids.keys()].sort((a, b) => (ids[a] as number) - (ids[b] as number));
      break;
    }
  }
  const out = allocateCatalogueColumns(n, shared);
  for (let r = 0; r < n; r++) {
    const i = order === undefined ? r : (order[r] as number);
    out.ids[r] = ids[i] as number;
    out.creatorIds[r] = creators[i] as number;
    out.categories[r] = cats[i] as number;
    out.durationS[r] = durs[i] as number;
    out.uploadTsMs[r] = uploads[i] as number;
    if (r > 0 && out.ids[r] === out.ids[r - 1]) throw new TypeError(`${worldDir}: video ${out.ids[r]} appears twice in videos.ndjson`);
  }
  return out;
}

interface CatalogueFileMeta {
  readonly format: number;
  /** World identity (name@createdAt); another world's file is rebuilt. */
  readonly source: string;
  readonly rows: number;
  readonly createdAt: string;
}

const FILES = { columns: 'columns.bin', meta: 'meta.json' } as const;

/** `<snapshotDir>/item-catalogue-<world id>`. */
export function cataloguePath(snapshotDir: string, source: string): string {
  return path.join(snapshotDir, `item-catalogue-${source.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
}

/** Writes the columns for world `source`, replacing an older file atomically (rename). */
export async function writeCatalogueFile(snapshotDir: string, source: string, cols: CatalogueColumns): Promise<string> {
  const final = cataloguePath(snapshotDir, source);
  const tmp = `${final}.tmp-${process.pid}-${Date.now()}`;
  await mkdir(tmp, { recursive: true });
  const parts = CATALOGUE_COLUMNS.map((c) => new Uint8Array(cols[c].buffer, cols[c].byteOffset, cols[c].byteLength));
  await writeFile(path.join(tmp, FILES.columns), Buffer.concat(parts));
  const meta: CatalogueFileMeta = { format: CATALOGUE_FORMAT, source, rows: cols.ids.length, createdAt: new Date().toISOString() };
  await writeFile(path.join(tmp, FILES.meta), JSON.stringify(meta, null, 2));
  await replaceDir(tmp, final);
  return final;
}

/** Reads the columns of world `source`, or undefined when there is no matching file. */
export async function readCatalogueFile(snapshotDir: string, source: string, shared: boolean): Promise<CatalogueColumns | undefined> {
  const dir = cataloguePath(snapshotDir, source);
  if (!existsSync(path.join(dir, FILES.meta))) return undefined;
  const meta = JSON.parse(await readFile(path.join(dir, FILES.meta), 'utf8')) as CatalogueFileMeta;
  if (meta.format !== CATALOGUE_FORMAT || meta.source !== source) return undefined;
  const bytes = await readFile(path.join(dir, FILES.columns));
  if (bytes.length !== meta.rows * CATALOGUE_ROW_BYTES) return undefined;
  const out = allocateCatalogueColumns(meta.rows, shared);
  let at = 0;
  for (const c of CATALOGUE_COLUMNS) {
    const len = out[c].byteLength;
    // Copy into the (possibly shared) aligned buffer: readFile's Buffer need not be element-aligned.
    new Uint8Array(out[c].buffer, out[c].byteOffset, len).set(bytes.subarray(at, at + len));
    at += len;
  }
  return out;
}

/**
 * The catalogue of a world: from its file under `snapshotDir` when one matches, else parsed from
 * videos.ndjson (and the file written when `snapshotDir` is given).
 */
export async function loadCatalogueColumns(worldDir: string, source: string, snapshotDir: string | undefined, shared: boolean): Promise<{ columns: CatalogueColumns; fromFile: boolean }> {
  if (snapshotDir !== undefined) {
    const cached = await readCatalogueFile(snapshotDir, source, shared);
    if (cached !== undefined) return { columns: cached, fromFile: true };
  }
  const columns = await buildCatalogueColumns(worldDir, shared);
  if (snapshotDir !== undefined) await writeCatalogueFile(snapshotDir, source, columns);
  return { columns, fromFile: false };
}
