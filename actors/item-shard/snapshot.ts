/**
 * On-disk snapshot of an item shard, so a restart skips the event replay, the item tower and the
 * index build (DESIGN §2: "snapshot to disk, restore on start"), and keeps the admin upserts and
 * removals written since the build (the worker snapshots again after changes: worker.ts). Layout of
 * `<snapshotDir>/item-shard-<s>-of-<S>-<modelVersion>/`:
 * - `index.faiss` — the faiss index (faiss write_index; holds the vectors: Flat storage);
 * - `columns.bin` — the feature columns back to back, little-endian, in COLUMN_NAMES order;
 * - `meta.json`  — {@link ItemShardSnapshotMeta}, written last, so its presence marks a complete
 *   snapshot. The folder is written under a temporary name and put in place atomically
 *   (core/replace-dir.ts).
 *
 * Restore rule ({@link snapshotRefusal}): the snapshot must be of this shard, model, feature spec and
 * world; and its index must be one this process would serve. Format 2 records the build facts
 * (requested factory, flatMaxItems, resolved factory, nlist, faiss build, items at build), so that
 * check compares settings, never the current item count: a shard whose upserts crossed
 * `flatMaxItems` or an 'auto' nlist step still restores its own snapshot. Format 1 snapshots (no
 * facts) keep the older rule: the factory the options pick now for the snapshot's row count. The
 * facts also carry the 'auto' nprobe calibration (nprobe-calibration.ts): an IVF snapshot is rebuilt
 * when it has none but the model ships retrieval queries, when it was calibrated for another
 * perShardK, or when no setting it tried meets the recall target asked now.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { replaceDir } from '../../core/replace-dir.js';
import { ItemColumns } from './columns.js';
import type { FaissBuild } from './faiss.js';
import { faissBuild, faissRead } from './faiss.js';
import type { IndexOptions, ResolvedIndexOptions } from './index-options.js';
import { autoCouldPick, factoryFor, hasRefine, nlistOf, resolveIndexOptions } from './index-options.js';
import type { ItemShardBuildFacts } from './shard-index.js';
import { ItemShardIndex, calibratedNprobe } from './shard-index.js';

/** Format written now (2: {@link ItemShardSnapshotMeta.build} present). */
export const ITEM_SNAPSHOT_FORMAT = 2;
/** Formats restored: 1 (no build facts: the older restore rule) and 2. Others are rebuilt. */
export const READABLE_ITEM_SNAPSHOT_FORMATS: readonly number[] = [1, 2];

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
  /** Column rows, tombstones included. */
  readonly rows: number;
  /** Live items. */
  readonly items: number;
  readonly createdAt: string;
  /** How the index was built (format ≥ 2; absent in format 1 = unknown facts). */
  readonly build?: ItemShardBuildFacts;
  /**
   * Embedding space of the towers that computed the vectors (actors/model/embedding-space.ts); absent
   * in snapshots written before spaces existed (or with spaces off), which are not checked for it.
   */
  readonly space?: string;
}

/** What a snapshot must match to be restored. */
export type SnapshotKey = Pick<ItemShardSnapshotMeta, 'shard' | 'shardCount' | 'modelVersion' | 'featureSpecHash' | 'source' | 'space'>;

/** What this process accepts besides the key: its index options and the faiss build it runs. */
export interface SnapshotAcceptance {
  readonly options: ResolvedIndexOptions;
  readonly faissBuild: FaissBuild;
  /**
   * What an 'auto' nprobe would be calibrated with if the shard were built now: the coordinator's
   * perShardK and whether the model ships retrieval queries. Default: no queries (the fixed rule;
   * calibrations in the snapshot are still used when they fit the options).
   */
  readonly calibration?: SnapshotCalibrationContext;
}

/** See {@link SnapshotAcceptance.calibration}. */
export interface SnapshotCalibrationContext {
  readonly fetch: number;
  readonly hasQueries: boolean;
}

/** `<snapshotDir>/item-shard-<s>-of-<S>-<modelVersion>`. */
export function itemSnapshotPath(snapshotDir: string, key: Pick<SnapshotKey, 'shard' | 'shardCount' | 'modelVersion'>): string {
  const version = key.modelVersion.replace(/[^A-Za-z0-9_.-]/g, '_');
  return path.join(snapshotDir, `item-shard-${key.shard}-of-${key.shardCount}-${version}`);
}

const FILES = { index: 'index.faiss', columns: 'columns.bin', meta: 'meta.json' } as const;

/**
 * Why `meta` may not be restored for `key` in a process that accepts `accept`, or undefined when
 * it may. Pure (no I/O): the reason is what the shard logs and reports before rebuilding.
 */
export function snapshotRefusal(meta: ItemShardSnapshotMeta, key: SnapshotKey, accept: SnapshotAcceptance): string | undefined {
  if (!READABLE_ITEM_SNAPSHOT_FORMATS.includes(meta.format)) {
    return `snapshot format ${meta.format}; this version reads ${READABLE_ITEM_SNAPSHOT_FORMATS.join(', ')}`;
  }
  if (meta.shard !== key.shard || meta.shardCount !== key.shardCount) {
    return `snapshot of shard ${meta.shard} of ${meta.shardCount}, not ${key.shard} of ${key.shardCount}`;
  }
  if (meta.modelVersion !== key.modelVersion) return `snapshot of model ${meta.modelVersion}, serving model ${key.modelVersion}`;
  if (meta.featureSpecHash !== key.featureSpecHash) {
    return `snapshot vectors come from feature spec ${meta.featureSpecHash}, model ${key.modelVersion} uses feature spec ${key.featureSpecHash}`;
  }
  if (meta.source !== key.source) return `snapshot built from world ${meta.source}, serving world ${key.source}`;
  // Same version name, other tower files (replaced in place): the stored vectors are another space's.
  if (meta.space && key.space && meta.space !== key.space) return `snapshot vectors are in embedding space ${meta.space}, model ${key.modelVersion}'s towers are space ${key.space}`;
  const opts = accept.options;
  const b = meta.build;
  if (b === undefined) {
    // Format 1: no build facts, so the older rule (factory the options pick now for these rows).
    const now = factoryFor(meta.rows, opts, accept.faissBuild, meta.dim);
    if (meta.factory !== now) {
      return `format-1 snapshot (no build facts) holds ${meta.factory}; the options pick ${now} for ${meta.rows} rows on the ${accept.faissBuild} faiss build`;
    }
    return calibrationRefusal({ nlist: nlistOf(meta.factory) ?? null, factory: meta.factory }, opts, accept.calibration);
  }
  if (b.factory !== meta.factory) return `snapshot meta is inconsistent: build.factory ${b.factory}, factory ${meta.factory}`;
  if (b.requestedFactory !== opts.factory) {
    return `snapshot built with index.factory ${JSON.stringify(b.requestedFactory)}, the options now ask ${JSON.stringify(opts.factory)}`;
  }
  if (opts.factory === 'auto') {
    if (b.flatMaxItems !== opts.flatMaxItems) {
      return `snapshot built with index.flatMaxItems ${b.flatMaxItems}, the options now say ${opts.flatMaxItems}`;
    }
    // 'auto' differs by faiss build (fast-scan PQ on AVX2, IVF Flat on Debian, where fast-scan is
    // emulated and ~10x slower): an index of the other build's family is rebuilt.
    if (!autoCouldPick(meta.factory, accept.faissBuild, meta.dim)) {
      return `snapshot index ${meta.factory} (written by the ${b.faissBuild} faiss build) is not one 'auto' picks on this process's ${accept.faissBuild} build`;
    }
    return calibrationRefusal(b, opts, accept.calibration);
  }
  // An explicit factory: both builds compile the same faiss 1.7.3 source, so either reads the file.
  const now = factoryFor(0, opts, accept.faissBuild, meta.dim);
  if (meta.factory !== now) return `snapshot index ${meta.factory}, the options' factory resolves to ${now}`;
  return calibrationRefusal(b, opts, accept.calibration);
}

/**
 * Why a snapshot's nprobe calibration does not fit what this process would serve: an IVF index with
 * nprobe 'auto' and calibration on is rebuilt (and so calibrated) when it has no calibration but the
 * model ships queries, when it was calibrated for another perShardK, or when no setting it tried
 * meets the recall target now asked. Undefined when it fits (or does not apply).
 */
function calibrationRefusal(b: Pick<ItemShardBuildFacts, 'nlist' | 'factory' | 'nprobeCalibration'>, opts: ResolvedIndexOptions, ctx: SnapshotCalibrationContext | undefined): string | undefined {
  if (b.nlist === null || opts.nprobe !== 'auto' || opts.calibrationQueries === 0) return undefined;
  const c = b.nprobeCalibration ?? null;
  if (c === null) {
    return ctx?.hasQueries === true ? `snapshot's nprobe was not calibrated; the model ships retrieval queries, so the rebuild calibrates it` : undefined;
  }
  const nlist = b.nlist;
  if (!Array.isArray(c.points) || c.points.length === 0 || !c.points.every((p) => Number.isInteger(p.nprobe) && p.nprobe >= 1 && p.nprobe <= nlist && typeof p.recall === 'number' && typeof p.lower === 'number')) {
    return `snapshot's nprobe calibration is malformed`;
  }
  if (ctx !== undefined && c.fetch !== ctx.fetch) return `snapshot's nprobe was calibrated for ${c.fetch} results per shard search, the coordinator asks ${ctx.fetch}`;
  const refine = hasRefine(b.factory) ? opts.refineFactor : null;
  if ((c.refineFactor ?? null) !== refine) return `snapshot's nprobe was calibrated at re-rank factor ${String(c.refineFactor ?? null)}, index.refineFactor is now ${String(refine)}`;
  if (calibratedNprobe(c, opts.recallTarget) === undefined) {
    const best = Math.max(...c.points.map((p) => p.lower));
    return `snapshot's nprobe was calibrated for recall ${c.target} (best lower bound ${best.toFixed(3)}); index.recallTarget is now ${opts.recallTarget}`;
  }
  return undefined;
}

/** Result of {@link restoreItemSnapshot}. */
export type SnapshotRestore =
  | { readonly kind: 'restored'; readonly index: ItemShardIndex; readonly meta: ItemShardSnapshotMeta; readonly path: string }
  | { readonly kind: 'absent'; readonly path: string }
  /** A snapshot exists but may not (or could not) be restored; `reason` says why. */
  | { readonly kind: 'refused'; readonly reason: string; readonly path: string };

/** The snapshot for `key` when there is one this process accepts (see {@link snapshotRefusal}). */
export async function restoreItemSnapshot(snapshotDir: string, key: SnapshotKey, options: IndexOptions = {}, calibration?: SnapshotCalibrationContext): Promise<SnapshotRestore> {
  const dir = itemSnapshotPath(snapshotDir, key);
  if (!existsSync(path.join(dir, FILES.meta))) return { kind: 'absent', path: dir };
  let meta: ItemShardSnapshotMeta;
  try {
    meta = JSON.parse(await readFile(path.join(dir, FILES.meta), 'utf8')) as ItemShardSnapshotMeta;
  } catch (err) {
    return { kind: 'refused', reason: `unreadable meta.json: ${(err as Error).message}`, path: dir };
  }
  const resolved = resolveIndexOptions(options);
  const reason = snapshotRefusal(meta, key, { options: resolved, faissBuild: faissBuild(), ...(calibration !== undefined ? { calibration } : {}) });
  if (reason !== undefined) return { kind: 'refused', reason, path: dir };
  let columns: ItemColumns;
  try {
    // A folder replaced (another writer) or pruned (a tower switch elsewhere) after meta.json was
    // read fails here: the shard rebuilds instead of failing to open.
    columns = ItemColumns.fromSnapshotBytes(await readFile(path.join(dir, FILES.columns)), meta.rows);
  } catch (err) {
    return { kind: 'refused', reason: (err as Error).message, path: dir };
  }
  let faiss;
  try {
    faiss = faissRead(path.join(dir, FILES.index));
  } catch (err) {
    return { kind: 'refused', reason: `unreadable index.faiss: ${(err as Error).message}`, path: dir };
  }
  const index = ItemShardIndex.fromParts(faiss, columns, { dim: meta.dim, factory: meta.factory }, resolved, meta.build);
  return { kind: 'restored', index, meta, path: dir };
}

/**
 * Restores the snapshot for `key`, or returns undefined when there is none or it is refused (other
 * model, spec, world, format, index settings): the caller rebuilds. {@link restoreItemSnapshot}
 * also says why.
 */
export async function readItemSnapshot(snapshotDir: string, key: SnapshotKey, options: IndexOptions = {}): Promise<ItemShardIndex | undefined> {
  const r = await restoreItemSnapshot(snapshotDir, key, options);
  return r.kind === 'restored' ? r.index : undefined;
}

/** A snapshot whose state is fixed (captured) but whose files are not in place yet. */
export interface CapturedItemSnapshot {
  /** Live items captured. */
  readonly items: number;
  /** Time the synchronous capture took (faiss write + column copy), ms: the shard served nothing meanwhile. */
  readonly captureMs: number;
  /** Writes the rest and puts the folder in place; resolves to the snapshot folder. */
  finish(): Promise<string>;
}

let tmpSeq = 0;

/**
 * Fixes the snapshot of `index` synchronously — the faiss file is written into a temporary folder
 * and the columns copied — so that the index may change again as soon as this returns; the columns
 * and meta files and the atomic rename happen in {@link CapturedItemSnapshot.finish}, which searches
 * and admin changes may interleave with.
 */
export function captureItemSnapshot(snapshotDir: string, key: SnapshotKey, index: ItemShardIndex): CapturedItemSnapshot {
  const t0 = performance.now();
  const final = itemSnapshotPath(snapshotDir, key);
  // pid + thread + sequence: twin replicas in one process, or two captures in one millisecond, never share a folder.
  const tmp = `${final}.tmp-${process.pid}-${threadId}-${tmpSeq++}`;
  mkdirSync(tmp, { recursive: true });
  let columns: Buffer;
  try {
    index.faiss.write(path.join(tmp, FILES.index));
    const bytes = index.columns.snapshotBytes();
    columns = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch (err) {
    void rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const meta: ItemShardSnapshotMeta = {
    format: ITEM_SNAPSHOT_FORMAT,
    ...key,
    dim: index.dim,
    factory: index.factory,
    rows: index.columns.rows,
    items: index.size,
    createdAt: new Date().toISOString(),
    build: index.buildFacts,
  };
  return {
    items: meta.items,
    captureMs: performance.now() - t0,
    finish: async () => {
      try {
        await writeFile(path.join(tmp, FILES.columns), columns);
        await writeFile(path.join(tmp, FILES.meta), JSON.stringify(meta, null, 2));
        await replaceDir(tmp, final);
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw err;
      }
      return final;
    },
  };
}

/** Writes `index` as the snapshot for `key`, replacing any older one atomically (rename). */
export async function writeItemSnapshot(snapshotDir: string, key: SnapshotKey, index: ItemShardIndex): Promise<string> {
  return captureItemSnapshot(snapshotDir, key, index).finish();
}

/** Whether process `pid` exists on this machine (a signal-0 probe; EPERM means it exists). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What {@link pruneItemSnapshots} removes besides garbage. */
export interface PruneOptions {
  /**
   * Model versions whose snapshots of the shard stay; every other complete snapshot of it goes.
   * Undefined: every version stays, only garbage goes.
   */
  readonly keepVersions?: ReadonlySet<string>;
  /** A folder of the shard without meta.json younger than this stays (it may be mid-replace). Default 60000 ms. */
  readonly minAgeMs?: number;
}

let trashSeq = 0;

/**
 * Removes one shard's superseded snapshots from `snapshotDir`: its complete snapshots of model
 * versions not in `keepVersions` (the caller, the node's tower switch, passes the served version
 * and the one it replaced), and garbage — folders of the shard without a meta.json older than
 * `minAgeMs`, unfinished writes (`.tmp-<pid>-…`) and folders set aside by core/replace-dir.ts
 * (`.old-<pid>-…`) whose process is gone, and leftovers of an earlier prune (`.trash-…`). Other
 * shards' folders are never touched. Each folder is first claimed by an atomic rename to a
 * `.trash-…` name, so a restore never sees it half removed and two pruners (nodes sharing the
 * folder) never both count it; then removed. Resolves to the snapshot folders removed (garbage
 * included, trash leftovers not); a folder that cannot be read, claimed or removed is left for the
 * next pass: pruning never fails the shard.
 */
export async function pruneItemSnapshots(snapshotDir: string, shard: Pick<SnapshotKey, 'shard' | 'shardCount'>, options: PruneOptions = {}): Promise<string[]> {
  const prefix = `item-shard-${shard.shard}-of-${shard.shardCount}-`;
  const minAgeMs = options.minAgeMs ?? 60_000;
  let names: string[];
  try {
    names = await readdir(snapshotDir);
  } catch {
    return [];
  }
  const doomed: string[] = [];
  const trash: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    if (/\.trash-\d+-\d+$/.test(name)) {
      trash.push(name);
      continue;
    }
    // A write in progress (`.tmp-<pid>-…`, snapshot capture) or a folder set aside while one is put
    // in place (`.old-<pid>-…`): only a dead writer's is garbage.
    const transient = /\.(?:tmp|old)-(\d+)-[\d-]+$/.exec(name);
    if (transient !== null) {
      if (!processAlive(Number(transient[1]))) doomed.push(name);
      continue;
    }
    const dir = path.join(snapshotDir, name);
    let meta: Partial<ItemShardSnapshotMeta>;
    try {
      meta = JSON.parse(await readFile(path.join(dir, FILES.meta), 'utf8')) as Partial<ItemShardSnapshotMeta>;
    } catch (err) {
      // Between replace-dir's two renames the folder is briefly absent, and a read can fail for
      // reasons of its own (EMFILE): only an old folder that exists without a meta.json is garbage.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue;
      const st = await stat(dir).catch(() => undefined);
      if (st?.isDirectory() === true && Date.now() - st.mtimeMs > minAgeMs && !existsSync(path.join(dir, FILES.meta))) doomed.push(name);
      continue;
    }
    // The name only starts like this shard's (a model version may contain "-of-"): check the meta.
    if (meta.shard !== shard.shard || meta.shardCount !== shard.shardCount) continue;
    if (options.keepVersions !== undefined && !options.keepVersions.has(String(meta.modelVersion))) doomed.push(name);
  }
  const removed: string[] = [];
  for (const name of doomed) {
    const claimed = path.join(snapshotDir, `${name}.trash-${process.pid}-${trashSeq++}`);
    try {
      await rename(path.join(snapshotDir, name), claimed);
    } catch {
      continue; // another pruner took it, or it went away: not ours to count
    }
    removed.push(path.join(snapshotDir, name));
    trash.push(path.basename(claimed));
  }
  for (const name of trash) await rm(path.join(snapshotDir, name), { recursive: true, force: true }).catch(() => undefined);
  return removed;
}
