/**
 * A partition's user profiles in columns instead of one JS object (with two arrays and a
 * Float32Array) per user. A thread holding a million profiles as objects spent 55% of its time in
 * young-generation GC with pauses to 54 ms; the same data in a few large typed arrays, 18% and 4 ms
 * (docs/capacity.md "User state at scale", loadtest/bench/user-gc.ts).
 *
 * Layout: an {@link IdTable} maps user id → row and holds the scalar counters; affinities are one
 * Float32Array of rows × categories (the profile's own element type, so values round exactly as
 * before); each recent list lives in a slot of a size-class pool (capacity 4 … RECENT_LIMIT), moved
 * to the next class as it grows, so memory follows the list's length (≤ 1.5× it above 8 entries)
 * rather than RECENT_LIMIT.
 *
 * The feature code keeps working on {@link UserProfile} objects, the one definition (core/features):
 * {@link ProfileStore.get} materialises a copy, {@link ProfileStore.update} runs a mutation on a
 * reused scratch profile and writes it back.
 */
import type { FeatureSpec } from '../../core/features/spec.js';
import type { UserProfile } from '../../core/features/user.js';
import { RECENT_LIMIT, newUserProfile } from '../../core/features/user.js';
import { IdTable } from '../../core/id-table.js';
import type { UserProfileColumns } from './snapshot.js';
import { USER_COUNTER_FIELDS } from './snapshot.js';

/** Recent-list capacities; the last is RECENT_LIMIT. */
const CLASSES: readonly number[] = [4, 8, 12, 16, 24, 32, 48, 64, 80, RECENT_LIMIT];

const COLUMNS = ['impressions', 'clicks', 'watches', 'watchSeconds', 'lastEventMs', 'version', 'recentLength', 'recentClass', 'recentSlot'] as const;
type Column = (typeof COLUMNS)[number];
/** Free slots may hold this share of the pools before {@link ProfileStore.compactIfWasteful} compacts. */
const MAX_FREE_SHARE = 0.25;

/** Fixed-size slots of `width` video ids and creator ids, with a free list. */
class RecentPool {
  readonly width: number;
  videoIds: Float64Array;
  creatorIds: Float64Array;
  #slots = 0;
  readonly #free: number[] = [];

  constructor(width: number, slots = 16) {
    this.width = width;
    this.videoIds = new Float64Array(width * Math.max(1, slots));
    this.creatorIds = new Float64Array(width * Math.max(1, slots));
  }

  alloc(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const slot = this.#slots++;
    if ((slot + 1) * this.width > this.videoIds.length) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.videoIds = grow(this.videoIds);
      this.creatorIds = grow(this.creatorIds);
    }
    return slot;
  }

  release(slot: number): void {
    this.#free.push(slot);
  }

  /** Bytes of slots on the free list. */
  get freeBytes(): number {
    return this.#free.length * this.width * 16;
  }

  get bytes(): number {
    return this.videoIds.byteLength + this.creatorIds.byteLength + this.#free.length * 8;
  }
}

/** The class index for a list of `length` entries (-1: no slot). */
function classFor(length: number): number {
  if (length === 0) return -1;
  for (let c = 0; c < CLASSES.length; c++) if ((CLASSES[c] as number) >= length) return c;
  throw new RangeError(`recent list of ${length} entries exceeds RECENT_LIMIT ${RECENT_LIMIT}`);
}

export class ProfileStore {
  readonly #spec: FeatureSpec;
  #rows = new IdTable<Column>(COLUMNS, 1024);
  #affinity: Float32Array;
  #pools = CLASSES.map((w) => new RecentPool(w));
  #recentEntries = 0;
  /** The profile {@link update} lends to its mutation (no allocation per event). */
  readonly #scratch: { -readonly [K in keyof UserProfile]: UserProfile[K] };

  constructor(spec: FeatureSpec) {
    this.#spec = spec;
    this.#affinity = new Float32Array(1024 * spec.numCategories);
    this.#scratch = newUserProfile(0, spec);
  }

  /** Users with a profile. */
  get size(): number {
    return this.#rows.size;
  }

  /** Sum of recent-list lengths. */
  get recentEntries(): number {
    return this.#recentEntries;
  }

  /** Bytes of the columns and pools. */
  get bytes(): number {
    return this.#rows.bytes + this.#affinity.byteLength + this.#pools.reduce((n, p) => n + p.bytes, 0);
  }

  /**
   * Moves every recent list into fresh pools, dropping the free slots lists leave behind when they
   * grow into the next size class (a replay grows every list through every class at once; in steady
   * state new users reuse them). O(recent entries); versions and rows are kept. The partition runs
   * it after a world replay.
   */
  /** {@link compact} when free slots exceed a quarter of the pools (growth while serving); true if it did. */
  compactIfWasteful(): boolean {
    let free = 0;
    let total = 0;
    for (const pool of this.#pools) {
      free += pool.freeBytes;
      total += pool.bytes;
    }
    if (!(free > MAX_FREE_SHARE * total && free > 1 << 20)) return false;
    this.compact();
    return true;
  }

  compact(): void {
    const t = this.#rows;
    const old = this.#pools;
    const lengths = t.column('recentLength');
    // Size each new pool exactly: count the lists of each class first.
    const counts = CLASSES.map(() => 0);
    for (let row = 0; row < t.size; row++) {
      const cls = classFor(lengths[row] as number);
      if (cls >= 0) counts[cls] = (counts[cls] as number) + 1;
    }
    const pools = CLASSES.map((w, c) => new RecentPool(w, counts[c]));
    for (let row = 0; row < t.size; row++) {
      const length = lengths[row] as number;
      if (length === 0) continue;
      const from = old[t.column('recentClass')[row] as number] as RecentPool;
      const at = (t.column('recentSlot')[row] as number) * from.width;
      const cls = classFor(length);
      const to = pools[cls] as RecentPool;
      const slot = to.alloc();
      to.videoIds.set(from.videoIds.subarray(at, at + length), slot * to.width);
      to.creatorIds.set(from.creatorIds.subarray(at, at + length), slot * to.width);
      t.column('recentClass')[row] = cls;
      t.column('recentSlot')[row] = slot;
    }
    this.#pools = pools;
  }

  /** Bumped by every {@link update} of the user (0 when unknown): part of the embedding cache key. */
  version(userId: number): number {
    const row = this.#rows.rowOf(userId);
    return row < 0 ? 0 : (this.#rows.column('version')[row] as number);
  }

  /** A copy of the user's profile, or undefined when the user has none. */
  get(userId: number): UserProfile | undefined {
    const row = this.#rows.rowOf(userId);
    if (row < 0) return undefined;
    const p = newUserProfile(userId, this.#spec);
    this.#readCounters(row, p);
    const nc = this.#spec.numCategories;
    p.categoryAffinity.set(this.#affinity.subarray(row * nc, (row + 1) * nc));
    const length = this.#rows.column('recentLength')[row] as number;
    if (length > 0) {
      const pool = this.#pools[this.#rows.column('recentClass')[row] as number] as RecentPool;
      const at = (this.#rows.column('recentSlot')[row] as number) * pool.width;
      p.recentVideoIds = Array.from(pool.videoIds.subarray(at, at + length));
      p.recentCreatorIds = Array.from(pool.creatorIds.subarray(at, at + length));
    }
    return p;
  }

  /**
   * Runs `mutate` on the user's profile (a new one when absent), stores the result and bumps the
   * version. `mutate` must not keep the profile (it is reused) and must not throw (the user exists
   * from here on). With `lists` false (an event that is not an engagement, core/features/user.ts
   * `isEngagement`) only the counters are read and written: the lists and affinities `mutate` sees
   * are empty, and it must not change them.
   */
  update(userId: number, mutate: (profile: UserProfile) => void, lists = true): void {
    const before = this.#rows.size;
    const row = this.#rows.insert(userId);
    if (this.#rows.size > before) this.#ensureAffinity(this.#rows.size);
    const p = this.#scratch;
    p.userId = userId;
    this.#readCounters(row, p);
    if (lists) this.#readLists(row, p);
    else {
      p.recentVideoIds.length = 0;
      p.recentCreatorIds.length = 0;
    }
    mutate(p);
    this.#writeCounters(row, p);
    if (lists) this.#writeLists(row, p);
    const version = this.#rows.column('version');
    version[row] = (version[row] as number) + 1;
  }

  /** Every profile as snapshot columns (snapshot.ts), rows in ascending user id. */
  exportColumns(appliedSeq: number): UserProfileColumns {
    const t = this.#rows;
    const n = t.size;
    const nc = this.#spec.numCategories;
    const order = Array.from({ length: n }, (_, r) => r).sort((a, b) => t.idAt(a) - t.idAt(b));
    const userIds = new Float64Array(n);
    const w = USER_COUNTER_FIELDS.length;
    const counters = new Float64Array(n * w);
    const recentOffsets = new Uint32Array(n + 1);
    const affinity = new Float32Array(n * nc);
    const recentVideoIds = new Float64Array(this.#recentEntries);
    const recentCreatorIds = new Float64Array(this.#recentEntries);
    const lengths = t.column('recentLength');
    let at = 0;
    for (let u = 0; u < n; u++) {
      const row = order[u] as number;
      userIds[u] = t.idAt(row);
      USER_COUNTER_FIELDS.forEach((f, i) => (counters[u * w + i] = t.column(f)[row] as number));
      affinity.set(this.#affinity.subarray(row * nc, (row + 1) * nc), u * nc);
      recentOffsets[u] = at;
      const length = lengths[row] as number;
      if (length > 0) {
        const pool = this.#pools[t.column('recentClass')[row] as number] as RecentPool;
        const from = (t.column('recentSlot')[row] as number) * pool.width;
        recentVideoIds.set(pool.videoIds.subarray(from, from + length), at);
        recentCreatorIds.set(pool.creatorIds.subarray(from, from + length), at);
        at += length;
      }
    }
    recentOffsets[n] = at;
    return { numCategories: nc, appliedSeq, userIds, counters, recentOffsets, recentVideoIds, recentCreatorIds, affinity };
  }

  /**
   * Replaces every profile with the snapshot's (versions restart at 0). Throws a TypeError, before
   * changing anything, when the columns are inconsistent (ids not strictly ascending, offsets out
   * of order or past the lists, a list over RECENT_LIMIT, sections of the wrong length).
   */
  restoreColumns(cols: UserProfileColumns): void {
    checkColumns(cols, this.#spec.numCategories);
    this.#clear();
    const nc = this.#spec.numCategories;
    const w = USER_COUNTER_FIELDS.length;
    const t = this.#rows;
    this.#ensureAffinity(cols.userIds.length);
    for (let u = 0; u < cols.userIds.length; u++) {
      const row = t.insert(cols.userIds[u] as number);
      USER_COUNTER_FIELDS.forEach((f, i) => (t.column(f)[row] = cols.counters[u * w + i] as number));
      this.#affinity.set(cols.affinity.subarray(u * nc, (u + 1) * nc), row * nc);
      const from = cols.recentOffsets[u] as number;
      const length = (cols.recentOffsets[u + 1] as number) - from;
      const cls = classFor(length);
      if (cls >= 0) {
        const pool = this.#pools[cls] as RecentPool;
        const slot = pool.alloc();
        t.column('recentClass')[row] = cls;
        t.column('recentSlot')[row] = slot;
        pool.videoIds.set(cols.recentVideoIds.subarray(from, from + length), slot * pool.width);
        pool.creatorIds.set(cols.recentCreatorIds.subarray(from, from + length), slot * pool.width);
      }
      t.column('recentLength')[row] = length;
      this.#recentEntries += length;
    }
    this.compact(); // pools sized exactly, not by doubling
  }

  #clear(): void {
    this.#rows = new IdTable<Column>(COLUMNS, 1024);
    this.#affinity = new Float32Array(1024 * this.#spec.numCategories);
    this.#pools = CLASSES.map((w) => new RecentPool(w));
    this.#recentEntries = 0;
  }

  #ensureAffinity(rows: number): void {
    const need = rows * this.#spec.numCategories;
    if (need <= this.#affinity.length) return;
    const grown = new Float32Array(Math.max(need, this.#affinity.length * 2));
    grown.set(this.#affinity);
    this.#affinity = grown;
  }

  #readCounters(row: number, p: { -readonly [K in keyof UserProfile]: UserProfile[K] }): void {
    const t = this.#rows;
    p.impressions = t.column('impressions')[row] as number;
    p.clicks = t.column('clicks')[row] as number;
    p.watches = t.column('watches')[row] as number;
    p.watchSeconds = t.column('watchSeconds')[row] as number;
    p.lastEventMs = t.column('lastEventMs')[row] as number;
  }

  /** Into the scratch profile: written by index, then cut, so the arrays keep their storage. */
  #readLists(row: number, p: UserProfile): void {
    const t = this.#rows;
    const nc = this.#spec.numCategories;
    p.categoryAffinity.set(this.#affinity.subarray(row * nc, (row + 1) * nc));
    const length = t.column('recentLength')[row] as number;
    const videos = p.recentVideoIds;
    const creators = p.recentCreatorIds;
    if (length > 0) {
      const pool = this.#pools[t.column('recentClass')[row] as number] as RecentPool;
      const at = (t.column('recentSlot')[row] as number) * pool.width;
      for (let i = 0; i < length; i++) {
        videos[i] = pool.videoIds[at + i] as number;
        creators[i] = pool.creatorIds[at + i] as number;
      }
    }
    videos.length = length;
    creators.length = length;
  }

  #writeCounters(row: number, p: UserProfile): void {
    const t = this.#rows;
    t.column('impressions')[row] = p.impressions;
    t.column('clicks')[row] = p.clicks;
    t.column('watches')[row] = p.watches;
    t.column('watchSeconds')[row] = p.watchSeconds;
    t.column('lastEventMs')[row] = p.lastEventMs;
  }

  #writeLists(row: number, p: UserProfile): void {
    const t = this.#rows;
    const nc = this.#spec.numCategories;
    this.#affinity.set(p.categoryAffinity.subarray(0, nc), row * nc);
    const oldLength = t.column('recentLength')[row] as number;
    const length = p.recentVideoIds.length;
    // A row that never had a list reads class 0 / slot 0 from fresh columns: only a length > 0 owns a slot.
    const oldClass = oldLength === 0 ? -1 : (t.column('recentClass')[row] as number);
    const cls = classFor(length);
    if (cls !== oldClass) {
      if (oldClass >= 0) (this.#pools[oldClass] as RecentPool).release(t.column('recentSlot')[row] as number);
      if (cls >= 0) {
        const slot = (this.#pools[cls] as RecentPool).alloc();
        t.column('recentClass')[row] = cls;
        t.column('recentSlot')[row] = slot;
      }
    }
    if (cls >= 0) {
      const pool = this.#pools[cls] as RecentPool;
      const at = (t.column('recentSlot')[row] as number) * pool.width;
      for (let i = 0; i < length; i++) {
        pool.videoIds[at + i] = p.recentVideoIds[i] as number;
        pool.creatorIds[at + i] = p.recentCreatorIds[i] as number;
      }
    }
    t.column('recentLength')[row] = length;
    this.#recentEntries += length - oldLength;
  }
}

function checkColumns(cols: UserProfileColumns, nc: number): void {
  const n = cols.userIds.length;
  const bad = (what: string): never => {
    throw new TypeError(`profile snapshot: ${what}`);
  };
  if (cols.numCategories !== nc) bad(`${cols.numCategories} categories, the spec has ${nc}`);
  if (cols.counters.length !== n * USER_COUNTER_FIELDS.length) bad(`counters hold ${cols.counters.length} values for ${n} users`);
  if (cols.affinity.length !== n * nc) bad(`affinity holds ${cols.affinity.length} values for ${n} users`);
  if (cols.recentOffsets.length !== n + 1 || cols.recentOffsets[0] !== 0) bad('recent offsets do not start at 0 with one per user');
  for (let u = 0; u < n; u++) {
    if (u > 0 && !((cols.userIds[u] as number) > (cols.userIds[u - 1] as number))) bad(`user ids not strictly ascending at row ${u}`);
    const length = (cols.recentOffsets[u + 1] as number) - (cols.recentOffsets[u] as number);
    if (!(length >= 0 && length <= RECENT_LIMIT)) bad(`user ${cols.userIds[u]} has a recent list of ${length} entries (0..${RECENT_LIMIT})`);
  }
  const total = cols.recentOffsets[n] as number;
  if (cols.recentVideoIds.length !== total || cols.recentCreatorIds.length !== total) bad(`recent lists hold ${cols.recentVideoIds.length}/${cols.recentCreatorIds.length} entries, the offsets ${total}`);
}
