/** Opening a user partition: load the user tower, then replay the world for this partition. */
import { UserStatePartition } from './partition.js';
import type { UserPartitionReadyInfo, UserPartitionWorkerConfig } from './protocol.js';
import { UserTower } from './user-tower.js';

/** Loads the tower, builds the partition and replays the world (when configured). */
export async function openUserPartition(config: UserPartitionWorkerConfig): Promise<{ partition: UserStatePartition; tower: UserTower; info: UserPartitionReadyInfo }> {
  const tower = await UserTower.load(config.modelDir);
  const partition = new UserStatePartition({
    partition: config.partition,
    partitionCount: config.partitionCount,
    embedder: tower,
    embeddingCacheSize: config.embeddingCacheSize,
  });
  const t0 = performance.now();
  const loaded = config.worldDir === undefined ? { users: 0, events: 0 } : await partition.loadWorld(config.worldDir);
  return {
    partition,
    tower,
    info: { users: loaded.users, replayedEvents: loaded.events, modelVersion: tower.manifest.version, dim: tower.dim, replayMs: performance.now() - t0 },
  };
}
