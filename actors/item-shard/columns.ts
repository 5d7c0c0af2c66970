/**
 * Storage of one shard's ItemFeatures, one fixed-size record per row. A row is also the item's
 * faiss label, so a search hit maps to its features with no hash lookup. Rows are append-only:
 * removing an item tombstones its row (videoId -1); an upsert of a known item reuses its row.
 * Memory: {@link ROW_BYTES} (48) bytes per row plus the videoId→row map (~70 bytes per live item in V8).
 *
 * Why records, not one typed array per field: a search answer reads every field of ~200 rows at
 * random, right after faiss has scanned ~100 MB of codes and evicted the CPU caches. With a column
 * per field each field of each hit was its own cache miss (nine per hit); the in-process ceiling's
 * profile (1M items, 2 shards) put 15% of a request's CPU on those reads. A 48-byte record is one
 * or two cache lines. Snapshots keep the column-major file format (columns.bin):
 * {@link ItemColumns.snapshotBytes} and {@link ItemColumns.fromSnapshotBytes} convert.
 */
import type { ItemFeatures, ItemMeta, ItemStats } from '../../core/features/item.js';
import { applyEventToItem } from '../../core/features/item.js';
import type { InteractionEvent } from '../../core/events.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';

/** Every column's type, in snapshot order: the snapshot file's (columns.bin) shape. */
export interface ItemColumnArrays {
  readonly videoIds: Float64Array;
  readonly creatorIds: Float64Array;
  readonly categories: Int32Array;
  readonly durationS: Float32Array;
  readonly uploadTsMs: Float64Array;
  readonly impressions: Uint32Array;
  readonly clicks: Uint32Array;
  readonly watches: Uint32Array;
  readonly watchRatioSums: Float32Array;
}

/** Column names in snapshot (columns.bin) order. */
export const COLUMN_NAMES = [
  'videoIds',
  'creatorIds',
  'categories',
  'durationS',
  'uploadTsMs',
  'impressions',
  'clicks',
  'watches',
  'watchRatioSums',
] as const satisfies readonly (keyof ItemColumnArrays)[];

type ColumnName = (typeof COLUMN_NAMES)[number];

const TOMBSTONE = -1;

/** Bytes of one row's record: three float64 fields, then six 32-bit ones. */
export const ROW_BYTES = 48;
const F64_PER_ROW = ROW_BYTES / 8;
const W32_PER_ROW = ROW_BYTES / 4;

// Float64 slots of a record (index within the row in 8-byte words).
const F_VIDEO_ID = 0;
const F_CREATOR_ID = 1;
const F_UPLOAD_TS_MS = 2;
// 32-bit slots (index within the row in 4-byte words; words 0-5 hold the float64 fields).
const W_CATEGORY = 6;
const W_DURATION_S = 7;
const W_IMPRESSIONS = 8;
const W_CLICKS = 9;
const W_WATCHES = 10;
const W_WATCH_RATIO_SUM = 11;

/** Where each snapshot column lives in a record: which typed view and which slot of it. */
const COLUMN_SLOTS: Readonly<Record<ColumnName, { readonly view: 'f64' | 'i32' | 'u32' | 'f32'; readonly slot: number }>> = {
  videoIds: { view: 'f64', slot: F_VIDEO_ID },
  creatorIds: { view: 'f64', slot: F_CREATOR_ID },
  uploadTsMs: { view: 'f64', slot: F_UPLOAD_TS_MS },
  categories: { view: 'i32', slot: W_CATEGORY },
  durationS: { view: 'f32', slot: W_DURATION_S },
  impressions: { view: 'u32', slot: W_IMPRESSIONS },
  clicks: { view: 'u32', slot: W_CLICKS },
  watches: { view: 'u32', slot: W_WATCHES },
  watchRatioSums: { view: 'f32', slot: W_WATCH_RATIO_SUM },
};

/** The typed views of one records buffer (all over the same bytes). */
class Records {
  readonly capacity: number;
  readonly f64: Float64Array;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly f32: Float32Array;

  constructor(capacity: number) {
    const buffer = new ArrayBuffer(capacity * ROW_BYTES);
    this.capacity = capacity;
    this.f64 = new Float64Array(buffer);
    this.i32 = new Int32Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.f32 = new Float32Array(buffer);
  }

  view(name: ColumnName): { readonly data: Float64Array | Int32Array | Uint32Array | Float32Array; readonly stride: number; readonly slot: number } {
    const { view, slot } = COLUMN_SLOTS[name];
    return { data: this[view], stride: view === 'f64' ? F64_PER_ROW : W32_PER_ROW, slot };
  }
}

/** A typed view of snapshot column `name` over `rows` values at `byteOffset` of `buffer`. */
function columnArrayOver(name: ColumnName, buffer: ArrayBufferLike, byteOffset: number, rows: number): Float64Array | Int32Array | Uint32Array | Float32Array {
  switch (COLUMN_SLOTS[name].view) {
    case 'f64': return new Float64Array(buffer, byteOffset, rows);
    case 'i32': return new Int32Array(buffer, byteOffset, rows);
    case 'u32': return new Uint32Array(buffer, byteOffset, rows);
    case 'f32': return new Float32Array(buffer, byteOffset, rows);
  }
}

/** Bytes of columns.bin for `rows` rows. */
function snapshotByteLength(rows: number): number {
  let perRow = 0;
  for (const name of COLUMN_NAMES) perRow += COLUMN_SLOTS[name].view === 'f64' ? 8 : 4;
  return rows * perRow;
}

/** The features of one shard's items as fixed-size records; see the module comment. */
export class ItemColumns {
  #rec: Records;
  #rows = 0;
  readonly #rowOf = new Map<number, number>();

  constructor(capacity = 1024) {
    this.#rec = new Records(Math.max(16, capacity));
  }

  /** Marks the first `rows` records used and maps their live video ids to rows. */
  #indexRows(rows: number): void {
    this.#rows = rows;
    const f64 = this.#rec.f64;
    for (let r = 0; r < rows; r++) {
      const id = f64[r * F64_PER_ROW + F_VIDEO_ID] as number;
      if (id !== TOMBSTONE) this.#rowOf.set(id, r);
    }
  }

  /** Live items. */
  get size(): number {
    return this.#rowOf.size;
  }

  /** Rows used, tombstones included. */
  get rows(): number {
    return this.#rows;
  }

  /**
   * The snapshot file's bytes: every column's used part back to back in {@link COLUMN_NAMES} order,
   * little-endian (the platform's order; upnext runs on x86-64 and arm64). One copy, column by column.
   */
  snapshotBytes(): Uint8Array {
    const rows = this.#rows;
    const out = new Uint8Array(snapshotByteLength(rows));
    let at = 0;
    for (const name of COLUMN_NAMES) {
      // Each column starts at a multiple of 8 bytes (8+8+4+4 bytes per row precede uploadTsMs), so
      // a typed view over the output is aligned: the values go in with no intermediate copy.
      const dst = columnArrayOver(name, out.buffer, at, rows);
      const { data, stride, slot } = this.#rec.view(name);
      for (let r = 0; r < rows; r++) dst[r] = data[r * stride + slot] as number;
      at += dst.byteLength;
    }
    return out;
  }

  /**
   * The inverse of {@link snapshotBytes}: `bytes` must hold exactly `rows` rows of every column.
   * Throws RangeError naming both lengths otherwise.
   */
  static fromSnapshotBytes(bytes: Uint8Array, rows: number): ItemColumns {
    const want = snapshotByteLength(rows);
    if (bytes.byteLength !== want) throw new RangeError(`columns.bin holds ${bytes.byteLength} bytes, expected ${want} for ${rows} rows`);
    // Views need element alignment; a Buffer from readFile may start anywhere in its pool.
    const src = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes);
    const c = new ItemColumns(rows);
    let at = 0;
    for (const name of COLUMN_NAMES) {
      const col = columnArrayOver(name, src.buffer, src.byteOffset + at, rows);
      const { data, stride, slot } = c.#rec.view(name);
      for (let r = 0; r < rows; r++) data[r * stride + slot] = col[r] as number;
      at += col.byteLength;
    }
    c.#indexRows(rows);
    return c;
  }

  rowOf(videoId: number): number | undefined {
    return this.#rowOf.get(videoId);
  }

  videoIdAt(row: number): number {
    if (row < 0 || row >= this.#rows) return TOMBSTONE;
    return this.#rec.f64[row * F64_PER_ROW + F_VIDEO_ID] as number;
  }

  /** Appends a new row (the caller checked the id is not present) and returns it. */
  append(meta: ItemMeta, stats: ItemStats): number {
    if (this.#rows === this.#rec.capacity) this.#grow();
    const row = this.#rows++;
    this.#write(row, meta, stats);
    this.#rowOf.set(meta.videoId, row);
    return row;
  }

  /** Overwrites the metadata of an existing row, keeping its counters. */
  updateMeta(row: number, meta: ItemMeta): void {
    this.#write(row, meta, this.statsAt(row));
  }

  /** Tombstones the row of `videoId`; returns its row or undefined when unknown. */
  remove(videoId: number): number | undefined {
    const row = this.#rowOf.get(videoId);
    if (row === undefined) return undefined;
    this.#rowOf.delete(videoId);
    this.#rec.f64[row * F64_PER_ROW + F_VIDEO_ID] = TOMBSTONE;
    return row;
  }

  statsAt(row: number): ItemStats {
    const { u32, f32 } = this.#rec;
    const w = row * W32_PER_ROW;
    return {
      impressions: u32[w + W_IMPRESSIONS] ?? 0,
      clicks: u32[w + W_CLICKS] ?? 0,
      watches: u32[w + W_WATCHES] ?? 0,
      watchRatioSum: f32[w + W_WATCH_RATIO_SUM] ?? 0,
    };
  }

  featuresAt(row: number): ItemFeatures {
    const { f64, i32, f32 } = this.#rec;
    const d = row * F64_PER_ROW;
    const w = row * W32_PER_ROW;
    return {
      videoId: f64[d + F_VIDEO_ID] ?? TOMBSTONE,
      creatorId: f64[d + F_CREATOR_ID] ?? 0,
      category: i32[w + W_CATEGORY] ?? 0,
      durationS: f32[w + W_DURATION_S] ?? 0,
      uploadTsMs: f64[d + F_UPLOAD_TS_MS] ?? 0,
      ...this.statsAt(row),
    };
  }

  /** Every live item (tombstoned rows skipped), in row order: what a rebuild on other towers starts from. */
  liveItems(): ItemFeatures[] {
    const out: ItemFeatures[] = [];
    for (let row = 0; row < this.rows; row++) if (this.videoIdAt(row) >= 0) out.push(this.featuresAt(row));
    return out;
  }

  /** Applies one interaction to the counters of its video; false when the video is not here. */
  applyEvent(event: InteractionEvent): boolean {
    const row = this.#rowOf.get(event.videoId);
    if (row === undefined) return false;
    const stats = this.statsAt(row);
    applyEventToItem(stats, event, this.#rec.f32[row * W32_PER_ROW + W_DURATION_S] ?? 0);
    this.#writeStats(row, stats);
    return true;
  }

  /** Appends row `row` (a used row) with retrieval score `score` to a columnar candidate batch. */
  pushCandidate(batch: CandidateBatchMsg, row: number, score: number): void {
    const { f64, i32, u32, f32 } = this.#rec;
    const d = row * F64_PER_ROW;
    const w = row * W32_PER_ROW;
    batch.videoIds.push(f64[d + F_VIDEO_ID] ?? TOMBSTONE);
    batch.scores.push(score);
    batch.creatorIds.push(f64[d + F_CREATOR_ID] ?? 0);
    batch.categories.push(i32[w + W_CATEGORY] ?? 0);
    batch.durationS.push(f32[w + W_DURATION_S] ?? 0);
    batch.uploadTsMs.push(f64[d + F_UPLOAD_TS_MS] ?? 0);
    batch.impressions.push(u32[w + W_IMPRESSIONS] ?? 0);
    batch.clicks.push(u32[w + W_CLICKS] ?? 0);
    batch.watches.push(u32[w + W_WATCHES] ?? 0);
    batch.watchRatioSums.push(f32[w + W_WATCH_RATIO_SUM] ?? 0);
  }

  /** Bytes held by the records (capacity) plus an estimate of the id map. */
  memoryBytes(): number {
    return this.#rec.capacity * ROW_BYTES + this.#rowOf.size * 70;
  }

  #write(row: number, meta: ItemMeta, stats: ItemStats): void {
    const { f64, i32, f32 } = this.#rec;
    const d = row * F64_PER_ROW;
    const w = row * W32_PER_ROW;
    f64[d + F_VIDEO_ID] = meta.videoId;
    f64[d + F_CREATOR_ID] = meta.creatorId;
    f64[d + F_UPLOAD_TS_MS] = meta.uploadTsMs;
    i32[w + W_CATEGORY] = meta.category;
    f32[w + W_DURATION_S] = meta.durationS;
    this.#writeStats(row, stats);
  }

  #writeStats(row: number, stats: ItemStats): void {
    const { u32, f32 } = this.#rec;
    const w = row * W32_PER_ROW;
    u32[w + W_IMPRESSIONS] = stats.impressions;
    u32[w + W_CLICKS] = stats.clicks;
    u32[w + W_WATCHES] = stats.watches;
    f32[w + W_WATCH_RATIO_SUM] = stats.watchRatioSum;
  }

  #grow(): void {
    const next = new Records(this.#rec.capacity * 2);
    new Uint8Array(next.f64.buffer).set(new Uint8Array(this.#rec.f64.buffer));
    this.#rec = next;
  }
}
