/**
 * Opening a user partition over a user tower the caller loaded (and owns: a shared host worker
 * hands one tower to all its partitions), then restore the profiles from the partition's
 * snapshot when one matches (world, feature spec, P), else replay the world and write the snapshot.
 */
import { specHash } from '../../core/features/index.js';
import { toStatus } from '../../core/status.js';
import { ItemCatalogue, worldIdentity } from './catalogue.js';
import { UserStatePartition } from './partition.js';
import type { UserPartitionReadyInfo, UserPartitionWorkerConfig } from './protocol.js';
import type { UserSnapshotKey } from './snapshot.js';
import { readUserSnapshot, writeUserSnapshot } from './snapshot.js';
import type { UserTower } from './user-tower.js';

/**
 * Builds the partition over `tower` (loaded from `config.modelDir`; not closed here) and restores or
 * replays the world (when configured).
 */
export async function openUserPartition(config: UserPartitionWorkerConfig, tower: UserTower): Promise<{ partition: UserStatePartition; info: UserPartitionReadyInfo }> {
  const partition = new UserStatePartition({
    partition: config.partition,
    partitionCount: config.partitionCount,
    embedder: tower,
    embeddingCacheSize: config.embeddingCacheSize,
    ...(config.catalogue === undefined ? {} : { catalogue: new ItemCatalogue(config.catalogue) }),
  });
  let snapshot: UserPartitionReadyInfo['snapshot'] = 'off';
  let snapshotRefused: string | undefined;
  let restoreMs = 0;
  let replayMs = 0;
  let snapshotWriteMs = 0;
  let events = 0;
  if (config.worldDir !== undefined) {
    const key: UserSnapshotKey | undefined =
      config.snapshotDir === undefined
        ? undefined
        : { partition: config.partition, partitionCount: config.partitionCount, source: await worldIdentity(config.worldDir), featureSpecHash: specHash(tower.spec) };
    if (key !== undefined && config.snapshotDir !== undefined) {
      const t0 = performance.now();
      const read = await readUserSnapshot(config.snapshotDir, key);
      if (read.columns !== undefined) {
        try {
          partition.restoreProfiles(read.columns);
          snapshot = 'restored';
          restoreMs = performance.now() - t0;
        } catch (err) {
          snapshotRefused = toStatus(err).message;
        }
      } else {
        snapshotRefused = read.refused;
      }
    }
    if (snapshot !== 'restored') {
      const t0 = performance.now();
      events = (await partition.loadWorld(config.worldDir)).events;
      replayMs = performance.now() - t0;
      if (key !== undefined && config.snapshotDir !== undefined) {
        const t1 = performance.now();
        await writeUserSnapshot(config.snapshotDir, key, partition.exportProfiles());
        snapshotWriteMs = performance.now() - t1;
        snapshot = 'built';
      }
    }
  }
  return {
    partition,
    info: {
      users: partition.counters().users,
      replayedEvents: events,
      modelVersion: tower.manifest.version,
      dim: tower.dim,
      replayMs,
      snapshot,
      snapshotRefused,
      restoreMs,
      snapshotWriteMs,
      appliedSeq: partition.appliedSeq,
    },
  };
}
