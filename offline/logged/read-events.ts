/**
 * Reads the label events (CLICK and WATCH) of the cluster's event stream (actors/event-stream/
 * stream.ts) from a storage time on, with each message's storage time, for the training join.
 * Same ordered-consumer snapshot read as the feature log (offline/skew/reader.ts
 * readStreamSnapshot): ephemeral, no acks, every partition's subject, stops when caught up.
 *
 * Why the storage time travels with each event: the join compares it with the rows' servedAtMs.
 * Both are wall clocks (the NATS server's and the coordinator's), whereas an event's own `tsMs` is
 * in serving time, which for a replayed world is wall time minus the coordinator's
 * servingTimeOffsetMs (actors/coordinator/index.ts) and so cannot be compared with servedAtMs.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { InteractionEvent } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { Subjects, eventStreamName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { eventFromMsg } from '../../protos/convert.js';
import { readStreamSnapshot } from '../skew/reader.js';
import { DEFAULT_LOGGED_FETCH_WAIT_MS } from './read-served.js';

/** One event of the stream with where and when it was stored. */
export interface LabelEvent {
  /** Stream sequence. */
  readonly seq: number;
  /** JetStream storage time (the server's wall clock), epoch ms. */
  readonly storedAtMs: number;
  readonly event: InteractionEvent;
}

/** Options of {@link readLabelEvents}. */
export interface ReadLabelEventsOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** Read the events stored at or after this time (epoch ms). */
  readonly startTimeMs: number;
  /** Wait of one fetch, ms (≥ 1000). Default {@link DEFAULT_LOGGED_FETCH_WAIT_MS}. */
  readonly fetchWaitMs?: number;
  /** Keep only the impressions, clicks and watches this accepts (join.ts loggedEventFilter); the rest are counted in `unrelated`. Default: keep all. */
  readonly keep?: (e: InteractionEvent) => boolean;
}

/** The label events read and how far the read got. */
export interface LabelEventsRead {
  readonly stream: string;
  /** IMPRESSION, CLICK and WATCH events, in stream order. */
  readonly events: readonly LabelEvent[];
  /** Events of other types read and skipped (likes, skips). */
  readonly otherEvents: number;
  /** Impressions, clicks and watches `keep` refused (of requests the feature log did not sample). */
  readonly unrelated: number;
  /** Messages that did not decode as an EventEnvelope. */
  readonly undecodable: number;
  /** Stream sequences of the first and last message read (0 when none). */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /**
   * Every event stored before this wall time (epoch ms) has been read: the time the read's snapshot
   * was taken. The join's watermark is at most this.
   */
  readonly throughMs: number;
}

/** Reads IMPRESSION, CLICK and WATCH events stored at or after `startTimeMs`. NOT_FOUND when the stream does not exist. */
export async function readLabelEvents(o: ReadLabelEventsOptions): Promise<LabelEventsRead> {
  if (!(Number.isFinite(o.startTimeMs) && o.startTimeMs >= 0)) throw new TypeError(`option startTimeMs must be a time >= 0 (epoch ms), got ${String(o.startTimeMs)}`);
  const events: LabelEvent[] = [];
  let otherEvents = 0;
  let unrelated = 0;
  let undecodable = 0;
  let firstSeq = 0;
  const end = await readStreamSnapshot(
    {
      nc: o.nc,
      stream: eventStreamName(o.cluster),
      subject: Subjects.allEvents(o.cluster),
      startTimeMs: o.startTimeMs,
      fetchWaitMs: o.fetchWaitMs ?? DEFAULT_LOGGED_FETCH_WAIT_MS,
      notFound: (stream) => new UpnextError(StatusCode.NOT_FOUND, `event stream ${stream} does not exist: cluster ${o.cluster} has logged no events (LogEvents)`),
    },
    (m) => {
      if (firstSeq === 0) firstSeq = m.info.streamSequence;
      let event: InteractionEvent;
      try {
        const env = Codecs.eventEnvelope.decode(m.data);
        if (env.event === undefined || env.event === null) throw new Error('empty envelope');
        event = eventFromMsg(env.event);
      } catch {
        undecodable++;
        return true;
      }
      if (event.type !== EventType.IMPRESSION && event.type !== EventType.CLICK && event.type !== EventType.WATCH) otherEvents++;
      else if (o.keep !== undefined && !o.keep(event)) unrelated++;
      else events.push({ seq: m.info.streamSequence, storedAtMs: m.time.getTime(), event });
      return true;
    },
  );
  return { stream: end.stream, events, otherEvents, unrelated, undecodable, firstSeq, lastSeq: end.lastSeq, throughMs: end.snapshotAtMs };
}
