/**
 * Periodic live snapshots of one user partition (snapshot.ts, kind 'live'), so a restart or a dead
 * worker replays only the events after the last snapshot, not the whole event stream, and the
 * stream can keep a bounded window (event-stream/stream.ts, `max_age`).
 *
 * Runs where the partition lives (its host worker, or the caller's thread for 'inline'), never on
 * a request's path: every `intervalMs` it checks whether the partition applied an event since the
 * last snapshot; if so it copies the profiles in the partition's own order (`exclusive`: between
 * two applies or gets, so the copy and its appliedSeq agree exactly), then writes the copy with no
 * lock held while requests go on. One write at a time; a tick that finds one running is skipped.
 */
import type { UserStatePartition } from './partition.js';
import type { UserProfileColumns, UserSnapshotKey } from './snapshot.js';
import { writeLiveUserSnapshot } from './snapshot.js';

/** Counters of a {@link UserSnapshotWriter} since its partition was (re)opened, for /metrics. */
export interface UserSnapshotWriterStats {
  /** Live snapshots written. */
  readonly written: number;
  /** Ticks that found the snapshot on disk already at this sequence or past it (a twin replica wrote it). */
  readonly skipped: number;
  /** Writes that failed (the next tick tries again). */
  readonly failures: number;
  /** appliedSeq of the last snapshot written or found on disk (at open: the one restored, else 0). */
  readonly lastSeq: number;
  /** Wall time (epoch ms) the last snapshot was written; 0 when none yet. */
  readonly lastAtMs: number;
  /** Milliseconds the last write took (copy + file write). */
  readonly lastWriteMs: number;
}

/** No writer (snapshots off): every counter zero. */
export const NO_SNAPSHOT_WRITER_STATS: UserSnapshotWriterStats = Object.freeze({ written: 0, skipped: 0, failures: 0, lastSeq: 0, lastAtMs: 0, lastWriteMs: 0 });

/** Options of {@link UserSnapshotWriter}. */
export interface UserSnapshotWriterOptions {
  readonly partition: UserStatePartition;
  readonly snapshotDir: string;
  readonly key: UserSnapshotKey;
  /** Identity of the event stream the partition follows ('' when none). */
  readonly stream: string;
  /** Period, ms (> 0). */
  readonly intervalMs: number;
  /**
   * Runs `fn` in the partition's order (after the work queued before it); resolves false when the
   * partition closed first (fn not run).
   */
  readonly exclusive: (fn: () => void) => Promise<boolean>;
  /** Told after every attempt (e.g. to push counters to the main thread). */
  readonly onChange?: (stats: UserSnapshotWriterStats) => void;
  /** Failure log. Default: stderr. */
  readonly log?: (event: Record<string, unknown>) => void;
}

/** See the module comment. */
export class UserSnapshotWriter {
  readonly #o: UserSnapshotWriterOptions;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;
  #stopped = false;
  #stats: { written: number; skipped: number; failures: number; lastSeq: number; lastAtMs: number; lastWriteMs: number };

  constructor(o: UserSnapshotWriterOptions) {
    if (!(Number.isFinite(o.intervalMs) && o.intervalMs > 0)) throw new TypeError(`option snapshotIntervalMs must be > 0, got ${o.intervalMs}`);
    this.#o = o;
    this.#stats = { ...NO_SNAPSHOT_WRITER_STATS, lastSeq: o.partition.appliedSeq };
    this.#timer = setInterval(() => void this.snapshotNow(), o.intervalMs);
    this.#timer.unref();
  }

  stats(): UserSnapshotWriterStats {
    return { ...this.#stats };
  }

  /**
   * Writes a snapshot now when the partition applied an event since the last one (the timer calls
   * it; tests may too). Resolves when done; never rejects (failures are counted and logged).
   */
  snapshotNow(): Promise<void> {
    if (this.#stopped || this.#running !== undefined || this.#o.partition.appliedSeq <= this.#stats.lastSeq) return this.#running ?? Promise.resolve();
    this.#running = this.#write().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #write(): Promise<void> {
    const t0 = performance.now();
    let cols: UserProfileColumns | undefined;
    try {
      if (!(await this.#o.exclusive(() => (cols = this.#o.partition.exportProfiles())))) return;
      if (cols === undefined || this.#stopped) return;
      const wrote = await writeLiveUserSnapshot(this.#o.snapshotDir, this.#o.key, cols, this.#o.stream);
      if (wrote) {
        this.#stats.written++;
        this.#stats.lastAtMs = Date.now();
      } else {
        this.#stats.skipped++;
      }
      this.#stats.lastSeq = cols.appliedSeq;
      this.#stats.lastWriteMs = performance.now() - t0;
    } catch (err) {
      this.#stats.failures++;
      (this.#o.log ?? ((e) => process.stderr.write(`${JSON.stringify(e)}\n`)))({
        event: 'user_snapshot_write_failed',
        partition: this.#o.key.partition,
        appliedSeq: cols?.appliedSeq,
        message: err instanceof Error ? err.message : String(err),
      });
    }
    this.#o.onChange?.(this.stats());
  }

  /** Stops the timer and waits for a write in progress. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
