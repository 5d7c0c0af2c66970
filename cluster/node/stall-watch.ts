/**
 * Stalls of a node process's main thread: garbage-collection pauses and event-loop delay.
 *
 * The main thread runs the coordinator, so anything that holds it (a major GC, a long synchronous
 * task) holds every request in flight: on the 16-core host, ramps missed the SLO by p99 spikes of
 * 68–316 ms while the main threads were only at 56–72% of a core (docs/capacity.md, "A 16-core
 * machine again"), and nothing said what had stalled. This watch gives both an operator and a load
 * test the answer:
 * - /metrics: a histogram of GC pause durations per kind, and a histogram of each second's worst
 *   event-loop delay. Both are cumulative, so several scrapers (Prometheus and a load test) do not
 *   reset each other's view.
 * - the node log: a `gc_pause` line per pause and an `event_loop_stall` line per second whose worst
 *   delay is at or over `logOverMs` (config `node.stallLogMs`).
 */
import { PerformanceObserver, constants, monitorEventLoopDelay } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';
import { LatencyHistogram } from '../../actors/coordinator/stats.js';
import type { HistogramSnapshot } from '../../actors/coordinator/stats.js';

export const GC_KINDS = ['minor', 'major', 'incremental', 'weakcb', 'other'] as const;
export type GcKind = (typeof GC_KINDS)[number];

/** perf_hooks' numeric GC kind as a label. */
export function gcKindName(kind: number | undefined): GcKind {
  switch (kind) {
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

export interface StallWatchOptions {
  readonly node: string;
  /** Log a GC pause, or a second whose worst event-loop delay is, at or over this, ms; 0 = never. */
  readonly logOverMs: number;
  readonly log: (line: Record<string, unknown>) => void;
  /** Length of an event-loop window, ms. Default 1000 (tests shorten it). */
  readonly windowMs?: number;
}

export interface StallSnapshot {
  /** GC pause durations per kind since the process started. */
  readonly gcPauses: Readonly<Record<GcKind, HistogramSnapshot>>;
  /** Each window's worst event-loop delay, one observation per window, since the start. */
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
  readonly #timer: NodeJS.Timeout;

  constructor(o: StallWatchOptions) {
    if (!Number.isFinite(o.logOverMs) || o.logOverMs < 0) throw new TypeError(`logOverMs must be ≥ 0, got ${o.logOverMs}`);
    this.#o = o;
    this.#observer = new PerformanceObserver((list) => {
      // Node ≥ 16 puts the kind in `detail` (its @types omit the field on PerformanceEntry).
      for (const e of list.getEntries()) this.recordGc(gcKindName((e as { detail?: { kind?: number } }).detail?.kind), e.duration);
    });
    this.#observer.observe({ entryTypes: ['gc'] });
    // 10 ms resolution: the delay is how late a 10 ms timer fires, so stalls of tens of ms show.
    this.#loop = monitorEventLoopDelay({ resolution: 10 });
    this.#loop.enable();
    this.#timer = setInterval(() => {
      const maxMs = this.#loop.max / 1e6;
      this.#loop.reset();
      // No sample in the window (an idle loop between timer ticks) reads as 0 ms of delay.
      this.recordLoopWindow(Number.isFinite(maxMs) ? maxMs : 0);
    }, o.windowMs ?? 1000);
    this.#timer.unref();
  }

  /** One GC pause (exposed for tests: the observer calls it). */
  recordGc(kind: GcKind, ms: number): void {
    this.#gc[kind].record(ms);
    if (this.#o.logOverMs > 0 && ms >= this.#o.logOverMs) {
      this.#logged++;
      this.#o.log({ event: 'gc_pause', node: this.#o.node, kind, ms: round(ms) });
    }
  }

  /** One window's worst event-loop delay (exposed for tests: the timer calls it). */
  recordLoopWindow(maxMs: number): void {
    this.#loopMax.record(maxMs);
    if (this.#o.logOverMs > 0 && maxMs >= this.#o.logOverMs) {
      this.#logged++;
      this.#o.log({ event: 'event_loop_stall', node: this.#o.node, maxMs: round(maxMs) });
    }
  }

  snapshot(): StallSnapshot {
    return {
      gcPauses: Object.fromEntries(GC_KINDS.map((k) => [k, this.#gc[k].snapshot()])) as Record<GcKind, HistogramSnapshot>,
      eventLoopWindowMax: this.#loopMax.snapshot(),
      stallsLogged: this.#logged,
    };
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#observer.disconnect();
    this.#loop.disable();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
