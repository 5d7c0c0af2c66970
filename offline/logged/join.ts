/**
 * The training join (DESIGN §5: "training joins them with labels after a wait window"): logged
 * served rows + label events → labelled ranker rows. Pure: no clock, no NATS.
 *
 * Rules (docs/offline.md "Training on logged rows"):
 * - **Watermark** = min(nowMs, eventsThroughMs): the events are known complete up to it
 *   (eventsThroughMs defaults to the newest event's storage time). Events stored after it are
 *   ignored, so a join "as of" a time is reproducible.
 * - **Wait window**: a request's rows are labelled once servedAtMs + waitMs ≤ watermark; until then
 *   they are HELD BACK (not negatives: their clicks may still come) and counted.
 * - **Label events** count when stored at or before servedAtMs + waitMs: a row's label is final
 *   when its window closes, the same in every later join. Later ones are counted as late.
 * - **Click** = a CLICK with the row's request id and video. **Watch** = the largest WATCH
 *   progress (seconds) with the row's request id and video; the trainer's target is log1p of it,
 *   as in the world pipeline (offline/pipeline/fit.ts).
 * - **Events without a request id** (older clients) fall back to the same (user, video): they label
 *   the most recent logged request of that user that served the video at or before the event's
 *   storage time and within waitMs of it. An event WITH a request id that was not logged (the
 *   request was not sampled) labels nothing: its id says which answer it belongs to.
 * - **Duplicates**: a request id logged more than once (a retried Recommend sampled twice) counts
 *   once: the latest message (by servedAtMs, then stream sequence) is kept, since the answer the
 *   client showed is the one it received last; the others are counted.
 * - **Feature spec**: rows logged under another featureSpecHash or width mean something else;
 *   they are refused (FAILED_PRECONDITION naming both hashes) unless `skipOtherSpecs`, which drops
 *   and counts them.
 * - **Seen or not**: a served item the user never scrolled to is no negative. With
 *   `requireImpression` (default 'auto': on when any logged row got an IMPRESSION event, i.e. the
 *   clients log impressions), a row counts only if an IMPRESSION (or a CLICK or WATCH, which imply
 *   one) of its request and video arrived in its window; the others are dropped and counted as
 *   unseen. Off, every served row is an example (clients that log no impressions).
 * - **Position**: the served row's position column holds the inference default; the joined row
 *   gets the slot the item was shown at, written by the one feature definition (writeRankerRow).
 */
import { EventType, UNKNOWN_CONTEXT } from '../../core/events.js';
import { POSITION_FEATURE_INDEX, rankerRowWidth, writeRankerRow } from '../../core/features/ranker-row.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { newUserProfile } from '../../core/features/user.js';
import { failedPrecondition } from '../../core/status.js';
import type { LabelEvent } from './read-events.js';
import type { ServedRequest } from './served.js';

/** Default wait window, ms: 30 min, the world pipeline's CLICK_WINDOW_MS. */
export const DEFAULT_WAIT_MS = 30 * 60_000;

/** Options of {@link joinLabels}. */
export interface JoinOptions {
  /** Spec of the model being retrained: its hash and row width are what the rows must have. */
  readonly spec: FeatureSpec;
  /** specHash(spec), as the serving manifest records it. */
  readonly featureSpecHash: string;
  /** Wait window, ms (≥ 0). Default {@link DEFAULT_WAIT_MS}. */
  readonly waitMs?: number;
  /** Wall time of the join, epoch ms. */
  readonly nowMs: number;
  /** Events are complete up to this wall time (epoch ms). Default: the newest event's storedAtMs (−∞ with no event). */
  readonly eventsThroughMs?: number;
  /** Drop (and count) rows of another feature spec instead of refusing. Default false. */
  readonly skipOtherSpecs?: boolean;
  /**
   * Keep only rows the user saw (an IMPRESSION, CLICK or WATCH of the row's request and video in its
   * window). 'auto' (default): on when at least one logged row got an IMPRESSION event.
   */
  readonly requireImpression?: boolean | 'auto';
}

/** Labelled rows, sorted by (servedAtMs, stream sequence, slot). */
export interface JoinedRows {
  readonly width: number;
  readonly count: number;
  /** [count, width] row-major; the position column holds the logged slot. */
  readonly features: Float32Array;
  /** 1 when clicked. */
  readonly click: Float32Array;
  /** Largest WATCH progress, seconds (0 when none). */
  readonly watchS: Float32Array;
  readonly servedAtMs: Float64Array;
  readonly slot: Int32Array;
  readonly videoId: Float64Array;
  readonly userId: Float64Array;
  /** Index into `requestIds` of each row. */
  readonly request: Int32Array;
  readonly requestIds: readonly string[];
}

/** Rows of another feature spec, by (hash, width). */
export interface OtherSpecRows {
  readonly featureSpecHash: string;
  readonly width: number;
  readonly requests: number;
  readonly rows: number;
  readonly modelVersions: readonly string[];
}

/** What the join did with every row and event. */
export interface JoinCounts {
  /** min(nowMs, eventsThroughMs), epoch ms. */
  readonly watermarkMs: number;
  readonly waitMs: number;
  /** Logged rows handed in (every request, every spec). */
  readonly rowsIn: number;
  readonly joined: number;
  readonly joinedRequests: number;
  /** Rows whose wait window had not closed (not labelled, not trained on). */
  readonly heldBack: number;
  /** Whether rows needed an impression (the resolved `requireImpression`). */
  readonly requireImpression: boolean;
  /** Closed-window rows dropped because the user never saw them (only with requireImpression). */
  readonly unseenRows: number;
  /** IMPRESSION events matched to a logged row. */
  readonly impressions: number;
  readonly heldBackRequests: number;
  /** Requests (and their rows) dropped because their request id was logged again later. */
  readonly duplicateRequests: number;
  readonly duplicateRows: number;
  /** Rows of another feature spec (only when skipOtherSpecs). */
  readonly otherSpecRows: number;
  readonly otherSpecs: readonly OtherSpecRows[];
  /** Joined rows clicked, and watched (progress > 0). */
  readonly clicked: number;
  readonly watched: number;
  /** Label events used through their request id, and through the (user, video) fallback. */
  readonly eventsByRequestId: number;
  readonly eventsByFallback: number;
  /** Label events stored after their row's window closed (not used). */
  readonly lateEvents: number;
  /** Label events stored after the watermark (ignored). */
  readonly eventsAfterWatermark: number;
  /** Label events that match no logged row (their request was not sampled, or another video). */
  readonly unmatchedEvents: number;
  /** Earliest and latest servedAtMs of the joined rows (NaN when none). */
  readonly firstServedAtMs: number;
  readonly lastServedAtMs: number;
  /** Model versions that served the joined rows, sorted. */
  readonly modelVersions: readonly string[];
}

/** The join's result. */
export interface JoinResult {
  readonly rows: JoinedRows;
  readonly counts: JoinCounts;
}

/**
 * Value of the position column for `slot`, computed by writeRankerRow itself (the column depends on
 * the position alone), so the joined rows follow the one feature definition.
 */
export function positionColumnValue(slot: number, spec: FeatureSpec): number {
  const row = new Float32Array(rankerRowWidth(spec));
  const item: ItemFeatures = { videoId: 0, creatorId: 0, category: -1, durationS: 0, uploadTsMs: 0, impressions: 0, clicks: 0, watchRatioSum: 0, watches: 0 };
  writeRankerRow(row, 0, newUserProfile(0, spec), item, 0, UNKNOWN_CONTEXT, slot, 0, spec);
  return row[POSITION_FEATURE_INDEX]!;
}

/** Mutable label of one (request, video). */
interface Label {
  click: boolean;
  watchS: number;
  /** An IMPRESSION, CLICK or WATCH arrived: the user saw the item. */
  seen: boolean;
}

const key = (a: string | number, b: number): string => `${a}\u0000${b}`;

/**
 * Which events can label a row of `requests` under the join's rules: those with a logged request id,
 * and those without one whose (user, video) a logged request served. Everything else labels nothing
 * whatever the join does, so the event reader drops it at once: with the feature log sampling 1% of
 * requests, that keeps ~1% of the stream in memory instead of all of it.
 */
export function loggedEventFilter(requests: readonly ServedRequest[]): (e: { readonly requestId: string; readonly userId: number; readonly videoId: number }) => boolean {
  const ids = new Set<string>();
  const pairs = new Set<string>();
  for (const r of requests) {
    if (r.requestId !== '') ids.add(r.requestId);
    for (const v of r.videoIds) pairs.add(key(r.userId, v));
  }
  return (e) => (e.requestId !== '' ? ids.has(e.requestId) : pairs.has(key(e.userId, e.videoId)));
}

/** Joins logged rows with label events; see the module comment for every rule. */
export function joinLabels(requests: readonly ServedRequest[], events: readonly LabelEvent[], o: JoinOptions): JoinResult {
  const waitMs = o.waitMs ?? DEFAULT_WAIT_MS;
  if (!(Number.isFinite(waitMs) && waitMs >= 0)) throw new TypeError(`option waitMs must be a number of ms >= 0, got ${String(waitMs)}`);
  if (!Number.isFinite(o.nowMs)) throw new TypeError(`option nowMs must be a time (epoch ms), got ${String(o.nowMs)}`);
  const width = rankerRowWidth(o.spec);
  let newestEvent = Number.NEGATIVE_INFINITY;
  for (const e of events) newestEvent = Math.max(newestEvent, e.storedAtMs);
  const watermarkMs = Math.min(o.nowMs, o.eventsThroughMs ?? newestEvent);

  // Feature spec: refuse (or drop) rows whose columns mean something else.
  const others = new Map<string, { featureSpecHash: string; width: number; requests: number; rows: number; versions: Set<string> }>();
  const mine: ServedRequest[] = [];
  let rowsIn = 0;
  for (const r of requests) {
    rowsIn += r.videoIds.length;
    if (r.featureSpecHash === o.featureSpecHash && r.width === width) {
      mine.push(r);
      continue;
    }
    const k = `${r.featureSpecHash}/${r.width}`;
    const m = others.get(k) ?? { featureSpecHash: r.featureSpecHash, width: r.width, requests: 0, rows: 0, versions: new Set<string>() };
    m.requests++;
    m.rows += r.videoIds.length;
    if (r.modelVersion !== '') m.versions.add(r.modelVersion);
    others.set(k, m);
  }
  const otherSpecs: OtherSpecRows[] = [...others.values()]
    .sort((a, b) => b.rows - a.rows)
    .map((m) => ({ featureSpecHash: m.featureSpecHash, width: m.width, requests: m.requests, rows: m.rows, modelVersions: [...m.versions].sort() }));
  if (otherSpecs.length > 0 && o.skipOtherSpecs !== true) {
    const list = otherSpecs.map((m) => `${m.rows} rows (${m.requests} requests, model ${m.modelVersions.join(', ') || '?'}) with featureSpecHash ${m.featureSpecHash} width ${m.width}`).join('; ');
    throw failedPrecondition(
      `the feature log holds ${list}, but the model being retrained has featureSpecHash ${o.featureSpecHash} width ${width}: their columns mean something else. ` +
        `Read from after the switch to this spec (--since) or drop them (--skip-other-specs)`,
    );
  }

  // Duplicates: keep the latest message of each request id.
  const latest = new Map<string, ServedRequest>();
  const anonymous: ServedRequest[] = [];
  let duplicateRequests = 0;
  let duplicateRows = 0;
  for (const r of mine) {
    if (r.requestId === '') {
      anonymous.push(r);
      continue;
    }
    const prev = latest.get(r.requestId);
    if (prev === undefined) {
      latest.set(r.requestId, r);
      continue;
    }
    const [keep, drop] = r.servedAtMs > prev.servedAtMs || (r.servedAtMs === prev.servedAtMs && r.seq > prev.seq) ? [r, prev] : [prev, r];
    latest.set(r.requestId, keep);
    duplicateRequests++;
    duplicateRows += drop.videoIds.length;
  }
  const kept = [...latest.values(), ...anonymous].sort((a, b) => a.servedAtMs - b.servedAtMs || a.seq - b.seq);

  // Labels per (request, video); the fallback index: (user, video) → requests, by servedAtMs.
  const labels = new Map<ServedRequest, Map<number, Label>>();
  const byRequestId = new Map<string, ServedRequest>();
  const byUserVideo = new Map<string, ServedRequest[]>();
  for (const r of kept) {
    const m = new Map<number, Label>();
    for (const v of r.videoIds) m.set(v, { click: false, watchS: 0, seen: false });
    labels.set(r, m);
    if (r.requestId !== '') byRequestId.set(r.requestId, r);
    for (const v of r.videoIds) {
      const k = key(r.userId, v);
      const list = byUserVideo.get(k);
      if (list === undefined) byUserVideo.set(k, [r]);
      else list.push(r);
    }
  }
  let eventsByRequestId = 0;
  let eventsByFallback = 0;
  let lateEvents = 0;
  let eventsAfterWatermark = 0;
  let unmatchedEvents = 0;
  let impressions = 0;
  for (const le of events) {
    const e = le.event;
    if (e.type !== EventType.CLICK && e.type !== EventType.WATCH && e.type !== EventType.IMPRESSION) continue;
    if (le.storedAtMs > watermarkMs) {
      eventsAfterWatermark++;
      continue;
    }
    let target: ServedRequest | undefined;
    let fallback = false;
    if (e.requestId !== '') {
      target = byRequestId.get(e.requestId);
      if (target !== undefined && !labels.get(target)!.has(e.videoId)) target = undefined;
    } else {
      // The most recent logged request of this user that served this video before the event.
      const list = byUserVideo.get(key(e.userId, e.videoId)) ?? [];
      for (let i = list.length - 1; i >= 0; i--) {
        const r = list[i]!;
        if (r.servedAtMs <= le.storedAtMs) {
          if (le.storedAtMs - r.servedAtMs <= waitMs) target = r;
          break;
        }
      }
      fallback = true;
    }
    if (target === undefined) {
      if (e.type !== EventType.IMPRESSION) unmatchedEvents++;
      continue;
    }
    if (le.storedAtMs > target.servedAtMs + waitMs) {
      if (e.type !== EventType.IMPRESSION) lateEvents++;
      continue;
    }
    const label = labels.get(target)!.get(e.videoId)!;
    label.seen = true;
    if (e.type === EventType.IMPRESSION) {
      impressions++;
      continue;
    }
    if (e.type === EventType.CLICK) label.click = true;
    else label.watchS = Math.max(label.watchS, Number.isFinite(e.watchSeconds) ? e.watchSeconds : 0);
    if (fallback) eventsByFallback++;
    else eventsByRequestId++;
  }

  // Rows of closed windows, in time order, with the logged slot in the position column; with
  // requireImpression only the seen ones.
  const requireImpression = o.requireImpression === undefined || o.requireImpression === 'auto' ? impressions > 0 : o.requireImpression;
  const closed = kept.filter((r) => r.servedAtMs + waitMs <= watermarkMs);
  let heldBack = 0;
  for (const r of kept) if (!(r.servedAtMs + waitMs <= watermarkMs)) heldBack += r.videoIds.length;
  const keepRow = (r: ServedRequest, i: number): boolean => !requireImpression || labels.get(r)!.get(r.videoIds[i]!)!.seen;
  let unseenRows = 0;
  let count = 0;
  for (const r of closed) {
    for (let i = 0; i < r.videoIds.length; i++) {
      if (keepRow(r, i)) count++;
      else unseenRows++;
    }
  }
  const features = new Float32Array(count * width);
  const click = new Float32Array(count);
  const watchS = new Float32Array(count);
  const servedAtMs = new Float64Array(count);
  const slot = new Int32Array(count);
  const videoId = new Float64Array(count);
  const userId = new Float64Array(count);
  const request = new Int32Array(count);
  const requestIds: string[] = [];
  const positionOf = new Map<number, number>();
  const versions = new Set<string>();
  let clicked = 0;
  let watched = 0;
  let at = 0;
  let joinedRequests = 0;
  for (const r of closed) {
    const m = labels.get(r)!;
    const order = r.slots.map((_, i) => i).filter((i) => keepRow(r, i)).sort((a, b) => r.slots[a]! - r.slots[b]!);
    if (order.length === 0) continue;
    joinedRequests++;
    const ri = requestIds.length;
    requestIds.push(r.requestId);
    if (r.modelVersion !== '') versions.add(r.modelVersion);
    for (const i of order) {
      const s = r.slots[i]!;
      const v = r.videoIds[i]!;
      features.set(r.rows.subarray(i * width, (i + 1) * width), at * width);
      let pos = positionOf.get(s);
      if (pos === undefined) positionOf.set(s, (pos = positionColumnValue(s, o.spec)));
      features[at * width + POSITION_FEATURE_INDEX] = pos;
      const label = m.get(v)!;
      click[at] = label.click ? 1 : 0;
      watchS[at] = label.watchS;
      if (label.click) clicked++;
      if (label.watchS > 0) watched++;
      servedAtMs[at] = r.servedAtMs;
      slot[at] = s;
      videoId[at] = v;
      userId[at] = r.userId;
      request[at] = ri;
      at++;
    }
  }
  return {
    rows: { width, count, features, click, watchS, servedAtMs, slot, videoId, userId, request, requestIds },
    counts: {
      watermarkMs,
      waitMs,
      rowsIn,
      joined: count,
      joinedRequests,
      heldBack,
      requireImpression,
      unseenRows,
      impressions,
      heldBackRequests: kept.length - closed.length,
      duplicateRequests,
      duplicateRows,
      otherSpecRows: otherSpecs.reduce((n, m) => n + m.rows, 0),
      otherSpecs,
      clicked,
      watched,
      eventsByRequestId,
      eventsByFallback,
      lateEvents,
      eventsAfterWatermark,
      unmatchedEvents,
      firstServedAtMs: count > 0 ? servedAtMs[0]! : Number.NaN,
      lastServedAtMs: count > 0 ? servedAtMs[count - 1]! : Number.NaN,
      modelVersions: [...versions].sort(),
    },
  };
}
