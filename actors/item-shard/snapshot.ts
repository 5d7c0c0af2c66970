/**
 * On-disk snapshot of a built item shard, so a restart skips the event replay, the item tower and
 * the index build (DESIGN §2: "snapshot to disk, restore on start"). Layout of
 * `<snapshotDir>/item-shard-<s>-of-<S>-<modelVersion>/`:
 * - `index.faiss` — the faiss index (faiss write_index; holds the vectors: Flat storage);
 * - `columns.bin` — the feature columns back to back, little-endian, in COLUMN_NAMES order;
 * - `meta.json`  — {@link ItemShardSnapshotMeta}, written last, so its presence marks a complete
 *   snapshot. The folder is written under a temporary name and renamed into place.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { replaceDir } from '../../core/replace-dir.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ItemColumnArrays } from './columns.js';
import { COLUMN_NAMES, ItemColumns } from './columns.js';
import { faissBuild, faissRead } from './faiss.js';
import type { IndexOptions } from './index-options.js';
import { factoryFor, resolveIndexOptions } from './index-options.js';
import { ItemShardIndex } from './shard-index.js';

/** Bump when the snapshot layout changes; older snapshots are then ignored (rebuilt). */
export const ITEM_SNAPSHOT_FORMAT = 1;

/** `meta.json` of a snapshot. */
export interface ItemShardSnapshotMeta {
  readonly format: number;
  readonly shard: number;
  readonly shardCount: number;
  readonly modelVersion: string;
  /** Feature-spec hash of the model that computed the vectors. */
  readonly featureSpecHash: string;
  /** Identifies the world the shard was built from (name + createdAt); a mismatch forces a rebuild. */
  readonly source: string;
  readonly dim: number;
  readonly factory: string;
  readonly rows: number;
  readonly items: number;
  readonly createdAt: string;
}

/** What a snapshot must match to be restored. */
export type SnapshotKey = Pick<ItemShardSnapshotMeta, 'shard' | 'shardCount' | 'modelVersion' | 'featureSpecHash' | 'source'>;

/** `<snapshotDir>/item-shard-<s>-of-<S>-<modelVersion>`. */
export function itemSnapshotPath(snapshotDir: string, key: Pick<SnapshotKey, 'shard' | 'shardCount' | 'modelVersion'>): string {
  const version = key.modelVersion.replace(/[^A-Za-z0-9_.-]/g, '_');
  return path.join(snapshotDir, `item-shard-${key.shard}-of-${key.shardCount}-${version}`);
}

const FILES = { index: 'index.faiss', columns: 'columns.bin', meta: 'meta.json' } as const;

/** Writes `index` as the snapshot for `key`, replacing any older one atomically (rename). */
export async function writeItemSnapshot(snapshotDir: string, key: SnapshotKey, index: ItemShardIndex): Promise<string> {
  const final = itemSnapshotPath(snapshotDir, key);
  const tmp = `${final}.tmp-${process.pid}-${Date.now()}`;
  await mkdir(tmp, { recursive: true });
  index.faiss.write(path.join(tmp, FILES.index));
  const cols = index.columns.arrays();
  const parts = COLUMN_NAMES.map((name) => {
    const a = cols[name];
    return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  });
  await writeFile(path.join(tmp, FILES.columns), Buffer.concat(parts));
  const meta: ItemShardSnapshotMeta = {
    format: ITEM_SNAPSHOT_FORMAT,
    ...key,
    dim: index.dim,
    factory: index.factory,
    rows: index.columns.rows,
    items: index.size,
    createdAt: new Date().toISOString(),
  };
  await writeFile(path.join(tmp, FILES.meta), JSON.stringify(meta, null, 2));
  await replaceDir(tmp, final);
  return final;
}

/**
 * Restores the snapshot for `key`, or returns undefined when there is none or it does not match
 * (other model, world, format): the caller rebuilds.
 */
export async function readItemSnapshot(snapshotDir: string, key: SnapshotKey, options: IndexOptions = {}): Promise<ItemShardIndex | undefined> {
  const dir = itemSnapshotPath(snapshotDir, key);
  if (!existsSync(path.join(dir, FILES.meta))) return undefined;
  const meta = JSON.parse(await readFile(path.join(dir, FILES.meta), 'utf8')) as ItemShardSnapshotMeta;
  if (
    meta.format !== ITEM_SNAPSHOT_FORMAT ||
    meta.shard !== key.shard ||
    meta.shardCount !== key.shardCount ||
    meta.modelVersion !== key.modelVersion ||
    meta.featureSpecHash !== key.featureSpecHash ||
    meta.source !== key.source
  ) {
    return undefined;
  }
  // The index kind must be the one the options pick now on this faiss build: a snapshot written by
  // the AVX2 build's fast-scan 'auto' is rebuilt as IVF Flat on Debian's build (where fast-scan is
  // emulated and ~10x slower), and a changed `factory` option takes effect at the next start.
  if (meta.factory !== factoryFor(meta.rows, resolveIndexOptions(options), faissBuild(), meta.dim)) return undefined;
  const bytes = await readFile(path.join(dir, FILES.columns));
  const cols = {} as Record<keyof ItemColumnArrays, unknown>;
  const blank = new ItemColumns(1).arrays();
  let at = 0;
  for (const name of COLUMN_NAMES) {
    const ctor = blank[name].constructor as new (buf: ArrayBuffer, offset: number, length: number) => Float64Array;
    const width = blank[name].BYTES_PER_ELEMENT;
    // Copy into an aligned buffer: Buffer slices from readFile may not be element-aligned.
    const copy = new Uint8Array(meta.rows * width);
    copy.set(bytes.subarray(at, at + meta.rows * width));
    cols[name] = new ctor(copy.buffer, 0, meta.rows);
    at += meta.rows * width;
  }
  if (at !== bytes.length) throw new Error(`${dir}: columns.bin holds ${bytes.length} bytes, expected ${at}`);
  const columns = ItemColumns.fromArrays(cols as ItemColumnArrays, meta.rows);
  const faiss = faissRead(path.join(dir, FILES.index));
  return ItemShardIndex.fromParts(faiss, columns, { dim: meta.dim, factory: meta.factory }, options);
}
