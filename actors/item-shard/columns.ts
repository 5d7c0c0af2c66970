/**
 * Columnar storage of one shard's ItemFeatures: one typed array per field, indexed by row. A row is
 * also the item's faiss label, so a search hit maps to its features with no hash lookup. Rows are
 * append-only: removing an item tombstones its row (videoId -1); an upsert of a known item reuses
 * its row. Memory: 49 bytes per row plus the videoId→row map (~70 bytes per live item in V8).
 */
import type { ItemFeatures, ItemMeta, ItemStats } from '../../core/features/item.js';
import { applyEventToItem } from '../../core/features/item.js';
import type { InteractionEvent } from '../../core/events.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';

/** Every column, in snapshot order. */
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

const TOMBSTONE = -1;

function allocate(capacity: number): ItemColumnArrays {
  return {
    videoIds: new Float64Array(capacity),
    creatorIds: new Float64Array(capacity),
    categories: new Int32Array(capacity),
    durationS: new Float32Array(capacity),
    uploadTsMs: new Float64Array(capacity),
    impressions: new Uint32Array(capacity),
    clicks: new Uint32Array(capacity),
    watches: new Uint32Array(capacity),
    watchRatioSums: new Float32Array(capacity),
  };
}

/** The features of one shard's items in typed arrays; see the module comment. */
export class ItemColumns {
  #cols: ItemColumnArrays;
  #rows = 0;
  readonly #rowOf = new Map<number, number>();

  constructor(capacity = 1024) {
    this.#cols = allocate(Math.max(16, capacity));
  }

  /** Rebuilds from snapshot columns (`rows` entries of each array are used). */
  static fromArrays(cols: ItemColumnArrays, rows: number): ItemColumns {
    const c = new ItemColumns(rows);
    for (const name of COLUMN_NAMES) (c.#cols[name] as Float64Array).set((cols[name] as Float64Array).subarray(0, rows));
    c.#rows = rows;
    for (let r = 0; r < rows; r++) {
      const id = cols.videoIds[r] ?? TOMBSTONE;
      if (id !== TOMBSTONE) c.#rowOf.set(id, r);
    }
    return c;
  }

  /** Live items. */
  get size(): number {
    return this.#rowOf.size;
  }

  /** Rows used, tombstones included. */
  get rows(): number {
    return this.#rows;
  }

  /** Views of the used part of every column (for snapshots). */
  arrays(): ItemColumnArrays {
    const out = {} as Record<keyof ItemColumnArrays, unknown>;
    for (const name of COLUMN_NAMES) out[name] = this.#cols[name].subarray(0, this.#rows);
    return out as ItemColumnArrays;
  }

  rowOf(videoId: number): number | undefined {
    return this.#rowOf.get(videoId);
  }

  videoIdAt(row: number): number {
    return this.#cols.videoIds[row] ?? TOMBSTONE;
  }

  /** Appends a new row (the caller checked the id is not present) and returns it. */
  append(meta: ItemMeta, stats: ItemStats): number {
    if (this.#rows === this.#cols.videoIds.length) this.#grow();
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
    this.#cols.videoIds[row] = TOMBSTONE;
    return row;
  }

  statsAt(row: number): ItemStats {
    const c = this.#cols;
    return {
      impressions: c.impressions[row] ?? 0,
      clicks: c.clicks[row] ?? 0,
      watches: c.watches[row] ?? 0,
      watchRatioSum: c.watchRatioSums[row] ?? 0,
    };
  }

  featuresAt(row: number): ItemFeatures {
    const c = this.#cols;
    return {
      videoId: c.videoIds[row] ?? TOMBSTONE,
      creatorId: c.creatorIds[row] ?? 0,
      category: c.categories[row] ?? 0,
      durationS: c.durationS[row] ?? 0,
      uploadTsMs: c.uploadTsMs[row] ?? 0,
      ...this.statsAt(row),
    };
  }

  /** Applies one interaction to the counters of its video; false when the video is not here. */
  applyEvent(event: InteractionEvent): boolean {
    const row = this.#rowOf.get(event.videoId);
    if (row === undefined) return false;
    const stats = this.statsAt(row);
    applyEventToItem(stats, event, this.#cols.durationS[row] ?? 0);
    this.#writeStats(row, stats);
    return true;
  }

  /** Appends row `row` with retrieval score `score` to a columnar candidate batch. */
  pushCandidate(batch: CandidateBatchMsg, row: number, score: number): void {
    const c = this.#cols;
    batch.videoIds.push(c.videoIds[row] ?? TOMBSTONE);
    batch.scores.push(score);
    batch.creatorIds.push(c.creatorIds[row] ?? 0);
    batch.categories.push(c.categories[row] ?? 0);
    batch.durationS.push(c.durationS[row] ?? 0);
    batch.uploadTsMs.push(c.uploadTsMs[row] ?? 0);
    batch.impressions.push(c.impressions[row] ?? 0);
    batch.clicks.push(c.clicks[row] ?? 0);
    batch.watches.push(c.watches[row] ?? 0);
    batch.watchRatioSums.push(c.watchRatioSums[row] ?? 0);
  }

  /** Bytes held by the columns (capacity) plus an estimate of the id map. */
  memoryBytes(): number {
    let bytes = 0;
    for (const name of COLUMN_NAMES) bytes += this.#cols[name].byteLength;
    return bytes + this.#rowOf.size * 70;
  }

  #write(row: number, meta: ItemMeta, stats: ItemStats): void {
    const c = this.#cols;
    c.videoIds[row] = meta.videoId;
    c.creatorIds[row] = meta.creatorId;
    c.categories[row] = meta.category;
    c.durationS[row] = meta.durationS;
    c.uploadTsMs[row] = meta.uploadTsMs;
    this.#writeStats(row, stats);
  }

  #writeStats(row: number, stats: ItemStats): void {
    const c = this.#cols;
    c.impressions[row] = stats.impressions;
    c.clicks[row] = stats.clicks;
    c.watches[row] = stats.watches;
    c.watchRatioSums[row] = stats.watchRatioSum;
  }

  #grow(): void {
    const next = allocate(this.#cols.videoIds.length * 2);
    for (const name of COLUMN_NAMES) (next[name] as Float64Array).set(this.#cols[name] as Float64Array);
    this.#cols = next;
  }
}
