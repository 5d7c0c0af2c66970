/** Messages between the main-thread side of a user-state host worker (worker-host.ts) and the worker (worker.ts). */
import type { StatusObject } from '../../core/status.js';
import type { CatalogueColumns } from './catalogue.js';
import type { ApplyResult, SequencedEvent, UserPartitionCounters } from './partition.js';
import type { UserSnapshotKind } from './snapshot.js';
import type { UserSnapshotWriterStats } from './snapshot-writer.js';

/** A partition's counters plus its live-snapshot writer's, as a host reports them. */
export interface UserHostCounters extends UserPartitionCounters {
  /** The periodic snapshot writer's counters (all zero when snapshots are off). */
  readonly snapshots: UserSnapshotWriterStats;
}

/** The event stream as the main thread saw it just before an open (event-stream/stream.ts). */
export interface UserPartitionStreamView {
  /** EventStreamInfo.identity: a live snapshot of another identity is not restored. */
  readonly identity: string;
  /** Newest sequence stored: a live snapshot past it is not restored either. */
  readonly lastSeq: number;
}

/** Everything a host needs to open a partition (structured-clone safe). */
export interface UserPartitionWorkerConfig {
  readonly partition: number;
  readonly partitionCount: number;
  readonly worldDir: string | undefined;
  readonly modelDir: string;
  /** Embedding space of modelDir's towers ('' = unchecked; see UserStatePartitionOptions.space). */
  readonly space: string;
  readonly embeddingCacheSize: number;
  /** Profile snapshots live here; undefined turns them off. */
  readonly snapshotDir: string | undefined;
  /** Period of live snapshots, ms; 0 = only the bootstrap snapshot. */
  readonly snapshotIntervalMs: number;
  /** The event stream the partition will follow; undefined when it follows none (eventFeed off). */
  readonly stream: UserPartitionStreamView | undefined;
  /** The node's shared catalogue (SharedArrayBuffer-backed: shared with the worker, not copied). */
  readonly catalogue: CatalogueColumns | undefined;
}

/** What start-up reports. */
export interface UserPartitionReadyInfo {
  readonly users: number;
  readonly replayedEvents: number;
  readonly modelVersion: string;
  readonly dim: number;
  /** Milliseconds to replay the world's events (0 when restored from a snapshot). */
  readonly replayMs: number;
  /** 'restored' from a snapshot, 'built' from the world (and a snapshot written), or 'off'. */
  readonly snapshot: 'restored' | 'built' | 'off';
  /** Why a snapshot was not restored (none, other world/spec/P), when snapshots are on. */
  readonly snapshotRefused: string | undefined;
  /** Milliseconds to read and apply the snapshot (0 unless restored). */
  readonly restoreMs: number;
  /** Milliseconds to write the snapshot after a build (0 otherwise). */
  readonly snapshotWriteMs: number;
  /** Highest event-stream sequence applied at start (from the snapshot; 0 after a build). */
  readonly appliedSeq: number;
  /** Which snapshot was restored ('live': the periodic one, with its stream sequence), when restored. */
  readonly snapshotKind: UserSnapshotKind | undefined;
  /** Why the live snapshot was not restored (none, other world/spec/P, other stream), when snapshots are on. */
  readonly liveSnapshotRefused: string | undefined;
  /**
   * A live snapshot was refused because its sequence belongs to another event stream (deleted and
   * created again) or lies past the stream's last sequence; the partition fell back to the
   * bootstrap snapshot (or the world) and replays the whole stream.
   */
  readonly streamMismatch: boolean;
}

/**
 * Main thread → host worker. One worker hosts one partition ('worker' mode) or every 'shared'
 * partition of the process, so every message names its `slot`: a number the main thread gives each
 * hosted partition, unique per worker. It is not the partition number: two clusters in one process
 * (tests) may host the same partition number in one shared worker.
 */
export type ToUserWorker =
  | { readonly type: 'open'; readonly slot: number; readonly config: UserPartitionWorkerConfig }
  | { readonly type: 'get'; readonly slot: number; readonly id: number; readonly request: Uint8Array }
  | { readonly type: 'apply'; readonly slot: number; readonly id: number; readonly events: readonly SequencedEvent[] }
  /** Drops the partition (queued gets of the slot are skipped) and releases its tower reference. */
  | { readonly type: 'close'; readonly slot: number }
  /** Test hook: throws an uncaught error in the worker, so tests can exercise crash handling. */
  | { readonly type: 'crash'; readonly slot: 0 };

/** Host worker → main thread (counters of the slot ride along for stats()). */
export type FromUserWorker =
  | { readonly type: 'opened'; readonly slot: number; readonly info: UserPartitionReadyInfo; readonly counters: UserHostCounters }
  | { readonly type: 'openFailed'; readonly slot: number; readonly status: StatusObject }
  | { readonly type: 'reply'; readonly slot: number; readonly id: number; readonly reply: Uint8Array | null; readonly counters: UserHostCounters }
  | { readonly type: 'applied'; readonly slot: number; readonly id: number; readonly result: ApplyResult | null; readonly status: StatusObject | null; readonly counters: UserHostCounters }
  /** After a live snapshot attempt: fresh counters with no call to ride on. */
  | { readonly type: 'counters'; readonly slot: number; readonly counters: UserHostCounters };
