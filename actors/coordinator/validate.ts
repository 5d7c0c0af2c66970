/**
 * Validation of the public RPC's requests: raw objects as @grpc/proto-loader decodes them (64-bit
 * integers as decimal strings, `longs: String`) → typed requests, or INVALID_ARGUMENT naming the
 * field. Pure: no I/O. The limits are documented once, in {@link Limits}, and mirrored in the
 * comment at the top of protos/upnext/v1/recommender.proto.
 */
import { randomUUID } from 'node:crypto';
import type { InteractionEvent, RequestContext } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import { invalidArgument } from '../../core/status.js';

/** Every bound the public RPC enforces. */
export const Limits = Object.freeze({
  /** Items per Recommend call: k in 1..maxK. */
  maxK: 1000,
  /** Ids in `exclude_video_ids`. */
  maxExcludeIds: 1000,
  /** Largest id: ids travel as JS numbers inside upnext, so 2^53-1. */
  maxId: Number.MAX_SAFE_INTEGER,
  /** `context.local_hour` is 0..maxLocalHour. */
  maxLocalHour: 23,
  /** Characters in `surface`. */
  maxSurfaceChars: 64,
  /** Characters in `context.device` and `context.country` (bounds what reaches the features). */
  maxContextFieldChars: 16,
  /** Characters in `request_id` and `event_id`. */
  maxIdStringChars: 128,
  /**
   * How far `ts_ms` may lie ahead of the server's clock, ms (1 day: clock skew and late batching
   * fit). Further is refused: one event dated 2099 would otherwise become "now" for every
   * event-time computation downstream (the popular lists' clock, decays).
   */
  maxEventFutureMs: 86_400_000,
  /** Events per LogEvents call. */
  maxEventsPerCall: 1000,
  /** Largest `watch_seconds` of one event: one day, in seconds. */
  maxWatchSeconds: 86_400,
  /** Largest request message, in bytes (the server's max receive message length). */
  maxMessageBytes: 4 * 1024 * 1024,
});

/** What proto-loader hands us for a uint64/int64 with `longs: String` (numbers and bigints tolerated). */
export type RawLong = string | number | bigint | { toString(): string };

/** `upnext.v1.Context` as decoded. */
export interface RawContext {
  device?: string;
  country?: string;
  localHour?: number;
}

/** `upnext.v1.RecommendRequest` as decoded by proto-loader (camelCase, `longs: String`). */
export interface RawRecommendRequest {
  userId?: RawLong;
  k?: number;
  context?: RawContext | null;
  surface?: string;
  debug?: boolean;
  excludeVideoIds?: readonly RawLong[];
  requestId?: string;
}

/** `upnext.v1.InteractionEvent` as decoded. */
export interface RawInteractionEvent {
  eventId?: string;
  userId?: RawLong;
  videoId?: RawLong;
  type?: number | string;
  tsMs?: RawLong;
  position?: number;
  watchSeconds?: number;
  context?: RawContext | null;
  surface?: string;
  requestId?: string;
}

export interface RawLogEventsRequest {
  events?: readonly RawInteractionEvent[];
}

/** A validated Recommend request. */
export interface RecommendQuery {
  readonly userId: number;
  /** Items wanted, 1..{@link Limits.maxK}. */
  readonly k: number;
  readonly context: RequestContext;
  /** Product surface; "" means default. */
  readonly surface: string;
  readonly debug: boolean;
  readonly excludeVideoIds: readonly number[];
  /** The caller's request id, or a generated UUID when it sent none. */
  readonly requestId: string;
}

const MAX_ID_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Parses a uint64 exactly: decimal strings are compared as BigInt before becoming a number, so an id
 * above 2^53-1 is rejected instead of silently rounded to a neighbour.
 */
export function parseId(field: string, value: RawLong | undefined): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw invalidArgument(field, `must be an integer in 0..2^53-1, got ${value}`);
    return value;
  }
  if (typeof value === 'bigint') {
    if (value < 0n || value > MAX_ID_BIG) throw invalidArgument(field, `must be in 0..2^53-1, got ${value}`);
    return Number(value);
  }
  const text = value.toString();
  if (!/^\d{1,20}$/.test(text)) throw invalidArgument(field, `must be a non-negative integer, got "${text.slice(0, 32)}"`);
  if (BigInt(text) > MAX_ID_BIG) throw invalidArgument(field, `must be at most 2^53-1, got ${text}`);
  return Number(text);
}

/** Parses an int64 timestamp (epoch ms) that must be ≥ 0 and ≤ 2^53-1. */
function parseTimestamp(field: string, value: RawLong | undefined): number {
  if (value === undefined || value === null) return 0;
  const text = value.toString();
  if (/^-\d+$/.test(text)) throw invalidArgument(field, `must be ≥ 0 (epoch ms), got ${text}`);
  return parseId(field, typeof value === 'object' ? text : value);
}

function boundedString(field: string, value: string | undefined, max: number): string {
  const s = value ?? '';
  if (typeof s !== 'string') throw invalidArgument(field, 'must be a string');
  if (s.length > max) throw invalidArgument(field, `must be at most ${max} characters, got ${s.length}`);
  return s;
}

/** Validates `context` (absent → unknown device, no country, hour 12), naming fields under `prefix`. */
export function validateContext(prefix: string, ctx: RawContext | null | undefined): RequestContext {
  if (!ctx) return { device: 'unknown', country: '', localHour: 12 };
  const device = boundedString(`${prefix}.device`, ctx.device, Limits.maxContextFieldChars);
  const country = boundedString(`${prefix}.country`, ctx.country, Limits.maxContextFieldChars);
  const hour = ctx.localHour ?? 0;
  if (!Number.isInteger(hour) || hour < 0 || hour > Limits.maxLocalHour) {
    throw invalidArgument(`${prefix}.local_hour`, `must be in 0..${Limits.maxLocalHour}, got ${hour}`);
  }
  return { device: device === '' ? 'unknown' : device.toLowerCase(), country: country.toUpperCase(), localHour: hour };
}

/** Validates a Recommend request; `makeRequestId` supplies the id when the caller sent none. */
export function validateRecommendRequest(raw: RawRecommendRequest, makeRequestId: () => string = randomUUID): RecommendQuery {
  const userId = parseId('user_id', raw.userId);
  const k = raw.k ?? 0;
  if (!Number.isInteger(k) || k < 1 || k > Limits.maxK) throw invalidArgument('k', `must be in 1..${Limits.maxK}, got ${k}`);
  const excludesRaw = raw.excludeVideoIds ?? [];
  if (excludesRaw.length > Limits.maxExcludeIds) {
    throw invalidArgument('exclude_video_ids', `at most ${Limits.maxExcludeIds} ids, got ${excludesRaw.length}`);
  }
  const excludeVideoIds = excludesRaw.map((id, i) => parseId(`exclude_video_ids[${i}]`, id));
  const surface = boundedString('surface', raw.surface, Limits.maxSurfaceChars);
  const requestId = boundedString('request_id', raw.requestId, Limits.maxIdStringChars);
  return {
    userId,
    k,
    context: validateContext('context', raw.context),
    surface,
    debug: raw.debug === true,
    excludeVideoIds,
    requestId: requestId === '' ? makeRequestId() : requestId,
  };
}

const EVENT_TYPE_BY_NAME: Readonly<Record<string, EventType>> = {
  IMPRESSION: EventType.IMPRESSION,
  CLICK: EventType.CLICK,
  WATCH: EventType.WATCH,
  LIKE: EventType.LIKE,
  SKIP: EventType.SKIP,
};

function parseEventType(field: string, value: number | string | undefined): EventType {
  const t = typeof value === 'string' ? EVENT_TYPE_BY_NAME[value] : value;
  if (t === undefined || !Number.isInteger(t) || t < EventType.IMPRESSION || t > EventType.SKIP) {
    throw invalidArgument(field, `must be one of IMPRESSION, CLICK, WATCH, LIKE, SKIP, got ${String(value)}`);
  }
  return t;
}

/**
 * Validates a LogEvents request. `nowMs` stamps events sent with ts_ms = 0 ("now"). Field names carry
 * the event's index, e.g. `events[3].watch_seconds`.
 */
export function validateLogEventsRequest(raw: RawLogEventsRequest, nowMs: number): InteractionEvent[] {
  const events = raw.events ?? [];
  if (events.length === 0) throw invalidArgument('events', 'must hold at least one event');
  if (events.length > Limits.maxEventsPerCall) {
    throw invalidArgument('events', `at most ${Limits.maxEventsPerCall} per call, got ${events.length}`);
  }
  return events.map((e, i) => {
    const at = `events[${i}]`;
    const eventId = boundedString(`${at}.event_id`, e.eventId, Limits.maxIdStringChars);
    if (eventId === '') throw invalidArgument(`${at}.event_id`, 'must be set (it de-duplicates retries)');
    const watchSeconds = e.watchSeconds ?? 0;
    if (!Number.isFinite(watchSeconds) || watchSeconds < 0 || watchSeconds > Limits.maxWatchSeconds) {
      throw invalidArgument(`${at}.watch_seconds`, `must be in 0..${Limits.maxWatchSeconds}, got ${watchSeconds}`);
    }
    const position = e.position ?? -1;
    if (!Number.isInteger(position) || position < -1) throw invalidArgument(`${at}.position`, `must be ≥ -1, got ${position}`);
    const tsMs = parseTimestamp(`${at}.ts_ms`, e.tsMs);
    if (tsMs > nowMs + Limits.maxEventFutureMs) {
      throw invalidArgument(`${at}.ts_ms`, `is ${tsMs - nowMs} ms ahead of the server's clock; at most ${Limits.maxEventFutureMs} (epoch ms, 0 = now)`);
    }
    return {
      eventId,
      userId: parseId(`${at}.user_id`, e.userId),
      videoId: parseId(`${at}.video_id`, e.videoId),
      type: parseEventType(`${at}.type`, e.type),
      tsMs: tsMs === 0 ? nowMs : tsMs,
      position,
      watchSeconds,
      context: validateContext(`${at}.context`, e.context),
      surface: boundedString(`${at}.surface`, e.surface, Limits.maxSurfaceChars),
      requestId: boundedString(`${at}.request_id`, e.requestId, Limits.maxIdStringChars),
    };
  });
}
