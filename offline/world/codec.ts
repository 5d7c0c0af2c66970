/**
 * NDJSON encoding of interaction events. The encoder writes keys in one fixed order so worlds are
 * reproducible byte for byte; the decoder is plain `JSON.parse` plus a shape check, so a file any
 * tool wrote (Python, jq) reads back as long as it is valid JSON with the same fields.
 */
import type { EventType, InteractionEvent } from '../../core/events.js';

/** JSON string literal; skips JSON.stringify for the common case of plain ASCII with no escapes. */
function quote(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/** A finite JSON number (NaN and ±Infinity are not JSON; they become 0 rather than `null`). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : '0';
}

/**
 * One event as a JSON line (without the trailing newline), keys in declaration order of
 * {@link InteractionEvent}: eventId, userId, videoId, type, tsMs, position, watchSeconds, context
 * (device, country, localHour), surface, requestId.
 */
export function encodeEvent(e: InteractionEvent): string {
  return (
    `{"eventId":${quote(e.eventId)},"userId":${num(e.userId)},"videoId":${num(e.videoId)},"type":${num(e.type)}` +
    `,"tsMs":${num(e.tsMs)},"position":${num(e.position)},"watchSeconds":${num(e.watchSeconds)}` +
    `,"context":{"device":${quote(e.context.device)},"country":${quote(e.context.country)},"localHour":${num(e.context.localHour)}}` +
    `,"surface":${quote(e.surface)},"requestId":${quote(e.requestId)}}`
  );
}

/** Raw parsed line before the shape check. */
interface EventJson {
  eventId?: unknown;
  userId?: unknown;
  videoId?: unknown;
  type?: unknown;
  tsMs?: unknown;
  position?: unknown;
  watchSeconds?: unknown;
  context?: { device?: unknown; country?: unknown; localHour?: unknown } | null;
  surface?: unknown;
  requestId?: unknown;
}

/**
 * Parses one event line. Throws a TypeError naming the field when a required field (eventId,
 * userId, videoId, type, tsMs) is missing or mistyped; optional fields default (position -1,
 * watchSeconds 0, context unknown, surface "home", requestId "").
 */
export function decodeEvent(line: string): InteractionEvent {
  const o = JSON.parse(line) as EventJson;
  if (typeof o.eventId !== 'string') throw new TypeError('event field eventId must be a string');
  if (typeof o.userId !== 'number') throw new TypeError('event field userId must be a number');
  if (typeof o.videoId !== 'number') throw new TypeError('event field videoId must be a number');
  if (typeof o.type !== 'number') throw new TypeError('event field type must be a number');
  if (typeof o.tsMs !== 'number') throw new TypeError('event field tsMs must be a number');
  const ctx = o.context;
  if (
    ctx !== undefined &&
    ctx !== null &&
    typeof ctx.device === 'string' &&
    typeof ctx.country === 'string' &&
    typeof ctx.localHour === 'number' &&
    typeof o.position === 'number' &&
    typeof o.watchSeconds === 'number' &&
    typeof o.surface === 'string' &&
    typeof o.requestId === 'string'
  ) {
    // Fast path (every line our writers produce): the parsed object already has the exact shape.
    return o as unknown as InteractionEvent;
  }
  const c = ctx ?? {};
  return {
    eventId: o.eventId,
    userId: o.userId,
    videoId: o.videoId,
    type: o.type as EventType,
    tsMs: o.tsMs,
    position: typeof o.position === 'number' ? o.position : -1,
    watchSeconds: typeof o.watchSeconds === 'number' ? o.watchSeconds : 0,
    context: {
      device: typeof c.device === 'string' ? c.device : 'unknown',
      country: typeof c.country === 'string' ? c.country : '',
      localHour: typeof c.localHour === 'number' ? c.localHour : 12,
    },
    surface: typeof o.surface === 'string' ? o.surface : 'home',
    requestId: typeof o.requestId === 'string' ? o.requestId : '',
  };
}
