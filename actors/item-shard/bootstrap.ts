/**
 * Building an item shard from a world and a model, or restoring it from its snapshot: the start-up
 * path of worker.ts, kept apart so benchmarks and tests can build a shard in-process.
 */
import type { ItemFeatures, ItemMeta } from '../../core/features/item.js';
import { emptyItemStats, applyEventToItem } from '../../core/features/item.js';
import { itemShardOf } from '../../core/hash.js';
import { readEventBatches, readVideoBatches, readWorldManifest } from '../../offline/world/reader.js';
import type { IndexOptions } from './index-options.js';
import { resolveIndexOptions } from './index-options.js';
import type { ItemTower } from './item-tower.js';
import { ItemShardIndex } from './shard-index.js';
import type { NprobeCalibrationSource } from './shard-index.js';
import { DEFAULT_PER_SHARD_K } from './shard-index.js';
import type { SnapshotKey } from './snapshot.js';
import { restoreItemSnapshot, writeItemSnapshot } from './snapshot.js';

/** The world's videos owned by shard `shard` of `shardCount`, with counters replayed from its events. */
export async function loadShardItems(worldDir: string, shard: number, shardCount: number): Promise<ItemFeatures[]> {
  const byId = new Map<number, ItemFeatures & { impressions: number }>();
  for await (const batch of readVideoBatches(worldDir)) {
    for (const v of batch) {
      if (itemShardOf(v.videoId, shardCount) !== shard) continue;
      const meta: ItemMeta = { videoId: v.videoId, creatorId: v.creatorId, category: v.category, durationS: v.durationS, uploadTsMs: v.uploadTsMs };
      byId.set(v.videoId, { ...meta, ...emptyItemStats() });
    }
  }
  for await (const batch of readEventBatches(worldDir)) {
    for (const e of batch) {
      const item = byId.get(e.videoId);
      if (item !== undefined) applyEventToItem(item, e, item.durationS);
    }
  }
  return [...byId.values()];
}

/** A world's identity for snapshot matching: name and creation time. */
export async function worldSource(worldDir: string): Promise<string> {
  const m = await readWorldManifest(worldDir);
  return `${m.name}@${m.createdAt}`;
}

/** Start-up timings in milliseconds (those of the path not taken are 0). */
export interface ShardStartupTimings {
  restoreMs: number;
  readWorldMs: number;
  towerMs: number;
  indexBuildMs: number;
  snapshotWriteMs: number;
  totalMs: number;
}

/** A shard ready to serve, and how it got there. */
export interface OpenedShard {
  readonly index: ItemShardIndex;
  readonly restored: boolean;
  readonly timings: ShardStartupTimings;
  /** Where the snapshot lives (undefined when snapshots are off). */
  readonly snapshotPath: string | undefined;
  /** Why an existing snapshot was not restored (the shard was rebuilt); undefined otherwise. */
  readonly snapshotRefused: string | undefined;
  /** Live items in the snapshot on disk after opening (restored or just written); 0 when none. */
  readonly snapshotItems: number;
  /** When that snapshot was written, epoch ms; 0 when none. */
  readonly snapshotAtMs: number;
  /** The key the shard's snapshots are written under (for later snapshots after admin changes). */
  readonly key: SnapshotKey;
}

/** Inputs of {@link openItemShard}. */
export interface OpenShardOptions {
  readonly worldDir: string;
  readonly shard: number;
  readonly shardCount: number;
  readonly tower: ItemTower;
  /** Snapshot folder; undefined turns snapshots off. */
  readonly snapshotDir: string | undefined;
  readonly index: IndexOptions;
  readonly towerBatchRows: number;
  /**
   * Build from these items instead of the world, and never restore (a tower switch re-encodes the
   * running shard's items, admin upserts included); the snapshot is written as usual.
   */
  readonly items?: readonly ItemFeatures[];
  /** Embedding space of the tower's model ('' = unknown): recorded in the snapshot and checked on restore. */
  readonly space?: string;
  /**
   * Results the coordinator asks of each shard search: an 'auto' nprobe is calibrated for recall in
   * that many, on the tower's model's retrieval queries (shard-index.ts). Default
   * DEFAULT_PER_SHARD_K (200, the coordinator's default).
   */
  readonly perShardK?: number;
}

/** The snapshot key of shard `shard` of `shardCount` served with `tower` from `worldDir`. */
export async function shardSnapshotKey(worldDir: string, shard: number, shardCount: number, tower: ItemTower, space = ''): Promise<SnapshotKey> {
  return {
    shard,
    shardCount,
    modelVersion: tower.manifest.version,
    featureSpecHash: tower.manifest.featureSpecHash,
    source: await worldSource(worldDir),
    ...(space !== '' ? { space } : {}),
  };
}

/**
 * Restores the shard from its snapshot when one is accepted (snapshot.ts `snapshotRefusal`), else
 * builds it and writes the snapshot.
 */
export async function openItemShard(o: OpenShardOptions): Promise<OpenedShard> {
  const t0 = performance.now();
  const timings: ShardStartupTimings = { restoreMs: 0, readWorldMs: 0, towerMs: 0, indexBuildMs: 0, snapshotWriteMs: 0, totalMs: 0 };
  const key = await shardSnapshotKey(o.worldDir, o.shard, o.shardCount, o.tower, o.space);
  // Queries matter only where an 'auto' nprobe may be calibrated: a fixed nprobe, or calibration
  // off, serves without them (and a broken file then cannot block the start). A restore only needs
  // to know the model has them; the file is read when the index is built.
  const opts = resolveIndexOptions(o.index);
  const wanted = opts.nprobe === 'auto' && opts.calibrationQueries > 0 && o.tower.manifest.retrievalQueries !== undefined;
  const fetch = o.perShardK ?? DEFAULT_PER_SHARD_K;
  let snapshotRefused: string | undefined;
  if (o.snapshotDir !== undefined && o.items === undefined) {
    const r = await restoreItemSnapshot(o.snapshotDir, key, o.index, { fetch, hasQueries: wanted });
    if (r.kind === 'restored') {
      timings.restoreMs = timings.totalMs = performance.now() - t0;
      const snapshotAtMs = Date.parse(r.meta.createdAt);
      return { index: r.index, restored: true, timings, snapshotPath: r.path, snapshotRefused, snapshotItems: r.meta.items, snapshotAtMs: Number.isFinite(snapshotAtMs) ? snapshotAtMs : 0, key };
    }
    if (r.kind === 'refused') snapshotRefused = `${r.path}: ${r.reason}`;
  }
  let t = performance.now();
  const items = o.items ?? (await loadShardItems(o.worldDir, o.shard, o.shardCount));
  timings.readWorldMs = performance.now() - t;
  t = performance.now();
  const vectors = await o.tower.encode(items, o.towerBatchRows);
  timings.towerMs = performance.now() - t;
  t = performance.now();
  const calibration: NprobeCalibrationSource = { queries: wanted ? await o.tower.retrievalQueries() : undefined, fetch, shardCount: o.shardCount };
  const index = ItemShardIndex.build(items, vectors, o.tower.dim, o.index, calibration);
  timings.indexBuildMs = performance.now() - t;
  let snapshotPath: string | undefined;
  let snapshotAtMs = 0;
  if (o.snapshotDir !== undefined) {
    t = performance.now();
    snapshotPath = await writeItemSnapshot(o.snapshotDir, key, index);
    snapshotAtMs = Date.now();
    timings.snapshotWriteMs = performance.now() - t;
  }
  timings.totalMs = performance.now() - t0;
  return { index, restored: false, timings, snapshotPath, snapshotRefused, snapshotItems: snapshotPath === undefined ? 0 : index.size, snapshotAtMs, key };
}
