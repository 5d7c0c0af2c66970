/**
 * HDR histograms of one load phase. Latency is recorded from the INTENDED send time (the open-loop
 * schedule), so a stall shows up in every request that should have been sent during it (no
 * coordinated omission); the service time from the actual send and the generator's lag (actual
 * minus intended send) are kept beside it, so a late generator is visible. Values are stored in
 * microseconds. A recorder serialises to plain data so generator processes can merge.
 */
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import type { ClassifiedOutcome, ServerStage } from './outcome.js';
import { SERVER_STAGES, mapStages, outcomeKey } from './outcome.js';

/** Highest latency tracked: 120 s, in µs (auto-resize covers more). */
const HIGHEST_US = 120_000_000;

function newHistogram(digits: 2 | 3): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: digits, autoResize: true });
}

function toUs(ms: number): number {
  return Math.max(1, Math.round(ms * 1000));
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export function percentilesOf(h: Histogram): Percentiles {
  if (h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  const ms = (us: number) => us / 1000;
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** One second of the phase (by intended send time). */
interface SecondBucket {
  offered: number;
  dropped: number;
  completed: number;
  errors: number;
  fallback: number;
  latency: Histogram;
}

/** Plain-data form of a {@link PhaseRecorder}, for IPC between generator processes. */
export interface RecorderSnapshot {
  readonly byOutcome: Readonly<Record<string, string>>;
  readonly all: string;
  readonly service: string;
  readonly lag: string;
  readonly events: string;
  /** The server's stage timings, per stage (absent in snapshots of answers without timings). */
  readonly stages?: Readonly<Partial<Record<ServerStage, string>>>;
  readonly counts: RecorderCounts;
  readonly seconds: ReadonlyArray<{ offered: number; dropped: number; completed: number; errors: number; fallback: number; latency: string }>;
}

/** Counters of a phase. */
export interface RecorderCounts {
  /** Arrivals the schedule produced (sent + dropped). */
  offered: number;
  /** Requests actually sent. */
  sent: number;
  /** Arrivals not sent because `maxInFlight` requests were outstanding ("dropped by generator"). */
  dropped: number;
  /** Requests answered (any outcome, errors included). */
  completed: number;
  coverageSum: number;
  coverageCount: number;
  coverageMin: number;
  eventBatchesSent: number;
  eventBatchesFailed: number;
  eventsSent: number;
  eventBatchesDropped: number;
}

function emptyCounts(): RecorderCounts {
  return {
    offered: 0, sent: 0, dropped: 0, completed: 0, coverageSum: 0, coverageCount: 0, coverageMin: 1,
    eventBatchesSent: 0, eventBatchesFailed: 0, eventsSent: 0, eventBatchesDropped: 0,
  };
}

export class PhaseRecorder {
  readonly #byOutcome = new Map<string, Histogram>();
  readonly #all = newHistogram(3);
  readonly #service = newHistogram(3);
  readonly #lag = newHistogram(3);
  readonly #events = newHistogram(3);
  /** Created on the first answer that carries the server's timings. */
  #stages: Map<ServerStage, Histogram> | undefined;
  readonly #seconds: SecondBucket[] = [];
  readonly counts: RecorderCounts = emptyCounts();

  #second(tMs: number): SecondBucket {
    const i = Math.max(0, Math.floor(tMs / 1000));
    while (this.#seconds.length <= i) this.#seconds.push({ offered: 0, dropped: 0, completed: 0, errors: 0, fallback: 0, latency: newHistogram(2) });
    return this.#seconds[i]!;
  }

  /** An arrival was sent `lagMs` after its intended time `intendedMs` (ms from phase start). */
  sent(intendedMs: number, lagMs: number): void {
    this.counts.offered++;
    this.counts.sent++;
    this.#second(intendedMs).offered++;
    this.#lag.recordValue(toUs(lagMs));
  }

  /** An arrival was not sent because too many requests were in flight. */
  dropped(intendedMs: number): void {
    this.counts.offered++;
    this.counts.dropped++;
    const s = this.#second(intendedMs);
    s.offered++;
    s.dropped++;
  }

  /**
   * A request completed. `latencyMs` runs from the intended send time, `serviceMs` from the
   * actual send.
   */
  completed(intendedMs: number, latencyMs: number, serviceMs: number, outcome: ClassifiedOutcome): void {
    this.counts.completed++;
    const key = outcomeKey(outcome);
    let h = this.#byOutcome.get(key);
    if (!h) {
      h = newHistogram(3);
      this.#byOutcome.set(key, h);
    }
    const us = toUs(latencyMs);
    h.recordValue(us);
    this.#all.recordValue(us);
    this.#service.recordValue(toUs(serviceMs));
    if (outcome.stageMs !== undefined) {
      // The coordinator reports 0 for a stage it never reached (a shed request, a stage that failed
      // before it), so each stage's percentiles are over the answers that ran it; total is always kept.
      for (const stage of SERVER_STAGES) {
        const ms = outcome.stageMs[stage];
        if (ms > 0 || stage === 'total') this.#stage(stage).recordValue(toUs(ms));
      }
    }
    if (outcome.coverage !== undefined) {
      this.counts.coverageSum += outcome.coverage;
      this.counts.coverageCount++;
      this.counts.coverageMin = Math.min(this.counts.coverageMin, outcome.coverage);
    }
    const s = this.#second(intendedMs);
    s.completed++;
    s.latency.recordValue(us);
    if (outcome.outcome === 'error') s.errors++;
    if (outcome.outcome === 'fallback') s.fallback++;
  }

  /** A LogEvents batch of `size` events completed after `latencyMs` (from intended time). */
  eventBatch(size: number, latencyMs: number, ok: boolean): void {
    this.counts.eventBatchesSent++;
    this.counts.eventsSent += size;
    if (!ok) this.counts.eventBatchesFailed++;
    this.#events.recordValue(toUs(latencyMs));
  }

  #stage(stage: ServerStage): Histogram {
    this.#stages ??= new Map();
    let h = this.#stages.get(stage);
    if (!h) {
      h = newHistogram(2);
      this.#stages.set(stage, h);
    }
    return h;
  }

  eventBatchDropped(): void {
    this.counts.eventBatchesDropped++;
  }

  /** Latency from intended send time, all outcomes. */
  latency(): Percentiles {
    return percentilesOf(this.#all);
  }
  /** Latency from actual send time (what a naive generator would report). */
  serviceTime(): Percentiles {
    return percentilesOf(this.#service);
  }
  /** How late sends happened versus their intended time. */
  lag(): Percentiles {
    return percentilesOf(this.#lag);
  }
  eventLatency(): Percentiles {
    return percentilesOf(this.#events);
  }
  /**
   * Percentiles of the server's own stage timings over the answers that carried them (requests
   * sent with debug), each stage over the answers that ran it (count 0 for a stage none reached),
   * or undefined when no answer carried timings.
   */
  serverStages(): Record<ServerStage, Percentiles> | undefined {
    if (this.#stages === undefined) return undefined;
    return mapStages((stage) => percentilesOf(this.#stage(stage)));
  }
  /** Percentiles per outcome key ("ranked", "fallback", "error:UNAVAILABLE", ...). */
  byOutcome(): Record<string, Percentiles> {
    const out: Record<string, Percentiles> = {};
    for (const [k, h] of [...this.#byOutcome].sort(([a], [b]) => a.localeCompare(b))) out[k] = percentilesOf(h);
    return out;
  }
  /** Per-second series (by intended send time). */
  perSecond(): Array<{ second: number; offered: number; dropped: number; completed: number; errors: number; fallback: number; latency: Percentiles }> {
    return this.#seconds.map((s, second) => ({
      second, offered: s.offered, dropped: s.dropped, completed: s.completed, errors: s.errors, fallback: s.fallback, latency: percentilesOf(s.latency),
    }));
  }

  snapshot(): RecorderSnapshot {
    const enc = (h: Histogram) => hdr.encodeIntoCompressedBase64(h);
    const byOutcome: Record<string, string> = {};
    for (const [k, h] of this.#byOutcome) byOutcome[k] = enc(h);
    return {
      byOutcome,
      all: enc(this.#all),
      service: enc(this.#service),
      lag: enc(this.#lag),
      events: enc(this.#events),
      ...(this.#stages !== undefined ? { stages: Object.fromEntries([...this.#stages].map(([k, h]) => [k, enc(h)])) } : {}),
      counts: { ...this.counts },
      seconds: this.#seconds.map((s) => ({ offered: s.offered, dropped: s.dropped, completed: s.completed, errors: s.errors, fallback: s.fallback, latency: enc(s.latency) })),
    };
  }

  /** Adds another recorder's snapshot (another generator process, same phase) into this one. */
  merge(snap: RecorderSnapshot): void {
    const dec = (s: string) => hdr.decodeFromCompressedBase64(s);
    for (const [k, s] of Object.entries(snap.byOutcome)) {
      let h = this.#byOutcome.get(k);
      if (!h) {
        h = newHistogram(3);
        this.#byOutcome.set(k, h);
      }
      h.add(dec(s));
    }
    this.#all.add(dec(snap.all));
    this.#service.add(dec(snap.service));
    this.#lag.add(dec(snap.lag));
    this.#events.add(dec(snap.events));
    for (const stage of SERVER_STAGES) {
      const enc = snap.stages?.[stage];
      if (enc !== undefined) this.#stage(stage).add(dec(enc));
    }
    const c = this.counts;
    const o = snap.counts;
    c.offered += o.offered; c.sent += o.sent; c.dropped += o.dropped; c.completed += o.completed;
    c.coverageSum += o.coverageSum; c.coverageCount += o.coverageCount; c.coverageMin = Math.min(c.coverageMin, o.coverageMin);
    c.eventBatchesSent += o.eventBatchesSent; c.eventBatchesFailed += o.eventBatchesFailed; c.eventsSent += o.eventsSent;
    c.eventBatchesDropped += o.eventBatchesDropped;
    snap.seconds.forEach((s, i) => {
      const b = this.#second(i * 1000);
      b.offered += s.offered; b.dropped += s.dropped; b.completed += s.completed; b.errors += s.errors; b.fallback += s.fallback;
      b.latency.add(dec(s.latency));
    });
  }
}
