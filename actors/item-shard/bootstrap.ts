/**
 * Building an item shard from a world and a model, or restoring it from its snapshot: the start-up
 * path of worker.ts, kept apart so benchmarks and tests can build a shard in-process.
 */
import type { ItemFeatures, ItemMeta } from '../../core/features/item.js';
import { emptyItemStats, applyEventToItem } from '../../core/features/item.js';
import { itemShardOf } from '../../core/hash.js';
import { readEventBatches, readVideoBatches, readWorldManifest } from '../../offline/world/reader.js';
import type { IndexOptions } from './index-options.js';
import type { ItemTower } from './item-tower.js';
import { ItemShardIndex } from './shard-index.js';
import type { SnapshotKey } from './snapshot.js';
import { itemSnapshotPath, readItemSnapshot, writeItemSnapshot } from './snapshot.js';

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
}

/** Restores the shard from its snapshot when one matches, else builds it and writes the snapshot. */
export async function openItemShard(o: OpenShardOptions): Promise<OpenedShard> {
  const t0 = performance.now();
  const timings: ShardStartupTimings = { restoreMs: 0, readWorldMs: 0, towerMs: 0, indexBuildMs: 0, snapshotWriteMs: 0, totalMs: 0 };
  const key: SnapshotKey = {
    shard: o.shard,
    shardCount: o.shardCount,
    modelVersion: o.tower.manifest.version,
    featureSpecHash: o.tower.manifest.featureSpecHash,
    source: await worldSource(o.worldDir),
  };
  if (o.snapshotDir !== undefined) {
    const restored = await readItemSnapshot(o.snapshotDir, key, o.index);
    if (restored !== undefined) {
      timings.restoreMs = timings.totalMs = performance.now() - t0;
      return { index: restored, restored: true, timings, snapshotPath: itemSnapshotPath(o.snapshotDir, key) };
    }
  }
  let t = performance.now();
  const items = await loadShardItems(o.worldDir, o.shard, o.shardCount);
  timings.readWorldMs = performance.now() - t;
  t = performance.now();
  const vectors = await o.tower.encode(items, o.towerBatchRows);
  timings.towerMs = performance.now() - t;
  t = performance.now();
  const index = ItemShardIndex.build(items, vectors, o.tower.dim, o.index);
  timings.indexBuildMs = performance.now() - t;
  let snapshotPath: string | undefined;
  if (o.snapshotDir !== undefined) {
    t = performance.now();
    snapshotPath = await writeItemSnapshot(o.snapshotDir, key, index);
    timings.snapshotWriteMs = performance.now() - t;
  }
  timings.totalMs = performance.now() - t0;
  return { index, restored: false, timings, snapshotPath };
}
