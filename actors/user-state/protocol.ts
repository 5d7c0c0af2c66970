/** Messages between a user partition's facade (user-state.ts) and its worker (worker.ts). */
import type { StatusObject } from '../../core/status.js';
import type { ApplyResult, SequencedEvent, UserPartitionCounters } from './partition.js';

/** Everything a host needs to open a partition (structured-clone safe). */
export interface UserPartitionWorkerConfig {
  readonly partition: number;
  readonly partitionCount: number;
  readonly worldDir: string | undefined;
  readonly modelDir: string;
  readonly embeddingCacheSize: number;
}

/** What start-up reports. */
export interface UserPartitionReadyInfo {
  readonly users: number;
  readonly replayedEvents: number;
  readonly modelVersion: string;
  readonly dim: number;
  /** Milliseconds to read the catalogue and replay the world's events. */
  readonly replayMs: number;
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
