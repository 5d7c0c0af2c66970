/**
 * The cluster's JetStream event stream (DESIGN §3): one stream per cluster holding every
 * interaction event, one subject per user partition (`Subjects.events`), de-duplicated by event id.
 * The coordinator appends to it (actors/coordinator/events.ts); user partitions read their subject
 * back (feed.ts). Whoever starts first creates it.
 *
 * Retention: events older than `maxAgeMs` (default {@link DEFAULT_EVENT_MAX_AGE_MS}, 7 days; 0 =
 * unlimited) are removed by JetStream (`max_age`, on storage time). That is safe because user
 * partitions snapshot their profiles periodically (user-state/snapshot-writer.ts) and replay only
 * what follows their snapshot, and the popular actor replays only a bounded window
 * (popular/popular.ts). A replica that finds the events after its snapshot already removed still
 * starts and counts the gap (user-state.ts).
 *
 * Identity: {@link EventStreamInfo.identity} (the stream's name and creation time) changes when
 * the stream is deleted and created again, which restarts its sequence numbers at 1; a purge keeps
 * both the identity and the sequence counter. Snapshots record the identity their appliedSeq
 * refers to, so a sequence of an older stream is never taken for one of the current stream.
 */
import { nanos } from '@nats-io/nats-core';
import type { JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import { JetStreamApiCodes, StorageType } from '@nats-io/jetstream';
import { Subjects, eventStreamName } from '../../core/subjects.js';

/** De-duplication window of the event stream, in ms (JetStream's own default is also 2 minutes). */
export const EVENT_DUPLICATE_WINDOW_MS = 120_000;

/** Default retention of the event stream (max_age), ms: 7 days. */
export const DEFAULT_EVENT_MAX_AGE_MS = 7 * 24 * 3_600_000;

/** Smallest non-zero max age accepted, ms (JetStream needs duplicate window ≤ max age; below 1 s is a typo). */
export const MIN_EVENT_MAX_AGE_MS = 1000;

/** Validates a max age in ms: 0 (unlimited) or an integer ≥ {@link MIN_EVENT_MAX_AGE_MS}. Returns it. */
export function validateEventMaxAgeMs(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || (v !== 0 && v < MIN_EVENT_MAX_AGE_MS)) {
    throw new TypeError(`${name} must be 0 (unlimited) or an integer >= ${MIN_EVENT_MAX_AGE_MS} ms, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The event stream's configuration for `cluster`, keeping events `maxAgeMs` (0 = unlimited). */
export function eventStreamConfig(cluster: string, maxAgeMs: number = DEFAULT_EVENT_MAX_AGE_MS): Partial<StreamConfig> & { name: string } {
  validateEventMaxAgeMs('event stream maxAgeMs', maxAgeMs);
  return {
    name: eventStreamName(cluster),
    subjects: [Subjects.allEvents(cluster)],
    storage: StorageType.File,
    max_age: nanos(maxAgeMs),
    // JetStream refuses a duplicate window longer than max_age.
    duplicate_window: nanos(maxAgeMs === 0 ? EVENT_DUPLICATE_WINDOW_MS : Math.min(EVENT_DUPLICATE_WINDOW_MS, maxAgeMs)),
  };
}

/** What readers of the stream need to know about it. */
export interface EventStreamInfo {
  /** `<name>@<created>`: changes when the stream is deleted and created again (not on purge). */
  readonly identity: string;
  /** Oldest sequence still stored (after retention or a purge; last+1 when empty, 0 when never written). */
  readonly firstSeq: number;
  /** Newest sequence stored (or last removed by a purge); 0 when never written. */
  readonly lastSeq: number;
  /** Retention in ms (0 = unlimited). */
  readonly maxAgeMs: number;
}

/** Options of {@link ensureEventStream}. */
export interface EnsureEventStreamOptions {
  /**
   * Retention to create the stream with and to set on an existing stream whose max_age differs.
   * Omit to create with {@link DEFAULT_EVENT_MAX_AGE_MS} and leave an existing stream as it is
   * (callers without the node's config).
   */
  readonly maxAgeMs?: number;
}

/**
 * Creates the event stream when it does not exist; an existing stream keeps its config, except
 * its max_age when `maxAgeMs` is given and differs (the config of the node that asked wins; every
 * node of a cluster runs one config). Returns the stream's {@link EventStreamInfo}.
 */
export async function ensureEventStream(jsm: JetStreamManager, cluster: string, opts: EnsureEventStreamOptions = {}): Promise<EventStreamInfo> {
  const config = eventStreamConfig(cluster, opts.maxAgeMs);
  await ensureStream(jsm, config, (existing) =>
    opts.maxAgeMs !== undefined && existing.max_age !== config.max_age ? { max_age: config.max_age, duplicate_window: config.duplicate_window } : undefined,
  );
  return eventStreamInfo(jsm, cluster);
}

/**
 * True when `err` is JetStream's "stream not found". Compared by code, not class: the kv package's
 * errors reach us from its own copy of the client classes.
 */
export function isStreamNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === JetStreamApiCodes.StreamNotFound;
}

/**
 * Creates stream `config.name`, or, when it exists, applies `changes(existing config)` to it (when
 * that returns something). Whoever starts first creates it; losing that race to another process is
 * fine when the stream is there afterwards. Shared by every stream upnext owns (events, feature log).
 */
export async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
  changes: (existing: StreamConfig) => Partial<StreamConfig> | undefined,
): Promise<void> {
  try {
    const info = await jsm.streams.info(config.name);
    const update = changes(info.config);
    if (update !== undefined) await jsm.streams.update(config.name, update);
    return;
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
  }
  try {
    await jsm.streams.add(config);
  } catch (err) {
    await jsm.streams.info(config.name).catch(() => {
      throw err;
    });
  }
}

/** The stream's identity, sequence range and retention now (it must exist). */
export async function eventStreamInfo(jsm: JetStreamManager, cluster: string): Promise<EventStreamInfo> {
  const info = await jsm.streams.info(eventStreamName(cluster));
  return {
    identity: `${info.config.name}@${info.created}`,
    firstSeq: info.state.first_seq,
    lastSeq: info.state.last_seq,
    maxAgeMs: Math.round((info.config.max_age ?? 0) / 1e6),
  };
}
