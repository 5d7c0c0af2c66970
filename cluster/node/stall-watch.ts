/**
 * Stalls of a node process's main thread: garbage-collection pauses and event-loop delay.
 *
 * The main thread runs the coordinator, so anything that holds it (a major GC, a long synchronous
 * task, the process waiting for a core) holds every request in flight: on the 16-core host, ramps
 * missed the SLO by p99 spikes of 68–316 ms while the main threads were only at 56–72% of a core
 * (docs/capacity.md, "A 16-core machine again"), and nothing said what had stalled. This watch gives
 * an operator and a load test the answer:
 * - /metrics: a histogram of GC pause durations per kind, and a histogram of each second's worst
 *   event-loop lateness. Both are cumulative, so several scrapers (Prometheus and a load test) do
 *   not reset each other's view.
 * - the node log: a `gc_pause` line per pause and an `event_loop_stall` line per second whose worst
 *   lateness is at or over `logOverMs` (config `node.stallLogMs`), each with `atMs`, the epoch ms at
 *   which the stall began. A GC pause holds the loop too, so a long one also shows as a loop stall.
 *
 * GC is observed per thread (the isolate), not per node: where several nodes share a process (the
 * integration tests), each node's watch sees the same pauses. The item-shard, user-state and ranker
 * workers have their own isolates and are not watched here.
 */
import { PerformanceObserver, constants, createHistogram, performance } from 'node:perf_hooks';
import type { PerformanceEntry, RecordableHistogram } from 'node:perf_hooks';
import { LatencyHistogram } from '../../actors/coordinator/stats.js';
import type { HistogramSnapshot } from '../../actors/coordinator/stats.js';

export const GC_KINDS = ['minor', 'major', 'incremental', 'weakcb', 'other'] as const;
export type GcKind = (typeof GC_KINDS)[number];

/** The kind of a perf_hooks 'gc' entry (Node ≥ 16 puts it in `detail`; its @types omit the field). */
export function gcEntryKind(entry: PerformanceEntry): GcKind {
  switch ((entry as { readonly detail?: { readonly kind?: number } }).detail?.kind) {
    case constants.NODE_PERFORMANCE_GC_MINOR:
      return 'minor';
    case constants.NODE_PERFORMANCE_GC_MAJOR:
      return 'major';
    case constants.NODE_PERFORMANCE_GC_INCREMENTAL:
      return 'incremental';
    case constants.NODE_PERFORMANCE_GC_WEAKCB:
      return 'weakcb';
    default:
      return 'other';
  }
}

/** How often the loop's lateness is probed, ms: a stall shows within this of its true length. */
export const LOOP_PROBE_MS = 10;

export interface StallWatchOptions {
  readonly node: string;
  /** Log a GC pause, or a second whose worst event-loop lateness is, at or over this, ms; 0 = never. */
  readonly logOverMs: number;
  readonly log: (line: Record<string, unknown>) => void;
  /** Length of an event-loop window, ms. Default 1000 (tests shorten it). */
  readonly windowMs?: number;
}

export interface StallSnapshot {
  /** GC pause durations per kind since the watch started. */
  readonly gcPauses: Readonly<Record<GcKind, HistogramSnapshot>>;
  /** Each window's worst event-loop lateness, one observation per window, since the start. */
  readonly eventLoopWindowMax: HistogramSnapshot;
  /** Lines logged (GC pauses and event-loop windows at or over the threshold). */
  readonly stallsLogged: number;
}

export class StallWatch {
  readonly #o: StallWatchOptions;
  readonly #gc = Object.fromEntries(GC_KINDS.map((k) => [k, new LatencyHistogram()])) as Record<GcKind, LatencyHistogram>;
  readonly #loopMax = new LatencyHistogram();
  #logged = 0;
  readonly #observer: PerformanceObserver;
  readonly #probe: NodeJS.Timeout;
  #lastProbe = performance.now();
  #windowStart = performance.now();
  /** Worst lateness in the current window, ms, and when that stall began (performance.now() ms). */
  #windowMax = 0;
  #windowMaxAt = 0;
  /** Every probe's lateness, µs, since {@link takeLoopDelayP99Ms} last read it. */
  readonly #sinceRead: RecordableHistogram = createHistogram();

  constructor(o: StallWatchOptions) {
    if (!Number.isFinite(o.logOverMs) || o.logOverMs < 0) throw new TypeError(`logOverMs must be ≥ 0, got ${o.logOverMs}`);
    this.#o = o;
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.recordGc(gcEntryKind(e), e.duration, performance.timeOrigin + e.startTime);
    });
    this.#observer.observe({ entryTypes: ['gc'] });
    // Lateness = how much later than asked the probe timer runs: what a callback queued at that
    // moment waited. Measured here rather than with monitorEventLoopDelay, whose samples are whole
    // tick intervals (an idle loop reads ~10 ms) and whose first tick after a reset records nothing.
    const windowMs = o.windowMs ?? 1000;
    this.#probe = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - this.#lastProbe - LOOP_PROBE_MS);
      this.#lastProbe = now;
      this.#sinceRead.record(Math.max(1, Math.round(late * 1000)));
      if (late > this.#windowMax) {
        this.#windowMax = late;
        this.#windowMaxAt = now - late;
      }
      if (now - this.#windowStart >= windowMs) {
        this.recordLoopWindow(this.#windowMax, performance.timeOrigin + this.#windowMaxAt);
        this.#windowStart = now;
        this.#windowMax = 0;
      }
    }, LOOP_PROBE_MS);
    this.#probe.unref();
  }

  /** One GC pause that began at `atMs` (epoch ms). Public for tests; the observer calls it. */
  recordGc(kind: GcKind, ms: number, atMs: number = Date.now() - ms): void {
    this.#gc[kind].record(ms);
    if (this.#o.logOverMs > 0 && ms >= this.#o.logOverMs) {
      this.#logged++;
      this.#o.log({ event: 'gc_pause', node: this.#o.node, kind, ms: round(ms), atMs: Math.round(atMs) });
    }
  }

  /** One window's worst lateness, the stall having begun at `atMs` (epoch ms). Public for tests; the probe calls it. */
  recordLoopWindow(maxMs: number, atMs: number = Date.now() - maxMs): void {
    this.#loopMax.record(maxMs);
    if (this.#o.logOverMs > 0 && maxMs >= this.#o.logOverMs) {
      this.#logged++;
      this.#o.log({ event: 'event_loop_stall', node: this.#o.node, maxMs: round(maxMs), atMs: Math.round(atMs) });
    }
  }

  /**
   * The p99 of the probes' lateness since the previous call, ms (0 without probes), and a fresh
   * start: /metrics' `nodejs_eventloop_delay_p99_seconds`. The node's one loop probe serves both
   * this and the windows (each probe is a wake-up: ~0.01 core per process on the 2-vCPU box).
   */
  takeLoopDelayP99Ms(): number {
    const p99 = this.#sinceRead.count > 0 ? this.#sinceRead.percentile(99) / 1000 : 0;
    this.#sinceRead.reset();
    return p99;
  }

  snapshot(): StallSnapshot {
    return {
      gcPauses: Object.fromEntries(GC_KINDS.map((k) => [k, this.#gc[k].snapshot()])) as Record<GcKind, HistogramSnapshot>,
      eventLoopWindowMax: this.#loopMax.snapshot(),
      stallsLogged: this.#logged,
    };
  }

  stop(): void {
    clearInterval(this.#probe);
    this.#observer.disconnect();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
