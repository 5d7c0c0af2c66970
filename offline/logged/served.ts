/**
 * Logged served requests: the feature log's ServedRows messages kept whole (request id, user,
 * model version, feature-spec hash, videos, slots, rows, servedAtMs), which the training join needs
 * and offline/skew's ServedRowsCollector (one row matrix, for distributions) does not keep. Pure:
 * the NATS reading is read-served.ts.
 *
 * Messages of every feature spec are kept: whether rows of another spec are refused or dropped is
 * the join's decision (join.ts), which names both hashes.
 */
import type { ServedRowsMsg } from '../../protos/codec.js';
import type { ServedRowsRecord } from '../../actors/coordinator/feature-log.js';

/**
 * One logged ServedRows message: what the coordinator logged (its {@link ServedRowsRecord}; `rows`
 * here a copy owned by this record) plus where and when.
 */
export interface ServedRequest extends ServedRowsRecord {
  /** Stream sequence of the message. */
  readonly seq: number;
  /** Coordinator wall clock when the answer was built, epoch ms. */
  readonly servedAtMs: number;
}

/** What {@link ServedRequestsCollector} gathered and what it left out. */
export interface ServedRequests {
  /** In stream order. */
  readonly requests: readonly ServedRequest[];
  /** Rows held (sum of videoIds.length). */
  readonly rows: number;
  /** Messages whose rows byte length is not videoIds × width × 4, or whose slots do not match videoIds (skipped). */
  readonly malformed: number;
  /** True when `maxRows` stopped the gathering. */
  readonly truncated: boolean;
}

/**
 * Which requests a collector keeps when the log holds more than `maxRows` rows: the oldest (reading
 * stops there: cheapest) or the newest (reads to the end and drops the oldest as it goes: what a
 * scheduled retraining needs, so each round learns from and is tested on recent traffic).
 */
export type ServedRowsKeep = 'oldest' | 'newest';

/** Accumulates ServedRows messages up to `maxRows` rows; {@link add} returns whether it wants more. */
export class ServedRequestsCollector {
  readonly #maxRows: number;
  readonly #keep: ServedRowsKeep;
  #requests: ServedRequest[] = [];
  /** With keep 'newest': requests before this index were dropped (compacted now and then). */
  #head = 0;
  #rows = 0;
  #malformed = 0;
  #truncated = false;

  /** `maxRows`: most rows held (requests are kept whole); `keep`: which end of the log (default 'oldest'). */
  constructor(maxRows: number, keep: ServedRowsKeep = 'oldest') {
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new TypeError(`maxRows must be a positive integer, got ${String(maxRows)}`);
    this.#maxRows = maxRows;
    this.#keep = keep;
  }

  /** True while fewer than `maxRows` rows are held and no message was refused for room (always, keeping the newest). */
  get wantsMore(): boolean {
    return this.#keep === 'newest' || (!this.#truncated && this.#rows < this.#maxRows);
  }

  /** Takes one decoded message found at stream sequence `seq` (or counts why not). */
  add(msg: ServedRowsMsg, seq: number): boolean {
    if (!this.wantsMore) return false;
    const n = msg.videoIds.length;
    if (n === 0) return true;
    if (msg.rows.byteLength !== n * msg.width * 4 || msg.slots.length !== n || !(msg.width > 0)) {
      this.#malformed++;
      return true;
    }
    if (this.#rows + n > this.#maxRows) {
      this.#truncated = true;
      if (this.#keep === 'oldest' || n > this.#maxRows) return this.wantsMore;
      while (this.#rows + n > this.#maxRows) this.#rows -= this.#requests[this.#head++]!.videoIds.length;
      if (this.#head > 1024 && this.#head * 2 > this.#requests.length) {
        this.#requests = this.#requests.slice(this.#head);
        this.#head = 0;
      }
    }
    // The decoded bytes are a view into protobufjs' pooled buffer, possibly unaligned: copy them.
    const rows = new Float32Array(Uint8Array.prototype.slice.call(msg.rows).buffer);
    this.#requests.push({
      seq,
      requestId: msg.requestId,
      userId: Number(msg.userId),
      modelVersion: msg.modelVersion,
      featureSpecHash: msg.featureSpecHash,
      surface: msg.surface,
      servedAtMs: Number(msg.servedAtMs),
      videoIds: msg.videoIds.map(Number),
      slots: msg.slots.map(Number),
      width: msg.width,
      rows,
    });
    this.#rows += n;
    return this.wantsMore;
  }

  result(): ServedRequests {
    return { requests: this.#requests.slice(this.#head), rows: this.#rows, malformed: this.#malformed, truncated: this.#truncated };
  }
}
