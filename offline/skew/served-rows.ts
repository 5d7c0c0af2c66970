/**
 * Gathering logged serving rows (ServedRows messages of the feature log) into one row matrix,
 * keeping only those of the feature spec under measurement. Pure: the NATS reading is in
 * reader.ts.
 *
 * A message whose `featureSpecHash` or `width` differs from the spec's is skipped and counted by
 * (hash, width): its columns mean something else (another build, another model's spec), so
 * mixing it in would report skew that is really a definition change.
 */
import type { ServedRowsMsg } from '../../protos/codec.js';

/** What rows must look like to be measured. */
export interface ServedRowsExpectation {
  /** specHash of the spec the training rows are built with. */
  readonly featureSpecHash: string;
  /** rankerRowWidth of that spec (floats per row). */
  readonly width: number;
  /** Stop gathering after this many rows. */
  readonly maxRows: number;
}

/** Messages skipped because they were logged under another feature spec. */
export interface ServedRowsMismatch {
  readonly featureSpecHash: string;
  readonly width: number;
  readonly messages: number;
  readonly rows: number;
}

/** The gathered serving rows and what was left out. */
export interface ServedRowsSample {
  /** [count, width] row-major, a copy owned by the caller. */
  readonly rows: Float32Array;
  readonly count: number;
  readonly width: number;
  /** Messages whose rows were taken (in part, for the last one when `truncated`). */
  readonly messages: number;
  /** Skipped messages, by (hash, width). */
  readonly mismatches: readonly ServedRowsMismatch[];
  /** Messages whose `rows` byte length is not videoIds.length × width × 4 (skipped). */
  readonly malformed: number;
  /** True when `maxRows` cut the sample short. */
  readonly truncated: boolean;
  /** Model versions that served the taken rows, sorted. */
  readonly modelVersions: readonly string[];
  /** Earliest and latest servedAtMs of the taken messages (epoch ms; NaN when none). */
  readonly firstServedAtMs: number;
  readonly lastServedAtMs: number;
}

/** One line per mismatch, naming both hashes: for logs and the report. */
export function describeMismatch(m: ServedRowsMismatch, expected: Pick<ServedRowsExpectation, 'featureSpecHash' | 'width'>): string {
  return (
    `skipped ${m.messages} ServedRows message(s) (${m.rows} rows) logged with featureSpecHash ${m.featureSpecHash} width ${m.width}; ` +
    `the spec under measurement has featureSpecHash ${expected.featureSpecHash} width ${expected.width} ` +
    `(served by a build or model of another feature spec: pass --models for the model that served them)`
  );
}

/** Accumulates ServedRows messages; {@link add} returns false once `maxRows` rows are held. */
export class ServedRowsCollector {
  readonly #expect: ServedRowsExpectation;
  #rows: Float32Array;
  #count = 0;
  #messages = 0;
  #malformed = 0;
  #truncated = false;
  readonly #mismatches = new Map<string, { featureSpecHash: string; width: number; messages: number; rows: number }>();
  readonly #versions = new Set<string>();
  #first = Number.POSITIVE_INFINITY;
  #last = Number.NEGATIVE_INFINITY;

  constructor(expect: ServedRowsExpectation) {
    if (!Number.isInteger(expect.width) || expect.width < 1) throw new TypeError(`width must be a positive integer, got ${String(expect.width)}`);
    if (!Number.isInteger(expect.maxRows) || expect.maxRows < 1) throw new TypeError(`maxRows must be a positive integer, got ${String(expect.maxRows)}`);
    this.#expect = expect;
    this.#rows = new Float32Array(Math.min(expect.maxRows, 4096) * expect.width);
  }

  /** True while fewer than `maxRows` rows are held. */
  get wantsMore(): boolean {
    return this.#count < this.#expect.maxRows;
  }

  /** Takes one decoded message (or counts why not); returns {@link wantsMore}. */
  add(msg: ServedRowsMsg): boolean {
    if (!this.wantsMore) return false;
    const n = msg.videoIds.length;
    if (msg.featureSpecHash !== this.#expect.featureSpecHash || msg.width !== this.#expect.width) {
      const key = `${msg.featureSpecHash}/${msg.width}`;
      const m = this.#mismatches.get(key) ?? { featureSpecHash: msg.featureSpecHash, width: msg.width, messages: 0, rows: 0 };
      m.messages++;
      m.rows += n;
      this.#mismatches.set(key, m);
      return true;
    }
    const w = this.#expect.width;
    if (msg.rows.byteLength !== n * w * 4) {
      this.#malformed++;
      return true;
    }
    // The decoded bytes are a view into protobufjs' pooled buffer, possibly unaligned: copy them.
    const floats = new Float32Array(Uint8Array.prototype.slice.call(msg.rows).buffer);
    const take = Math.min(n, this.#expect.maxRows - this.#count);
    if (take < n) this.#truncated = true;
    this.#reserve(this.#count + take);
    this.#rows.set(floats.subarray(0, take * w), this.#count * w);
    this.#count += take;
    this.#messages++;
    if (msg.modelVersion !== '') this.#versions.add(msg.modelVersion);
    this.#first = Math.min(this.#first, msg.servedAtMs);
    this.#last = Math.max(this.#last, msg.servedAtMs);
    return this.wantsMore;
  }

  #reserve(rows: number): void {
    const need = rows * this.#expect.width;
    if (need <= this.#rows.length) return;
    const grown = new Float32Array(Math.min(this.#expect.maxRows * this.#expect.width, Math.max(need, this.#rows.length * 2)));
    grown.set(this.#rows);
    this.#rows = grown;
  }

  /** The sample so far (rows copied). */
  result(): ServedRowsSample {
    return {
      rows: this.#rows.slice(0, this.#count * this.#expect.width),
      count: this.#count,
      width: this.#expect.width,
      messages: this.#messages,
      mismatches: [...this.#mismatches.values()].sort((a, b) => b.messages - a.messages),
      malformed: this.#malformed,
      truncated: this.#truncated,
      modelVersions: [...this.#versions].sort(),
      firstServedAtMs: this.#messages > 0 ? this.#first : Number.NaN,
      lastServedAtMs: this.#messages > 0 ? this.#last : Number.NaN,
    };
  }
}
