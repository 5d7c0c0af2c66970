/**
 * Prediction drift (DESIGN §7: "mean predicted CTR vs observed; alert beyond ±10%"): for a sample of
 * answered requests, the coordinator remembers the calibrated P(click) it served per ranked item;
 * the IMPRESSION and CLICK events clients then log (LogEvents, carrying the response's request id)
 * are joined to them, and a sliding window compares the mean served P(click) of the matched
 * impressions with the share of them that was clicked.
 *
 * Pure and clock-injected: no I/O, no timers. The coordinator feeds it {@link
 * PredictionDriftMonitor.noteServed} on the Recommend path (one hash when the request is not
 * sampled, one small Map entry when it is); the node hands it the events its popular actor already
 * reads from the event stream ({@link PredictionDriftMonitor.noteEvents}: one Map lookup per event
 * that names a request), so there is no second stream consumer.
 *
 * Position caveat. The ranker scores every item at the feature spec's fixed `inferencePosition`
 * (0: the top slot; DESIGN §4/§5), while a click depends on the slot the item was shown in
 * (examination bias). So even a perfectly calibrated model predicts the top slot's CTR for every
 * slot and over-predicts lower ones. Measured on the synthetic `default` world (7 days, 401k
 * impressions, feeds in random order so the CTR by slot is the position effect alone): CTR 0.274 at
 * slot 0, relative 0.983 / 0.934 / 0.886 / 0.854 at slots 1-4, 0.675 at slot 9, 0.43 at slot 19. A
 * model calibrated at slot 0 would therefore show a drift of +0.8% over slots 0-1, +2.7% over 0-2,
 * +4.8% over 0-3, +6.8% over 0-4, +16.6% over 0-9 and +26% over every slot of those feeds. The
 * overall figure thus carries a built-in bias that depends on how deep users scroll (UI, surface,
 * list length), not on the model: a ±10% alert on it would fire for ever, or need a per-deployment
 * offset that silently goes stale. The alert reads the top slots only (0..`topPositions`-1), default
 * 3: the built-in bias there is ~3% (7 points of margin under ±10%) while three slots give three
 * times the data of slot 0 alone. The overall figures are still exported, for trends.
 *
 * Slots are the served ones (an item's index in the answer), not the event's `position`: the
 * prediction belongs to the answer, and CLICK events often carry no position.
 */
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import type { InteractionEvent } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import type { LabeledStats } from '../../core/labeled-stats.js';
import type { PredictionDriftConfig } from './config.js';
import { sampledByRequestId } from './sampling.js';

/** One served item as the monitor remembers it: its id and the calibrated P(click) served for it. */
export interface ServedPrediction {
  readonly videoId: number;
  /** Calibrated P(click) in [0, 1], as in the response's `p_click`. */
  readonly pClick: number;
}

/** What the pipeline calls on every answered request (the monitor decides whether to keep it). */
export interface PredictionDriftSink {
  /** Whether `requestId` is in the sample: callers check it before doing any work for a request. */
  sampled(requestId: string): boolean;
  /**
   * Remembers the first `count` of `items` (answer order: index = slot; at most
   * {@link DRIFT_MAX_SLOTS}) of a request served at `atMs` (epoch ms) on `surface` (the configured
   * surface it was served as, coordinator/config.ts `surfaceKey`; default "default") when its id is
   * sampled and there is room. Returns whether it is tracked.
   */
  noteServed(requestId: string, items: readonly ServedPrediction[], atMs: number, count?: number, surface?: string): boolean;
}

/** Matched impressions and clicks of one slice (every slot, or the top slots) over the window. */
export interface DriftFigures {
  /** IMPRESSION events joined to a tracked (request, video), each pair counted once. */
  readonly impressions: number;
  /** CLICK events joined to a tracked (request, video), each pair counted once. */
  readonly clicks: number;
  /** Mean served P(click) of the matched impressions; 0 without impressions. */
  readonly meanPredictedCtr: number;
  /** clicks / impressions; 0 without impressions. */
  readonly observedCtr: number;
  /**
   * The drift: meanPredictedCtr / observedCtr − 1 (positive: the model over-predicts). Absent
   * without clicks (so /metrics shows no series rather than a misleading number).
   */
  readonly ratio?: number;
}

/** The window's figures of one slice of traffic (all of it, or one surface), with its alert. */
export interface SliceDrift extends DriftFigures {
  /** The same figures for slots 0..topPositions-1 only: what the alert reads. */
  readonly top: DriftFigures;
  /**
   * |top.ratio| beyond alertAbove by more than two standard errors, with top.impressions ≥
   * minImpressions; also when those impressions drew no click at all while the model predicted
   * some (an infinite drift, or lost clicks).
   */
  readonly alert: boolean;
}

/** {@link PredictionDriftMonitor.snapshot}: the window's figures and the monitor's own counters. */
export interface PredictionDriftSnapshot extends DriftFigures {
  /** The same figures for slots 0..topPositions-1 only. */
  readonly top: DriftFigures;
  /**
   * The pooled figures' alert (as {@link SliceDrift.alert}) or any surface's: surfaces differ in
   * layout and objective blend, so a drift on one can hide in the pool (+15% on one surface and
   * −10% on another pool to a few percent).
   */
  readonly alert: boolean;
  /**
   * Per surface the requests were served as (the configured surfaces, "default" for the rest): the
   * same figures and each surface's own alert, which needs minImpressions on that surface alone.
   * On /metrics the same names with a `surface` label.
   */
  readonly surfaces: LabeledStats<SliceDrift>;
  /** Requests remembered now. */
  readonly trackedRequests: number;
  /** Requests sampled and tracked since start. */
  readonly sampledRequests: number;
  /** Sampled requests not tracked because maxTracked were already remembered (raise it, or lower sampleRate). */
  readonly droppedRequests: number;
  /** Requests forgotten after joinWindowMs. */
  readonly expiredRequests: number;
  /** Events that named a remembered request after its join window (clients logging late). */
  readonly lateEvents: number;
}

/**
 * Slots remembered per request: the first 100 of an answer. Bounds memory when clients ask for long
 * lists (k ≤ 1000): about 760 B per tracked 20-item request, ~2 KB at 100 items, so the default
 * 20,000 requests stay under ~40 MB. Feeds rarely show 100 items, and slots that deep measure
 * mostly position bias.
 */
export const DRIFT_MAX_SLOTS = 100;

/** Buckets of the sliding window. */
const DRIFT_WINDOW_BUCKETS = 15;

/** Slices counted per bucket: 0 every slot, 1 the top slots. */
const ALL = 0;
const TOP = 1;

/** Joined-flag bits of one served item. */
const IMPRESSION_SEEN = 1;
const CLICK_SEEN = 2;

interface TrackedRequest {
  /** When it was served, epoch ms. */
  readonly atMs: number;
  /** The configured surface it was served as. */
  readonly surface: string;
  /** Served ranked items in answer order (index = slot). */
  readonly videoIds: number[];
  readonly pClick: number[];
  /** Per item: IMPRESSION_SEEN | CLICK_SEEN once each was counted. */
  readonly joined: Uint8Array;
}

/**
 * Counts over a sliding window of {@link DRIFT_WINDOW_BUCKETS} buckets of windowMs/15 each, for two
 * slices (every slot, top slots). A bucket is reset when the clock reaches its next turn; a
 * snapshot sums the buckets of the last 15 bucket periods (so it covers 14 to 15 of them).
 */
class WindowCounts {
  readonly #bucketMs: number;
  /** Absolute bucket number (⌊ms / bucketMs⌋) each ring slot holds; -∞ when never used. */
  readonly #bucketOf = new Float64Array(DRIFT_WINDOW_BUCKETS).fill(-Infinity);
  readonly #impressions = new Float64Array(DRIFT_WINDOW_BUCKETS * 2);
  readonly #sumPredicted = new Float64Array(DRIFT_WINDOW_BUCKETS * 2);
  readonly #clicks = new Float64Array(DRIFT_WINDOW_BUCKETS * 2);

  constructor(windowMs: number) {
    this.#bucketMs = windowMs / DRIFT_WINDOW_BUCKETS;
  }

  #slot(nowMs: number): number {
    const b = Math.floor(nowMs / this.#bucketMs);
    const s = ((b % DRIFT_WINDOW_BUCKETS) + DRIFT_WINDOW_BUCKETS) % DRIFT_WINDOW_BUCKETS;
    if (this.#bucketOf[s] !== b) {
      this.#bucketOf[s] = b;
      for (const slice of [ALL, TOP]) {
        this.#impressions[s * 2 + slice] = 0;
        this.#sumPredicted[s * 2 + slice] = 0;
        this.#clicks[s * 2 + slice] = 0;
      }
    }
    return s;
  }

  impression(nowMs: number, pClick: number, top: boolean): void {
    const s = this.#slot(nowMs) * 2;
    this.#impressions[s + ALL]!++;
    this.#sumPredicted[s + ALL]! += pClick;
    if (top) {
      this.#impressions[s + TOP]!++;
      this.#sumPredicted[s + TOP]! += pClick;
    }
  }

  click(nowMs: number, top: boolean): void {
    const s = this.#slot(nowMs) * 2;
    this.#clicks[s + ALL]!++;
    if (top) this.#clicks[s + TOP]!++;
  }

  figures(nowMs: number, slice: typeof ALL | typeof TOP): DriftFigures {
    const current = Math.floor(nowMs / this.#bucketMs);
    let impressions = 0;
    let sumPredicted = 0;
    let clicks = 0;
    for (let s = 0; s < DRIFT_WINDOW_BUCKETS; s++) {
      const b = this.#bucketOf[s]!;
      if (b <= current - DRIFT_WINDOW_BUCKETS || b > current) continue;
      impressions += this.#impressions[s * 2 + slice]!;
      sumPredicted += this.#sumPredicted[s * 2 + slice]!;
      clicks += this.#clicks[s * 2 + slice]!;
    }
    const meanPredictedCtr = impressions > 0 ? sumPredicted / impressions : 0;
    const observedCtr = impressions > 0 ? clicks / impressions : 0;
    const base = { impressions, clicks, meanPredictedCtr, observedCtr };
    return clicks > 0 && impressions > 0 ? { ...base, ratio: meanPredictedCtr / observedCtr - 1 } : base;
  }
}

/**
 * Joins served predictions with the impressions and clicks logged for them, per coordinator. See
 * the module comment for what it measures and why the alert reads the top slots.
 */
export class PredictionDriftMonitor implements PredictionDriftSink {
  readonly #config: PredictionDriftConfig;
  readonly #clock: Clock;
  /** Insertion order = serving order, so the first entry is always the oldest. */
  readonly #tracked = new Map<string, TrackedRequest>();
  readonly #window: WindowCounts;
  /** The same counts per surface (keys bounded by the configured surfaces). */
  readonly #bySurface = new Map<string, WindowCounts>();
  /**
   * Requests forgotten after their join window, served-at ms: an event still naming one counts as
   * late (once). Kept for another join window, at most maxTracked of them.
   */
  readonly #recentlyExpired = new Map<string, number>();
  #sampled = 0;
  #dropped = 0;
  #expired = 0;
  #late = 0;

  /** `config`: the resolved `coordinator.drift` knobs; `clock` dates events and snapshots (default the system clock). */
  constructor(config: PredictionDriftConfig, clock: Clock = systemClock) {
    this.#config = config;
    this.#clock = clock;
    this.#window = new WindowCounts(config.windowMs);
  }

  /** Whether `requestId` is in the sample (the feature log's request-id hash; never for an empty id, which no event can name). */
  sampled(requestId: string): boolean {
    return requestId.length > 0 && sampledByRequestId(requestId, this.#config.sampleRate);
  }

  noteServed(requestId: string, items: readonly ServedPrediction[], atMs: number, count = items.length, surface = 'default'): boolean {
    const n = Math.min(count, items.length, DRIFT_MAX_SLOTS);
    if (n <= 0 || !this.sampled(requestId)) return false;
    this.#forgetExpired(atMs);
    // A replayed request id (a client retry) is tracked with its latest answer.
    this.#tracked.delete(requestId);
    if (this.#tracked.size >= this.#config.maxTracked) {
      // Full: the new request goes untracked rather than the oldest evicted, which would cut the
      // join window short for everyone and lose late clicks after their impressions were counted
      // (a bias towards over-prediction). The sample shrinks; it does not lean.
      this.#dropped++;
      return false;
    }
    const videoIds = new Array<number>(n);
    const pClick = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const it = items[i]!;
      videoIds[i] = it.videoId;
      pClick[i] = Number.isFinite(it.pClick) ? it.pClick : 0;
    }
    this.#tracked.set(requestId, { atMs, surface, videoIds, pClick, joined: new Uint8Array(n) });
    this.#sampled++;
    return true;
  }

  /**
   * Joins events (any order, any mix of types): an IMPRESSION of a tracked (request, video) counts
   * once as a matched impression with the P(click) served for it, a CLICK once as a click of a
   * matched impression (a click whose impression has not come waits for it, so lost impressions
   * never inflate the observed CTR); each in the window bucket of the time it is counted. Everything
   * else is ignored: events without a request id or of other types without a lookup, untracked
   * requests after one or two Map lookups.
   */
  noteEvents(events: readonly InteractionEvent[]): void {
    if (this.#tracked.size === 0 && this.#recentlyExpired.size === 0) return;
    const now = this.#clock.nowMs();
    const topPositions = this.#config.topPositions;
    for (const e of events) {
      const type = e.type;
      if ((type !== EventType.IMPRESSION && type !== EventType.CLICK) || e.requestId.length === 0) continue;
      const r = this.#tracked.get(e.requestId);
      if (r === undefined) {
        // Late: its request was forgotten after the join window (counted once per request).
        if (this.#recentlyExpired.delete(e.requestId)) this.#late++;
        continue;
      }
      if (now - r.atMs > this.#config.joinWindowMs) {
        this.#late++;
        this.#tracked.delete(e.requestId);
        this.#expired++;
        continue;
      }
      const slot = r.videoIds.indexOf(e.videoId);
      if (slot < 0) continue;
      const bit = type === EventType.IMPRESSION ? IMPRESSION_SEEN : CLICK_SEEN;
      const joined = r.joined[slot]!;
      if ((joined & bit) !== 0) continue; // a duplicate (a client retry, a stream replay)
      r.joined[slot] = joined | bit;
      const top = slot < topPositions;
      const surface = this.#surfaceWindow(r.surface);
      if (bit === IMPRESSION_SEEN) {
        this.#window.impression(now, r.pClick[slot]!, top);
        surface.impression(now, r.pClick[slot]!, top);
        if ((joined & CLICK_SEEN) !== 0) {
          // its click came first
          this.#window.click(now, top);
          surface.click(now, top);
        }
      } else if ((joined & IMPRESSION_SEEN) !== 0) {
        this.#window.click(now, top);
        surface.click(now, top);
      }
    }
  }

  /** The window's figures now. */
  snapshot(): PredictionDriftSnapshot {
    const now = this.#clock.nowMs();
    this.#forgetExpired(now);
    const pooled = this.#slice(this.#window, now);
    const entries: Record<string, SliceDrift> = {};
    for (const [surface, w] of [...this.#bySurface].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) entries[surface] = this.#slice(w, now);
    return {
      ...pooled,
      alert: pooled.alert || Object.values(entries).some((e) => e.alert),
      surfaces: { labeledBy: 'surface', entries },
      trackedRequests: this.#tracked.size,
      sampledRequests: this.#sampled,
      droppedRequests: this.#dropped,
      expiredRequests: this.#expired,
      lateEvents: this.#late,
    };
  }

  #surfaceWindow(surface: string): WindowCounts {
    let w = this.#bySurface.get(surface);
    if (w === undefined) {
      w = new WindowCounts(this.#config.windowMs);
      this.#bySurface.set(surface, w);
    }
    return w;
  }

  /** One slice's figures at `now` and its alert (module comment; {@link beyondBound}). */
  #slice(w: WindowCounts, now: number): SliceDrift {
    const top = w.figures(now, TOP);
    const { alertAbove, minImpressions } = this.#config;
    const enough = top.impressions >= minImpressions && top.impressions > 0;
    const alert = enough && (top.ratio !== undefined ? beyondBound(top, alertAbove) : top.meanPredictedCtr > 0);
    return { ...w.figures(now, ALL), top, alert };
  }

  /**
   * Forgets requests served more than joinWindowMs before `nowMs` (oldest first: stops at the first
   * young one), remembering their ids for another window so late events can be counted.
   */
  #forgetExpired(nowMs: number): void {
    const windowMs = this.#config.joinWindowMs;
    for (const [id, r] of this.#tracked) {
      if (nowMs - r.atMs <= windowMs) break;
      this.#tracked.delete(id);
      this.#expired++;
      this.#recentlyExpired.set(id, r.atMs);
    }
    for (const [id, atMs] of this.#recentlyExpired) {
      if (nowMs - atMs <= 2 * windowMs && this.#recentlyExpired.size <= this.#config.maxTracked) break;
      this.#recentlyExpired.delete(id);
    }
  }
}

/**
 * Whether the drift is beyond ±`bound` by more than two standard errors of its estimate: the
 * observed CTR of n impressions has a relative standard error of √((1−c)/(n·c)), so the ratio
 * (predicted / observed − 1 = r) has (1 + r) times that. A calibrated model at 1,000 top-slot
 * impressions and c = 0.27 has a 5% relative error: without this test it would cross +10% on a
 * noticeable share of scrapes, with the +3–7% of built-in slot and selection bias measured.
 */
function beyondBound(f: DriftFigures, bound: number): boolean {
  const r = f.ratio;
  if (r === undefined) return false;
  const c = f.observedCtr;
  const se = (1 + r) * Math.sqrt((1 - c) / (f.impressions * c));
  return Math.abs(r) - bound > 2 * se;
}
