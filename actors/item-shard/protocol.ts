/**
 * Messages between an item shard's main-thread facade (item-shard.ts) and its worker (worker.ts).
 * NATS payloads cross as the raw protobuf bytes: the worker decodes and encodes, so the main loop
 * only moves bytes. Failures cross as plain StatusObjects (never `instanceof`).
 */
import type { StatusObject } from '../../core/status.js';
import type { ResolvedIndexOptions } from './index-options.js';
import type { ShardStartupTimings } from './bootstrap.js';
import type { NprobeCalibration } from './nprobe-calibration.js';

/** Everything the worker needs to open its shard (structured-clone safe). */
export interface ItemShardWorkerConfig {
  readonly shard: number;
  readonly shardCount: number;
  readonly worldDir: string;
  readonly modelDir: string;
  /** Embedding space of modelDir's towers ('' = unchecked): searches naming another are refused. */
  readonly space: string;
  readonly snapshotDir: string | undefined;
  readonly index: ResolvedIndexOptions;
  readonly towerBatchRows: number;
  /**
   * After an admin change, the worker writes a fresh snapshot within this many ms (one write for a
   * burst of changes); 0 = never (only at build and on request). Ignored without `snapshotDir`.
   */
  readonly snapshotAfterChangesMs: number;
  /** How queued searches share faiss calls (see {@link ResolvedSearchBatchOptions}). */
  readonly searchBatch: ResolvedSearchBatchOptions;
  /** Results the coordinator asks of each shard search: an 'auto' nprobe is calibrated for it. */
  readonly perShardK: number;
  /**
   * Build from these items (another instance's {@link ExportedItems}, e.g. the shard on the old
   * towers during a tower switch) instead of the world or a snapshot; the snapshot is then written
   * under this model. Undefined: restore or build from the world as usual.
   */
  readonly seed?: ExportedItems;
}

/** A shard's live items as its feature columns (ItemColumns.snapshotBytes), for another instance to rebuild from. */
export interface ExportedItems {
  readonly bytes: Uint8Array;
  /** Rows in `bytes` (tombstoned rows included; they are skipped). */
  readonly rows: number;
}

/**
 * Search batching in the worker: searches already queued when the worker gets free are answered by
 * one faiss call over all their vectors (faiss scans once per call, so each query costs less). Only
 * what is queued is batched: a lone search never waits for company.
 */
export interface ResolvedSearchBatchOptions {
  /** Most searches answered by one faiss call, 1..256; 1 = one call per search. Default 16. */
  readonly maxQueries: number;
}

/** Main thread → worker. */
export type ToItemWorker =
  | { readonly type: 'init'; readonly config: ItemShardWorkerConfig }
  /** A ShardSearchRequest as received from NATS. */
  | { readonly type: 'search'; readonly id: number; readonly request: Uint8Array }
  /** An ItemAdminRequest as received from NATS. */
  | { readonly type: 'admin'; readonly id: number; readonly request: Uint8Array }
  | { readonly type: 'snapshot'; readonly id: number }
  /** Sends back the live items ({@link ExportedItems}), in queue order with admin requests. */
  | { readonly type: 'exportItems'; readonly id: number }
  /** Test hook: throws an uncaught error in the worker, so tests can exercise the restart. */
  | { readonly type: 'crash' }
  /**
   * Test hook, handled on arrival: `hold: true` stops the worker from starting queued work (what
   * runs finishes), `hold: false` lets it go on; so a test can queue a burst and see it batched.
   */
  | { readonly type: 'holdForTest'; readonly hold: boolean };

/** Worker state reported with every answer, for stats() without a round trip. */
export interface ItemWorkerGauges {
  readonly items: number;
  readonly memoryBytes: number;
  /** Items upserted or removed since the last snapshot was captured (what a crash now would lose). */
  readonly changesSinceSnapshot: number;
}

/** Why a snapshot was written after start-up: admin changes (debounced), or a snapshot() call. */
export type SnapshotTrigger = 'changes' | 'request';

/** What the worker reports once the shard is open. */
export interface ItemShardReadyInfo extends ItemWorkerGauges {
  readonly restored: boolean;
  readonly factory: string;
  readonly dim: number;
  readonly modelVersion: string;
  /** Embedding space the shard checks searches against ('' = none). */
  readonly space: string;
  readonly timings: ShardStartupTimings;
  readonly snapshotPath: string | undefined;
  /** Why an existing snapshot was refused (the shard was rebuilt instead); undefined otherwise. */
  readonly snapshotRefused: string | undefined;
  /** Live items in the snapshot on disk after opening; 0 when none. */
  readonly snapshotItems: number;
  /** When that snapshot was written, epoch ms; 0 when none. */
  readonly snapshotAtMs: number;
  /** The nprobe searches run at, and where it came from. */
  readonly nprobe: ItemShardNprobeInfo;
}

/** An item shard's search nprobe (stats, logs, docs/operations.md). */
export interface ItemShardNprobeInfo {
  /** nprobe of a perShardK search; null for an index without lists (Flat, HNSW). */
  readonly nprobe: number | null;
  /**
   * 'configured' (index.nprobe), 'calibrated' (measured on the model's retrieval queries at
   * build), 'rule' ('auto' without a calibration: the fixed share of the lists), or 'none' (no lists).
   */
  readonly source: 'configured' | 'calibrated' | 'rule' | 'none';
  /** The build's calibration (recall measured, target, queries, settings tried), or null. */
  readonly calibration: NprobeCalibration | null;
}

/** Worker → main thread. */
export type FromItemWorker =
  | { readonly type: 'ready'; readonly info: ItemShardReadyInfo }
  | { readonly type: 'initFailed'; readonly status: StatusObject }
  /**
   * Encoded reply for request `id`, or null when the request is dropped (deadline passed).
   * `searchMs` is the time spent searching (0 for admin requests and drops): for a search answered
   * in a batch, the batch's time divided by its searches (the CPU each one cost, so the p50 stays
   * comparable with and without batching; the wait for the batch shows in the caller's latency).
   * `batchQueries` is set on the first reply of each faiss call: the searches that call answered
   * (the main thread counts calls and batched searches from it, so the counts outlive a worker).
   */
  | { readonly type: 'reply'; readonly id: number; readonly reply: Uint8Array | null; readonly searchMs: number; readonly gauges: ItemWorkerGauges; readonly batchQueries?: number }
  | { readonly type: 'snapshotDone'; readonly id: number; readonly path: string | null; readonly status: StatusObject | null }
  | { readonly type: 'itemsExported'; readonly id: number; readonly items: ExportedItems }
  /**
   * A snapshot was written (either trigger). `captureMs`: the synchronous part (faiss write + column
   * copy) during which the worker served nothing; `writeMs`: capture to rename, searches served
   * meanwhile.
   */
  | {
      readonly type: 'snapshotWritten';
      readonly trigger: SnapshotTrigger;
      readonly items: number;
      readonly atMs: number;
      readonly captureMs: number;
      readonly writeMs: number;
      readonly gauges: ItemWorkerGauges;
    }
  /** A snapshot write failed; a 'changes' write is retried after `snapshotAfterChangesMs`. */
  | { readonly type: 'snapshotFailed'; readonly trigger: SnapshotTrigger; readonly status: StatusObject; readonly gauges: ItemWorkerGauges };
