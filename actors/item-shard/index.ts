/** Public surface of the item-shard actor (DESIGN §2); see item-shard.ts and shard-index.ts. */
export { startItemShard, resolveItemShardOptions, DEFAULT_SNAPSHOT_AFTER_CHANGES_MS, DEFAULT_SEARCH_BATCH_MAX_QUERIES, MAX_SEARCH_BATCH_QUERIES } from './item-shard.js';
export type { ItemShardHandle, ItemShardOptions, ItemShardStats, ResolvedItemShardOptions, SearchBatchOptions } from './item-shard.js';
export { ItemShardIndex, MAX_SEARCH_K, validateSearch } from './shard-index.js';
export type { ItemShardBuildFacts, ShardQuery } from './shard-index.js';
export type { IndexOptions, ResolvedIndexOptions } from './index-options.js';
export { DEFAULT_INDEX_OPTIONS, resolveIndexOptions, factoryFor, autoCouldPick } from './index-options.js';
export { ItemTower } from './item-tower.js';
export { openItemShard, loadShardItems } from './bootstrap.js';
export { itemSnapshotPath, readItemSnapshot, restoreItemSnapshot, snapshotRefusal, captureItemSnapshot, writeItemSnapshot, ITEM_SNAPSHOT_FORMAT } from './snapshot.js';
export type { ItemShardSnapshotMeta, SnapshotKey, SnapshotAcceptance, SnapshotRestore, CapturedItemSnapshot } from './snapshot.js';
