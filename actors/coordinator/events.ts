/**
 * LogEvents' sink: validated interaction events are appended to the cluster's JetStream event
 * stream, one message per event on its user partition's subject, with `Nats-Msg-Id = event_id` so
 * a retried event inside the stream's duplicate window is stored once. The call returns after every
 * ack: an accepted event is durable (to the extent the server's fsync policy makes it so; see
 * docs/operations.md: production needs nats-server ≥ 2.12.3 with `sync_interval: always`).
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { JetStreamClient } from '@nats-io/jetstream';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventStream } from '../event-stream/stream.js';
import type { InteractionEvent } from '../../core/events.js';
import { userPartitionOf } from '../../core/hash.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { eventToMsg } from '../../protos/convert.js';

/** Outcome of one LogEvents call. */
export interface PublishResult {
  /** Events stored now. */
  readonly accepted: number;
  /** Events the stream had already stored under the same event_id. */
  readonly duplicates: number;
}

/** Publishes validated events to the event stream. One per coordinator. */
export class EventPublisher {
  readonly #js: JetStreamClient;
  readonly #cluster: string;
  readonly #partitions: number;
  readonly #ackTimeoutMs: number;

  private constructor(js: JetStreamClient, cluster: string, partitions: number, ackTimeoutMs: number) {
    this.#js = js;
    this.#cluster = cluster;
    this.#partitions = partitions;
    this.#ackTimeoutMs = ackTimeoutMs;
  }

  /**
   * Ensures the stream exists (created with `maxAgeMs` retention, or updated to it when given and
   * different; undefined = create with the stream module's default, leave an existing one alone),
   * then returns a publisher.
   */
  static async create(nc: NatsConnection, cluster: string, partitions: number, ackTimeoutMs: number, maxAgeMs?: number): Promise<EventPublisher> {
    await ensureEventStream(await jetstreamManager(nc), cluster, maxAgeMs === undefined ? {} : { maxAgeMs });
    return new EventPublisher(jetstream(nc), cluster, partitions, ackTimeoutMs);
  }

  /**
   * Publishes every event concurrently and waits for all acks. Rejects with UNAVAILABLE when any
   * publish fails: the caller retries the whole call, and de-duplication makes that safe.
   */
  async publish(events: readonly InteractionEvent[]): Promise<PublishResult> {
    const acks = await Promise.allSettled(
      events.map((e) =>
        this.#js.publish(
          Subjects.events(this.#cluster, userPartitionOf(e.userId, this.#partitions)),
          Codecs.eventEnvelope.encode({ event: eventToMsg(e) }),
          { msgID: e.eventId, timeout: this.#ackTimeoutMs },
        ),
      ),
    );
    let accepted = 0;
    let duplicates = 0;
    let failed = 0;
    let firstError = '';
    for (const a of acks) {
      if (a.status === 'rejected') {
        failed++;
        firstError ||= a.reason instanceof Error ? a.reason.message : String(a.reason);
      } else if (a.value.duplicate) duplicates++;
      else accepted++;
    }
    if (failed > 0) {
      throw new UpnextError(
        StatusCode.UNAVAILABLE,
        `${failed} of ${events.length} events were not acknowledged by the event stream (${firstError}); retry the call: duplicates are dropped`,
      );
    }
    return { accepted, duplicates };
  }
}
