/**
 * The interaction event: one schema for the offline logs (synthetic world and KuaiRand), the public
 * `LogEvents` RPC, and the JetStream event stream. Mirrors `upnext.v1.InteractionEvent` in
 * protos/upnext/v1/recommender.proto.
 */

export enum EventType {
  IMPRESSION = 1,
  CLICK = 2,
  /** Watch progress: `watchSeconds` holds the seconds watched so far for this (user, video). */
  WATCH = 3,
  LIKE = 4,
  SKIP = 5,
}

/** Device classes; index 0 is "unknown" so a missing value is a valid feature. */
export const DEVICES = ['unknown', 'ios', 'android', 'web', 'tv'] as const;
export type Device = (typeof DEVICES)[number];

/** Request context: where and when the user is. */
export interface RequestContext {
  /** One of {@link DEVICES}; anything else is treated as "unknown". */
  readonly device: string;
  /** ISO 3166 alpha-2 code, e.g. "BR"; empty when unknown. */
  readonly country: string;
  /** Local hour of day, 0..23. */
  readonly localHour: number;
}

export interface InteractionEvent {
  /** Unique per event; JetStream de-duplicates on it (Nats-Msg-Id). */
  readonly eventId: string;
  readonly userId: number;
  readonly videoId: number;
  readonly type: EventType;
  /** Event time, epoch milliseconds. */
  readonly tsMs: number;
  /** Slot the video was shown at (0 = top); -1 when unknown. */
  readonly position: number;
  /** For WATCH: seconds watched; 0 otherwise. */
  readonly watchSeconds: number;
  readonly context: RequestContext;
  /** Product surface, e.g. "home" or "up_next". */
  readonly surface: string;
  /** The Recommend request that produced the impression, when known. */
  readonly requestId: string;
}

export const UNKNOWN_CONTEXT: RequestContext = { device: 'unknown', country: '', localHour: 12 };
