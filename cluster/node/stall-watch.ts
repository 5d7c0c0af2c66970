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
 *   lateness is at or over `logOverMs` (config `node.stallLogMs`), each with `atMs`: when the pause
 *   began, or the start of the second in which the loop stalled. A GC pause holds the loop too, so
 *   a long one also shows as a loop stall.
 *
 * Lateness comes from Node's event-loop delay monitor (a libuv timer every 10 ms, no JS: 0.007 cores
 * per process idle on the 2-vCPU box, where a JS interval doing the same cost 0.015), minus its 10 ms
 * period (it records whole intervals between its ticks). It is reset every window; a block that
 * starts in the same callback as the reset would go unseen (only this watch's own timer runs there).
 *
 * GC is observed per thread (the isolate), not per node: where several nodes share a process (the
 * integration tests), each node's watch sees the same pauses. The item-shard, user-state and ranker
 * workers have their own isolates and are not watched here.
 */
import { PerformanceObserver, constants, createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { IntervalHistogram, PerformanceEntry, RecordableHistogram } from 'node:perf_hooks';
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

/** The delay monitor's period, ms: its samples are whole intervals, this much more than the lateness. */
const LOOP_MONITOR_MS = 10;

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
  readonly #loop: IntervalHistogram;
  readonly #window: NodeJS.Timeout;
  #windowStart = Date.now();
  /** Lateness samples (µs) since {@link takeLoopDelayP99Ms} last read them, rebuilt from each window's. */
  readonly #sinceRead: RecordableHistogram = createHistogram();

  constructor(o: StallWatchOptions) {
    if (!Number.isFinite(o.logOverMs) || o.logOverMs < 0) throw new TypeError(`logOverMs must be ≥ 0, got ${o.logOverMs}`);
    this.#o = o;
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.recordGc(gcEntryKind(e), e.duration, performance.timeOrigin + e.startTime);
    });
    this.#observer.observe({ entryTypes: ['gc'] });
    this.#loop = monitorEventLoopDelay({ resolution: LOOP_MONITOR_MS });
    this.#loop.enable();
    this.#window = setInterval(() => this.#closeWindow(), o.windowMs ?? 1000);
    this.#window.unref();
  }

  #closeWindow(): void {
    const loop = this.#loop;
    const started = this.#windowStart;
    this.#windowStart = Date.now();
    if (loop.count > 0) {
      // The window's samples, as its percentile points give them (count × the share between two
      // points, at the upper point's value), join the since-read histogram for the /metrics gauge.
      let below = 0;
      for (const [p, ns] of [...loop.percentiles].sort((a, b) => a[0] - b[0])) {
        const n = Math.round((loop.count * (p - below)) / 100);
        below = p;
        const lateUs = Math.max(1, Math.round(ns / 1000 - LOOP_MONITOR_MS * 1000));
        for (let i = 0; i < n; i++) this.#sinceRead.record(lateUs);
      }
    }
    const maxMs = loop.count > 0 ? Math.max(0, loop.max / 1e6 - LOOP_MONITOR_MS) : 0;
    loop.reset();
    this.recordLoopWindow(maxMs, started);
  }

  /** One GC pause that began at `atMs` (epoch ms). Public for tests; the observer calls it. */
  recordGc(kind: GcKind, ms: number, atMs: number = Date.now() - ms): void {
    this.#gc[kind].record(ms);
    if (this.#o.logOverMs > 0 && ms >= this.#o.logOverMs) {
      this.#logged++;
      this.#o.log({ event: 'gc_pause', node: this.#o.node, kind, ms: round(ms), atMs: Math.round(atMs) });
    }
  }

  /** One window's worst lateness, `atMs` (epoch ms) the window's start. Public for tests; the window timer calls it. */
  recordLoopWindow(maxMs: number, atMs: number = Date.now() - maxMs): void {
    this.#loopMax.record(maxMs);
    if (this.#o.logOverMs > 0 && maxMs >= this.#o.logOverMs) {
      this.#logged++;
      this.#o.log({ event: 'event_loop_stall', node: this.#o.node, maxMs: round(maxMs), atMs: Math.round(atMs) });
    }
  }

  /**
   * The p99 of the loop's lateness since the previous call, ms (0 without samples; windows not yet
   * closed are not in it), and a fresh start: /metrics' `nodejs_eventloop_delay_p99_seconds`. The
   * node's one delay monitor serves both this and the windows.
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
    clearInterval(this.#window);
    this.#loop.disable();
    this.#observer.disconnect();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
