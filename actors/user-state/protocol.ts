/** Messages between a user partition's facade (user-state.ts) and its worker (worker.ts). */
import type { StatusObject } from '../../core/status.js';
import type { CatalogueColumns } from './catalogue.js';
import type { ApplyResult, SequencedEvent, UserPartitionCounters } from './partition.js';

/** Everything a host needs to open a partition (structured-clone safe). */
export interface UserPartitionWorkerConfig {
  readonly partition: number;
  readonly partitionCount: number;
  readonly worldDir: string | undefined;
  readonly modelDir: string;
  readonly embeddingCacheSize: number;
  /** Profile snapshots live here; undefined turns them off. */
  readonly snapshotDir: string | undefined;
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
}

/** Main thread → worker. */
export type ToUserWorker =
  | { readonly type: 'init'; readonly config: UserPartitionWorkerConfig }
  | { readonly type: 'get'; readonly id: number; readonly request: Uint8Array }
  | { readonly type: 'apply'; readonly id: number; readonly events: readonly SequencedEvent[] };

/** Worker → main thread (counters ride along for stats()). */
export type FromUserWorker =
  | { readonly type: 'ready'; readonly info: UserPartitionReadyInfo; readonly counters: UserPartitionCounters }
  | { readonly type: 'initFailed'; readonly status: StatusObject }
  | { readonly type: 'reply'; readonly id: number; readonly reply: Uint8Array | null; readonly counters: UserPartitionCounters }
  | { readonly type: 'applied'; readonly id: number; readonly result: ApplyResult | null; readonly status: StatusObject | null; readonly counters: UserPartitionCounters };
