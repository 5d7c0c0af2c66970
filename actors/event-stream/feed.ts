/**
 * Reads one subject of the event stream, in stream order, from a given sequence on (or from a start
 * time: the popular actor's bounded replay), and hands the events to an actor in batches: how a
 * user partition learns of the clicks LogEvents accepted (DESIGN §3: "ack only after the state is
 * applied"; §6: "restore from snapshot, replay the stream from the snapshot's sequence").
 *
 * An ordered consumer (ephemeral, flow-controlled, recreated by the client after a gap or a
 * reconnect, starting again after the last sequence it delivered) rather than a durable one with
 * acks: the state it feeds lives in memory, so after a restart it must be replayed from the
 * snapshot's sequence whatever a durable consumer had acked. The partition's own `appliedSeq`
 * (skip seq ≤ appliedSeq) makes a redelivery harmless. The guarantee: an event LogEvents acked is
 * in the stream, and every replica of its partition applies it exactly once, in order, within its
 * lifetime or after its restart.
 *
 * A start time is turned into a sequence first ({@link sequenceBeforeTime}), and the ordered
 * consumer always starts by sequence: when the client recreates an ordered consumer (a missed
 * heartbeat, a reconnect) it copies the old config and sets a start sequence, and a config created
 * with a start time then carries both, which the server refuses — the feed stalled for good after
 * its first reset (seen under CI load: 61 of 200 events applied).
 *
 * Batching: messages are gathered while more are pending (up to `maxBatch`) and applied in one
 * call, so a burst costs one worker hop per batch; a lone event is applied at once, and a batch whose
 * last message still claims more pending is applied after {@link FEED_IDLE_FLUSH_MS} of silence (see
 * {@link pumpFeed}). Batches are applied in order, one at a time (back-pressure through the
 * consumer's buffer).
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { InteractionEvent } from '../../core/events.js';
import { eventStreamName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { eventFromMsg } from '../../protos/convert.js';
import { ensureEventStream } from './stream.js';

/**
 * Lifetime of each pull request of the feed's consumer, ms. The client expects a server heartbeat
 * every half of it and recreates the consumer after two are missed, so this bounds how long a feed
 * stays silent after its consumer is lost (a server restart, a deleted consumer): ~2 × 5 s here
 * against ~60 s with the client's 30 s default. Costs one pull per feed every 5 s when idle.
 */
export const FEED_PULL_EXPIRES_MS = 5000;

/** One event and its stream sequence. */
export interface FedEvent {
  readonly seq: number;
  readonly event: InteractionEvent;
}

/** Options of {@link startEventFeed}. */
export interface EventFeedOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** Subject filter, e.g. `Subjects.events(cluster, p)`. */
  readonly subject: string;
  /** Deliver from `afterSeq + 1` on; 0 = the whole stream (or from `startTimeMs`). */
  readonly afterSeq: number;
  /**
   * Deliver the messages stored at or after this wall time (epoch ms; JetStream's storage time,
   * DeliverPolicy by start time) instead of by sequence; needs `afterSeq` 0. Default: by sequence.
   */
  readonly startTimeMs?: number;
  /** Retention the stream is created with (or updated to), ms; 0 = unlimited. Default: see stream.ts ensureEventStream. */
  readonly maxAgeMs?: number;
  /** Applies one batch in order; the next batch waits for it. A rejection is logged and the batch is retried. */
  readonly apply: (batch: readonly FedEvent[]) => Promise<void>;
  /** Most events per apply call. Default 256. */
  readonly maxBatch?: number;
  /** Wait before retrying a batch whose apply failed, ms. Default 500. */
  readonly retryMs?: number;
  /** Structured log sink. Default: none. */
  readonly log?: (event: Record<string, unknown>) => void;
}

/** Counters for /metrics. */
export interface EventFeedStats {
  /** Messages read from the stream. */
  readonly received: number;
  /** Events handed to apply (and applied). */
  readonly applied: number;
  readonly batches: number;
  /** Messages that did not decode (skipped; the stream only holds what LogEvents validated). */
  readonly undecodable: number;
  /** apply calls that failed and were retried. */
  readonly applyFailures: number;
  /** Stream sequence of the last event applied. */
  readonly lastSeq: number;
  /** Messages the consumer said were still pending after the last one read. */
  readonly pending: number;
  /** Start time the consumer delivers from (epoch ms), 0 when it delivers by sequence. */
  readonly startTimeMs: number;
  /**
   * Times the client found server heartbeats missing, and times it recreated the ordered consumer
   * (after two missed, a reconnect or a deleted consumer): each recreation leaves the feed silent
   * for up to ~2 × {@link FEED_PULL_EXPIRES_MS}. Also logged (`event_feed_heartbeats_missed`,
   * `event_feed_consumer_recreated`).
   */
  readonly heartbeatsMissed: number;
  readonly consumerRecreated: number;
}

/** A running feed. */
export interface EventFeedHandle {
  stats(): EventFeedStats;
  /** Stops reading; resolves after the batch in progress is applied. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The stream sequence just before the first message on `subject` stored at or after `startTimeMs`
 * (JetStream's storage time): what an "after sequence" start needs to deliver from that time on.
 * The server resolves the time: a short-lived consumer created with DeliverPolicy by start time
 * reports, before delivering anything, the stream sequence it stands after.
 */
export async function sequenceBeforeTime(jsm: JetStreamManager, stream: string, subject: string, startTimeMs: number): Promise<number> {
  const probe = await jsm.consumers.add(stream, {
    filter_subject: subject,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(startTimeMs).toISOString(),
    ack_policy: AckPolicy.None,
    inactive_threshold: nanos(60_000),
    mem_storage: true,
  });
  try {
    return probe.delivered.stream_seq;
  } finally {
    await jsm.consumers.delete(stream, probe.name).catch(() => undefined);
  }
}

/** What {@link pumpFeed} reads: the parts of a JetStream message it uses. */
export interface FeedMessage {
  readonly data: Uint8Array;
  readonly info: { readonly streamSequence: number; readonly pending: number };
}

/**
 * How long a batch may wait for more messages before it is applied anyway, ms. The consumer's
 * `pending` count (0 on the last message of a burst) usually ends a batch; but it is the server's
 * count when it sent the message and can still be > 0 on the last one delivered (seen under load:
 * 147 of 200 events held in a batch with nothing more to come), so a short idle timer closes it.
 */
export const FEED_IDLE_FLUSH_MS = 5;

/**
 * Reads `messages` in order into batches and applies them in order: a batch closes at `maxBatch`
 * events, on a message that says nothing is pending, or {@link FEED_IDLE_FLUSH_MS} after its last
 * message when no other came. The next batch is applied only after the previous one (the loop
 * awaits a batch it closes itself, so the consumer's buffer applies back-pressure). Resolves when
 * the messages end (or `isStopping`) and the last batch is applied.
 */
export async function pumpFeed(
  messages: AsyncIterable<FeedMessage>,
  o: {
    readonly maxBatch: number;
    readonly isStopping: () => boolean;
    readonly apply: (batch: FedEvent[]) => Promise<void>;
    /** Every message read, with its event (undefined when it does not decode). */
    readonly onMessage?: (m: FeedMessage, event: InteractionEvent | undefined) => void;
  },
): Promise<void> {
  let batch: FedEvent[] = [];
  let chain: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = (): Promise<void> => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (batch.length > 0) {
      const ready = batch;
      batch = [];
      chain = chain.then(() => o.apply(ready));
    }
    return chain;
  };
  try {
    for await (const m of messages) {
      let event: InteractionEvent | undefined;
      try {
        const env = Codecs.eventEnvelope.decode(m.data);
        if (env.event) event = eventFromMsg(env.event);
      } catch {
        event = undefined;
      }
      o.onMessage?.(m, event);
      if (event !== undefined) batch.push({ seq: m.info.streamSequence, event });
      if (batch.length >= o.maxBatch || (batch.length > 0 && m.info.pending === 0)) await flush();
      else if (batch.length > 0 && timer === undefined) timer = setTimeout(() => void flush(), FEED_IDLE_FLUSH_MS);
      if (o.isStopping()) break;
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }
  if (!o.isStopping()) await flush();
  await chain;
}

/** Creates the stream if needed, opens an ordered consumer on `subject` and starts feeding. */
export async function startEventFeed(o: EventFeedOptions): Promise<EventFeedHandle> {
  if (!Number.isInteger(o.afterSeq) || o.afterSeq < 0) throw new TypeError(`option afterSeq must be an integer >= 0, got ${String(o.afterSeq)}`);
  const maxBatch = o.maxBatch ?? 256;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new TypeError(`option maxBatch must be a positive integer, got ${String(maxBatch)}`);
  const retryMs = o.retryMs ?? 500;
  const startTimeMs = o.startTimeMs;
  if (startTimeMs !== undefined && !(Number.isFinite(startTimeMs) && startTimeMs >= 0 && o.afterSeq === 0)) {
    throw new TypeError(`option startTimeMs must be a time >= 0 (epoch ms) with afterSeq 0, got ${String(startTimeMs)} with afterSeq ${o.afterSeq}`);
  }
  const jsm = await jetstreamManager(o.nc);
  await ensureEventStream(jsm, o.cluster, o.maxAgeMs === undefined ? {} : { maxAgeMs: o.maxAgeMs });
  const afterSeq = startTimeMs !== undefined ? await sequenceBeforeTime(jsm, eventStreamName(o.cluster), o.subject, startTimeMs) : o.afterSeq;
  const consumer = await jetstream(o.nc).consumers.get(eventStreamName(o.cluster), {
    filter_subjects: o.subject,
    ...(afterSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterSeq + 1 } : { deliver_policy: DeliverPolicy.All }),
  });
  const messages: ConsumerMessages = await consumer.consume({ max_messages: Math.max(maxBatch, 64), expires: FEED_PULL_EXPIRES_MS });
  const stats = { received: 0, applied: 0, batches: 0, undecodable: 0, applyFailures: 0, lastSeq: o.afterSeq, pending: 0, startTimeMs: startTimeMs ?? 0, heartbeatsMissed: 0, consumerRecreated: 0 };
  let stopping = false;

  // The client's own notices: a silent feed is explained in the log and the stats, not guessed at.
  void (async () => {
    for await (const n of messages.status()) {
      if (n.type === 'heartbeats_missed') {
        stats.heartbeatsMissed++;
        o.log?.({ event: 'event_feed_heartbeats_missed', subject: o.subject, count: n.count, lastSeq: stats.lastSeq });
      } else if (n.type === 'ordered_consumer_recreated' || n.type === 'reset') {
        stats.consumerRecreated++;
        o.log?.({ event: 'event_feed_consumer_recreated', subject: o.subject, kind: n.type, lastSeq: stats.lastSeq });
      }
    }
  })().catch(() => undefined);

  const applyWithRetry = async (batch: FedEvent[]): Promise<void> => {
    for (;;) {
      try {
        await o.apply(batch);
        stats.applied += batch.length;
        stats.batches++;
        stats.lastSeq = batch[batch.length - 1]?.seq ?? stats.lastSeq;
        return;
      } catch (err) {
        stats.applyFailures++;
        o.log?.({ event: 'event_feed_apply_failed', subject: o.subject, fromSeq: batch[0]?.seq, events: batch.length, message: err instanceof Error ? err.message : String(err) });
        if (stopping) return;
        await new Promise((r) => setTimeout(r, retryMs));
        if (stopping) return;
      }
    }
  };

  const loop = pumpFeed(messages as AsyncIterable<JsMsg>, {
    maxBatch,
    isStopping: () => stopping,
    apply: applyWithRetry,
    onMessage: (m, event) => {
      stats.received++;
      stats.pending = m.info.pending;
      if (event === undefined) stats.undecodable++;
    },
  }).catch((err: unknown) => {
    o.log?.({ event: 'event_feed_stopped', subject: o.subject, message: err instanceof Error ? err.message : String(err) });
  });

  let stopped: Promise<void> | undefined;
  return {
    stats: () => ({ ...stats }),
    stop: () => {
      stopped ??= (async () => {
        stopping = true;
        await messages.close();
        await loop;
      })();
      return stopped;
    },
  };
}
