/**
 * Online-evaluation metrics: what one simulated user did with one feed ({@link FeedOutcome}), and
 * the per-arm summary over many requests with 95% percentile-bootstrap intervals, resampling whole
 * requests (so ratio metrics such as CTR keep their within-request correlation). Every arm is
 * resampled with the same request indices, so differences between arms are paired. Pure.
 */
import type { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { Catalog } from '../../offline/world/catalog.js';
import type { SimEvent } from '../../offline/world/behaviour.js';

/** A watch of at least this share of the video's duration counts as a completion. */
const COMPLETION_SHARE = 0.9;

/** What one user did with one feed. */
export interface FeedOutcome {
  /** Items in the feed (the answer's length). */
  readonly items: number;
  /** Slots the user saw before leaving. */
  readonly impressions: number;
  readonly clicks: number;
  /** Seconds watched, summed over the feed's watches. */
  readonly watchSeconds: number;
  /** Clicks watched to ≥ {@link COMPLETION_SHARE} of the video's duration. */
  readonly completions: number;
  /** Durations of the clicked videos, summed, s (explains completion: long videos are rarely finished). */
  readonly clickedDurationS: number;
  readonly likes: number;
  /** Slot positions seen (0-based, each once) and clicked. */
  readonly slotsSeen: readonly number[];
  readonly slotsClicked: readonly number[];
  /** Items per source name (RETRIEVAL, TRENDING, EXPLORATION, FALLBACK; LOGGING / POPULAR / RANDOM for local arms). */
  readonly sources: Readonly<Record<string, number>>;
}

/** Summarises a session's events; `sources` are the feed items' source names, one per item. */
export function feedOutcome(catalog: Catalog, feedLength: number, sources: readonly string[], events: readonly SimEvent[]): FeedOutcome {
  let impressions = 0;
  let clicks = 0;
  let watchSeconds = 0;
  let completions = 0;
  let clickedDurationS = 0;
  let likes = 0;
  const slotsSeen: number[] = [];
  const slotsClicked: number[] = [];
  for (const e of events) {
    switch (e.type) {
      case EventType.IMPRESSION:
        impressions++;
        slotsSeen.push(e.position);
        break;
      case EventType.CLICK:
        clicks++;
        slotsClicked.push(e.position);
        clickedDurationS += catalog.durationS[e.videoId] ?? 0;
        break;
      case EventType.WATCH: {
        watchSeconds += e.watchSeconds;
        const duration = catalog.durationS[e.videoId] ?? Infinity;
        if (e.watchSeconds >= COMPLETION_SHARE * duration) completions++;
        break;
      }
      case EventType.LIKE:
        likes++;
        break;
      case EventType.SKIP:
        break;
    }
  }
  const bySource: Record<string, number> = {};
  for (const s of sources) bySource[s] = (bySource[s] ?? 0) + 1;
  return { items: feedLength, impressions, clicks, watchSeconds, completions, clickedDurationS, likes, slotsSeen, slotsClicked, sources: bySource };
}

/** A point estimate with its 95% interval. */
export interface Estimate {
  readonly value: number;
  readonly lo: number;
  readonly hi: number;
}

/** Headline metrics of one arm, each a ratio of sums over requests. */
export interface ArmMetrics {
  /** Clicks / impressions. */
  readonly ctr: Estimate;
  /** Seconds watched per request. */
  readonly watchSecondsPerRequest: Estimate;
  /** Completions / clicks. */
  readonly completionShare: Estimate;
  /** Mean duration of the clicked videos, s. */
  readonly clickedDurationS: Estimate;
  readonly likesPerRequest: Estimate;
  readonly clicksPerRequest: Estimate;
  /** Slots seen per request (session depth; the user leaves 6% a slot, more after a skip). */
  readonly impressionsPerRequest: Estimate;
}

/** The metric names of {@link ArmMetrics}, in table order. */
export const ARM_METRICS = ['watchSecondsPerRequest', 'ctr', 'completionShare', 'clickedDurationS', 'likesPerRequest', 'clicksPerRequest', 'impressionsPerRequest'] as const;
export type ArmMetricName = (typeof ARM_METRICS)[number];

/** One arm's summary. */
export interface ArmSummary {
  readonly requests: number;
  readonly metrics: ArmMetrics;
  /** CTR per slot 0..k-1 (clicks / impressions at that slot; NaN-free: 0 when unseen). */
  readonly ctrBySlot: readonly Estimate[];
  /** Impressions per slot 0..k-1 (how many users got that far). */
  readonly impressionsBySlot: readonly number[];
  /** Share of the answers' items per source. */
  readonly sourceShare: Readonly<Record<string, number>>;
  /** Mean items per answer. */
  readonly itemsPerAnswer: number;
}

/** Per-request numerators and denominators of one ratio metric. */
interface RatioSeries {
  readonly num: Float64Array;
  readonly den: Float64Array;
}

function ratioOf(s: RatioSeries, idx: Int32Array | undefined): number {
  let a = 0;
  let b = 0;
  const n = idx === undefined ? s.num.length : idx.length;
  for (let i = 0; i < n; i++) {
    const j = idx === undefined ? i : (idx[i] as number);
    a += s.num[j] ?? 0;
    b += s.den[j] ?? 0;
  }
  return b > 0 ? a / b : 0;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[at] ?? 0;
}

/**
 * Percentile bootstrap over requests: `series` are ratio metrics over the same n requests, `pairs`
 * are [a, b] indices into `series` whose difference (a − b) also gets an interval. One set of
 * resampled request indices serves every series, so the differences are paired.
 */
function bootstrap(series: readonly RatioSeries[], pairs: readonly (readonly [number, number])[], resamples: number, rng: SeededRng): { series: Estimate[]; pairs: Estimate[] } {
  const n = series[0]?.num.length ?? 0;
  const draws = series.map(() => new Float64Array(resamples));
  const idx = new Int32Array(n);
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < n; i++) idx[i] = rng.int(n);
    series.forEach((s, k) => ((draws[k] as Float64Array)[b] = ratioOf(s, idx)));
  }
  const estimate = (point: number, values: Float64Array): Estimate => {
    const sorted = Float64Array.from(values).sort();
    return { value: point, lo: quantile(sorted, 0.025), hi: quantile(sorted, 0.975) };
  };
  const points = series.map((s) => ratioOf(s, undefined));
  return {
    series: series.map((_, k) => estimate(points[k] ?? 0, draws[k] as Float64Array)),
    pairs: pairs.map(([a, c]) => {
      const da = draws[a] as Float64Array;
      const dc = draws[c] as Float64Array;
      return estimate((points[a] ?? 0) - (points[c] ?? 0), da.map((v, b) => v - (dc[b] ?? 0)));
    }),
  };
}

function seriesOf(outcomes: readonly FeedOutcome[], metric: ArmMetricName): RatioSeries {
  const n = outcomes.length;
  const num = new Float64Array(n);
  const den = new Float64Array(n);
  outcomes.forEach((o, i) => {
    switch (metric) {
      case 'ctr':
        num[i] = o.clicks;
        den[i] = o.impressions;
        break;
      case 'watchSecondsPerRequest':
        num[i] = o.watchSeconds;
        den[i] = 1;
        break;
      case 'completionShare':
        num[i] = o.completions;
        den[i] = o.clicks;
        break;
      case 'clickedDurationS':
        num[i] = o.clickedDurationS;
        den[i] = o.clicks;
        break;
      case 'likesPerRequest':
        num[i] = o.likes;
        den[i] = 1;
        break;
      case 'clicksPerRequest':
        num[i] = o.clicks;
        den[i] = 1;
        break;
      case 'impressionsPerRequest':
        num[i] = o.impressions;
        den[i] = 1;
        break;
    }
  });
  return { num, den };
}

function slotSeries(outcomes: readonly FeedOutcome[], slot: number): RatioSeries {
  const num = new Float64Array(outcomes.length);
  const den = new Float64Array(outcomes.length);
  outcomes.forEach((o, i) => {
    num[i] = o.slotsClicked.filter((p) => p === slot).length;
    den[i] = o.slotsSeen.includes(slot) ? 1 : 0;
  });
  return { num, den };
}

/** A paired difference between two arms' metric (a − b). */
export interface ArmDifference {
  readonly a: string;
  readonly b: string;
  readonly metric: ArmMetricName;
  readonly diff: Estimate;
}

/** Options of {@link summariseArms}. */
export interface SummaryOptions {
  /** Slots per feed (CTR by slot covers 0..k-1). */
  readonly k: number;
  /** Bootstrap resamples. Default 1000. */
  readonly resamples?: number;
  /** Pairs [a, b] of arm names whose differences (a − b) get intervals, for every metric. */
  readonly compare?: readonly (readonly [string, string])[];
}

/**
 * Summarises arms measured on the same requests (`arms[name][i]` is request i's outcome in that
 * arm; every arm must have the same length). Intervals: 95% percentile bootstrap over requests.
 */
export function summariseArms(
  arms: Readonly<Record<string, readonly FeedOutcome[]>>,
  rng: SeededRng,
  o: SummaryOptions,
): { arms: Record<string, ArmSummary>; differences: ArmDifference[] } {
  const names = Object.keys(arms);
  const n = arms[names[0] ?? '']?.length ?? 0;
  for (const a of names) if ((arms[a]?.length ?? 0) !== n) throw new TypeError(`arm ${a} has ${arms[a]?.length ?? 0} outcomes, expected ${n} (arms must be paired)`);
  const resamples = o.resamples ?? 1000;
  const series: RatioSeries[] = [];
  const at = new Map<string, number>();
  for (const a of names) {
    const outs = arms[a] ?? [];
    for (const m of ARM_METRICS) {
      at.set(`${a}/${m}`, series.length);
      series.push(seriesOf(outs, m));
    }
    for (let s = 0; s < o.k; s++) {
      at.set(`${a}/slot${s}`, series.length);
      series.push(slotSeries(outs, s));
    }
  }
  const pairList: (readonly [number, number])[] = [];
  const pairMeta: { a: string; b: string; metric: ArmMetricName }[] = [];
  for (const [a, b] of o.compare ?? []) {
    if (!names.includes(a) || !names.includes(b)) throw new TypeError(`compare: unknown arm in [${a}, ${b}]`);
    for (const m of ARM_METRICS) {
      pairList.push([at.get(`${a}/${m}`) as number, at.get(`${b}/${m}`) as number]);
      pairMeta.push({ a, b, metric: m });
    }
  }
  const boot = bootstrap(series, pairList, resamples, rng);
  const est = (key: string): Estimate => boot.series[at.get(key) as number] as Estimate;
  const out: Record<string, ArmSummary> = {};
  for (const a of names) {
    const outs = arms[a] ?? [];
    const metrics = Object.fromEntries(ARM_METRICS.map((m) => [m, est(`${a}/${m}`)])) as unknown as ArmMetrics;
    const sources: Record<string, number> = {};
    let items = 0;
    for (const r of outs) {
      items += r.items;
      for (const [s, c] of Object.entries(r.sources)) sources[s] = (sources[s] ?? 0) + c;
    }
    const impressionsBySlot = Array.from({ length: o.k }, () => 0);
    for (const r of outs) for (const p of r.slotsSeen) if (p < o.k) impressionsBySlot[p] = (impressionsBySlot[p] ?? 0) + 1;
    out[a] = {
      requests: outs.length,
      metrics,
      ctrBySlot: Array.from({ length: o.k }, (_, s) => est(`${a}/slot${s}`)),
      impressionsBySlot,
      sourceShare: Object.fromEntries(Object.entries(sources).map(([s, c]) => [s, items > 0 ? c / items : 0])),
      itemsPerAnswer: outs.length > 0 ? items / outs.length : 0,
    };
  }
  return { arms: out, differences: pairMeta.map((p, i) => ({ ...p, diff: boot.pairs[i] as Estimate })) };
}
