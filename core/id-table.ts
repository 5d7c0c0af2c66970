/**
 * Numeric columns keyed by an integer id (videos, users), in typed arrays: an open-addressing hash
 * (linear probing) from id to a dense row, and one Float64Array per column. The popular actor keeps
 * one table per list key and one for the item counters; the user partitions' profile store
 * (actors/user-state/profile-store.ts) one for its users. As `Map`s of small objects the same data
 * cost ~150 bytes per entry on the JS heap (4.0M popular counters: 592 MB that every major GC marks,
 * loadtest/bench/popular-scale.ts); here it is 8 bytes per column plus ~12 bytes of index per entry,
 * outside the GC's walk (ArrayBuffers are not traced).
 *
 * Rows are never removed (popular counters only decay; profiles are only ever added); the table
 * doubles when 3/4 full.
 */

import { hashId } from './hash.js';

const EMPTY = -1;
/** Seed of the bucket hash (any constant: the table is private to one process). */
const SEED = 0x5bd1e995;

export class IdTable<C extends string> {
  readonly columnNames: readonly C[];
  /** Row of each hash bucket, EMPTY when free. */
  #buckets: Int32Array;
  /** Video id of each row. */
  #ids: Float64Array;
  #columns: Record<C, Float64Array>;
  #size = 0;

  constructor(columns: readonly C[], initialRows = 64) {
    this.columnNames = columns;
    const rows = Math.max(8, initialRows);
    this.#buckets = new Int32Array(bucketsFor(rows)).fill(EMPTY);
    this.#ids = new Float64Array(rows);
    this.#columns = columnsOf(columns, rows);
  }

  /** Rows in use (0 .. size-1). */
  get size(): number {
    return this.#size;
  }

  /** Bytes held by the typed arrays (index + ids + columns). */
  get bytes(): number {
    return this.#buckets.byteLength + this.#ids.byteLength + this.columnNames.reduce((n, c) => n + this.#columns[c].byteLength, 0);
  }

  /** The row of `id`, or -1. */
  rowOf(id: number): number {
    const mask = this.#buckets.length - 1;
    for (let b = hashId(id, SEED) & mask; ; b = (b + 1) & mask) {
      const row = this.#buckets[b] as number;
      if (row === EMPTY) return -1;
      if (this.#ids[row] === id) return row;
    }
  }

  /** The row of `id`, added (columns 0) when absent. */
  insert(id: number): number {
    const found = this.rowOf(id);
    if (found >= 0) return found;
    if (this.#size === this.#ids.length) this.#grow();
    const row = this.#size++;
    this.#ids[row] = id;
    this.#place(id, row);
    return row;
  }

  idAt(row: number): number {
    return this.#ids[row] as number;
  }

  /** The column array (index by row; it is replaced when the table grows, so do not keep it across inserts). */
  column(name: C): Float64Array {
    return this.#columns[name];
  }

  /** Mean buckets visited to find a row (1 = no collisions): a check on the hash's spread. */
  meanProbeLength(): number {
    if (this.#size === 0) return 0;
    const mask = this.#buckets.length - 1;
    let probes = 0;
    for (let r = 0; r < this.#size; r++) {
      let b = hashId(this.#ids[r] as number, SEED) & mask;
      probes++;
      while (this.#buckets[b] !== r) {
        b = (b + 1) & mask;
        probes++;
      }
    }
    return probes / this.#size;
  }

  #place(id: number, row: number): void {
    const mask = this.#buckets.length - 1;
    let b = hashId(id, SEED) & mask;
    while (this.#buckets[b] !== EMPTY) b = (b + 1) & mask;
    this.#buckets[b] = row;
  }

  #grow(): void {
    const rows = this.#ids.length * 2;
    const ids = new Float64Array(rows);
    ids.set(this.#ids);
    this.#ids = ids;
    const columns = columnsOf(this.columnNames, rows);
    for (const c of this.columnNames) columns[c].set(this.#columns[c]);
    this.#columns = columns;
    this.#buckets = new Int32Array(bucketsFor(rows)).fill(EMPTY);
    for (let r = 0; r < this.#size; r++) this.#place(this.#ids[r] as number, r);
  }
}

/** A power of two with at least 4/3 of `rows` (load factor ≤ 3/4). */
function bucketsFor(rows: number): number {
  let n = 8;
  while (n * 3 < rows * 4) n *= 2;
  return n;
}

function columnsOf<C extends string>(names: readonly C[], rows: number): Record<C, Float64Array> {
  const out = {} as Record<C, Float64Array>;
  for (const c of names) out[c] = new Float64Array(rows);
  return out;
}
