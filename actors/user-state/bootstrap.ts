/**
 * Opening a user partition over a user tower the caller loaded (and owns: a shared host worker
 * hands one tower to all its partitions): restore the profiles from the partition's newest valid
 * snapshot — the live one (periodic, with an event-stream sequence) when it matches the world,
 * feature spec, P and the event stream being followed, else the bootstrap one (world history,
 * sequence 0) — or replay the world and write the bootstrap snapshot.
 */
import path from 'node:path';
import { specHash } from '../../core/features/index.js';
import { toStatus } from '../../core/status.js';
import { ItemCatalogue, worldIdentity } from './catalogue.js';
import { foreignUserTowers } from './foreign-towers.js';
import { UserStatePartition } from './partition.js';
import type { UserPartitionReadyInfo, UserPartitionWorkerConfig } from './protocol.js';
import type { UserSnapshotKey, UserSnapshotKind, UserSnapshotRead } from './snapshot.js';
import { readUserSnapshot, writeUserSnapshot } from './snapshot.js';
import { UserSnapshotWriter } from './snapshot-writer.js';
import type { UserSnapshotWriterStats } from './snapshot-writer.js';
import type { UserTower } from './user-tower.js';

/** An opened partition, its start-up report and the key its snapshots are filed under. */
export interface OpenedUserPartition {
  readonly partition: UserStatePartition;
  readonly info: UserPartitionReadyInfo;
  /** Undefined when snapshots are off (no snapshotDir or no world). */
  readonly snapshotKey: UserSnapshotKey | undefined;
}

/**
 * Why a live snapshot's sequence cannot be used with the stream the partition will follow, or
 * undefined when it can. A snapshot at sequence 0 holds no stream state and fits any stream.
 */
export function liveSnapshotStreamRefusal(read: Extract<UserSnapshotRead, { columns: object }>, stream: UserPartitionWorkerConfig['stream']): string | undefined {
  const seq = read.columns.appliedSeq;
  if (stream === undefined || seq === 0) return undefined;
  const recorded = read.meta.stream ?? '';
  if (recorded !== stream.identity) return `stream: the snapshot's sequence ${seq} is of stream "${recorded}", the stream is "${stream.identity}"`;
  if (seq > stream.lastSeq) return `stream: the snapshot's sequence ${seq} is past the stream's last sequence ${stream.lastSeq}`;
  return undefined;
}

/**
 * Builds the partition over `tower` (loaded from `config.modelDir`; not closed here) and restores or
 * replays the world (when configured).
 */
export async function openUserPartition(config: UserPartitionWorkerConfig, tower: UserTower): Promise<OpenedUserPartition> {
  // Other-space user towers, shared by this thread's partitions of the same models root and spec.
  const foreign = foreignUserTowers(path.dirname(config.modelDir), tower.manifest.featureSpecHash);
  const partition = new UserStatePartition({
    partition: config.partition,
    partitionCount: config.partitionCount,
    embedder: tower,
    space: config.space,
    foreignEmbedder: (space, modelVersion) => foreign.get(space, modelVersion),
    embeddingCacheSize: config.embeddingCacheSize,
    ...(config.catalogue === undefined ? {} : { catalogue: new ItemCatalogue(config.catalogue) }),
  });
  let snapshot: UserPartitionReadyInfo['snapshot'] = 'off';
  let snapshotKind: UserSnapshotKind | undefined;
  let snapshotRefused: string | undefined;
  let liveSnapshotRefused: string | undefined;
  let streamMismatch = false;
  let restoreMs = 0;
  let replayMs = 0;
  let snapshotWriteMs = 0;
  let events = 0;
  let key: UserSnapshotKey | undefined;
  if (config.worldDir !== undefined) {
    key =
      config.snapshotDir === undefined
        ? undefined
        : { partition: config.partition, partitionCount: config.partitionCount, source: await worldIdentity(config.worldDir), featureSpecHash: specHash(tower.spec) };
    if (key !== undefined && config.snapshotDir !== undefined) {
      // Newest first: the live snapshot's appliedSeq is ≥ the bootstrap's (0).
      for (const kind of ['live', 'bootstrap'] as const) {
        const t0 = performance.now();
        const read = await readUserSnapshot(config.snapshotDir, key, kind);
        let refused: string | undefined;
        if (read.columns === undefined) {
          refused = read.refused;
        } else {
          refused = kind === 'live' ? liveSnapshotStreamRefusal(read, config.stream) : undefined;
          if (refused !== undefined) streamMismatch = true;
          else {
            try {
              partition.restoreProfiles(read.columns);
            } catch (err) {
              refused = toStatus(err).message;
            }
          }
        }
        if (refused === undefined) {
          snapshot = 'restored';
          snapshotKind = kind;
          restoreMs = performance.now() - t0;
          break;
        }
        if (kind === 'live') liveSnapshotRefused = refused;
        else snapshotRefused = refused;
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
    snapshotKey: key,
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
      snapshotKind,
      liveSnapshotRefused,
      streamMismatch,
    },
  };
}

/**
 * The live-snapshot writer of an opened partition, or undefined when snapshots are off or
 * `config.snapshotIntervalMs` is 0. `exclusive` runs a function in the partition's order (see
 * snapshot-writer.ts).
 */
export function startLiveSnapshots(
  config: UserPartitionWorkerConfig,
  opened: OpenedUserPartition,
  exclusive: (fn: () => void) => Promise<boolean>,
  onChange?: (stats: UserSnapshotWriterStats) => void,
): UserSnapshotWriter | undefined {
  if (opened.snapshotKey === undefined || config.snapshotDir === undefined || config.snapshotIntervalMs === 0) return undefined;
  return new UserSnapshotWriter({
    partition: opened.partition,
    snapshotDir: config.snapshotDir,
    key: opened.snapshotKey,
    stream: config.stream?.identity ?? '',
    intervalMs: config.snapshotIntervalMs,
    exclusive,
    ...(onChange === undefined ? {} : { onChange }),
  });
}
