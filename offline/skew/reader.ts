/**
 * Reads the feature log (ServedRows messages, stream `servedStreamName(cluster)`, subject
 * `Subjects.served(cluster)`) that coordinators publish (actors/coordinator/feature-log.ts), for
 * skew measurement.
 *
 * An ordered consumer (ephemeral, no acks: the reader changes nothing in the stream) from the
 * first message, or from a storage time. It stops when caught up, meaning at the stream's last
 * sequence as it was when reading began (a live coordinator keeps appending; the measurement is of
 * a snapshot), when a fetch waits `fetchWaitMs` without a message, or at `maxRows` rows.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { JsMsg } from '@nats-io/jetstream';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { isStreamNotFound } from '../../actors/event-stream/stream.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { Subjects, servedStreamName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { ServedRowsMsg } from '../../protos/codec.js';
import type { ServedRowsExpectation, ServedRowsSample } from './served-rows.js';
import { ServedRowsCollector, describeMismatch } from './served-rows.js';

/** Default most serving rows read. */
export const DEFAULT_MAX_SERVED_ROWS = 50_000;

/** Default wait of one fetch before the reader decides the stream has nothing more, ms. */
const DEFAULT_FETCH_WAIT_MS = 2000;

/** Options of {@link readServedRows}. */
export interface ReadServedRowsOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** specHash of the spec under measurement; messages with another hash are skipped and counted. */
  readonly featureSpecHash: string;
  /** rankerRowWidth of that spec. */
  readonly width: number;
  /** Most rows read. Default {@link DEFAULT_MAX_SERVED_ROWS}. */
  readonly maxRows?: number;
  /** Read the messages stored at or after this time (epoch ms) instead of from the start. */
  readonly startTimeMs?: number;
  /** Wait of one fetch for more messages, ms (≥ 1000, JetStream's pull minimum). Default {@link DEFAULT_FETCH_WAIT_MS}. */
  readonly fetchWaitMs?: number;
  /** Log sink (one line each: mismatches). Default none. */
  readonly log?: (line: string) => void;
}

/** {@link ServedRowsSample} plus where in the stream it came from. */
export interface ServedRowsRead extends ServedRowsSample {
  readonly stream: string;
  /** Stream sequence of the last message read (0 when none). */
  readonly lastSeq: number;
  /** Messages that did not decode as ServedRows (skipped). */
  readonly undecodable: number;
}

/** Options of {@link readStreamSnapshot}. */
export interface StreamSnapshotOptions {
  readonly nc: NatsConnection;
  readonly stream: string;
  /** Subject filter of the consumer. */
  readonly subject: string;
  /** Read the messages stored at or after this time (epoch ms) instead of from the first. */
  readonly startTimeMs?: number;
  /** Wait of one fetch for more messages, ms (≥ 1000). */
  readonly fetchWaitMs: number;
  /** The error to throw when the stream does not exist (it names what the caller expected there). */
  readonly notFound: (stream: string) => Error;
}

/** Where a {@link readStreamSnapshot} stopped. */
export interface StreamSnapshotEnd {
  readonly stream: string;
  /** The stream's last sequence when reading began: the snapshot's end. */
  readonly endSeq: number;
  /** Stream sequence of the last message read (0 when none). */
  readonly lastSeq: number;
  /** Wall time (epoch ms) just before the snapshot's end was taken: every message stored before it is at or below `endSeq`. */
  readonly snapshotAtMs: number;
  /** True when the read reached the snapshot's end (nothing of the filter left before it); false when `take` stopped it. */
  readonly caughtUp: boolean;
  /** True when `take` stopped the read while messages before the snapshot's end were still pending. */
  readonly moreLeft: boolean;
}

/**
 * Reads one subject of a stream with an ordered consumer (ephemeral, no acks: the stream is left
 * as it was) from the first message, or from a storage time, handing every message to `take` until
 * `take` returns false or the snapshot's end is reached (the stream's last sequence when reading
 * began: writers keep appending, the read is of a snapshot), or a fetch waits `fetchWaitMs` with
 * nothing. The feature-log reader below and offline/logged's event reader share it.
 */
export async function readStreamSnapshot(o: StreamSnapshotOptions, take: (m: JsMsg) => boolean): Promise<StreamSnapshotEnd> {
  const snapshotAtMs = Date.now();
  let endSeq: number;
  try {
    endSeq = (await (await jetstreamManager(o.nc)).streams.info(o.stream)).state.last_seq;
  } catch (err) {
    if (isStreamNotFound(err)) throw o.notFound(o.stream);
    throw err;
  }
  let lastSeq = 0;
  let moreLeft = false;
  if (endSeq > 0) {
    const consumer = await jetstream(o.nc).consumers.get(o.stream, {
      filter_subjects: o.subject,
      ...(o.startTimeMs !== undefined ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(o.startTimeMs).toISOString() } : { deliver_policy: DeliverPolicy.All }),
    });
    let done = false;
    while (!done) {
      const batch = await consumer.fetch({ max_messages: 256, expires: o.fetchWaitMs });
      let got = 0;
      for await (const m of batch as AsyncIterable<JsMsg>) {
        got++;
        lastSeq = m.info.streamSequence;
        const wantsMore = take(m);
        if (!wantsMore) {
          moreLeft = m.info.pending > 0 && lastSeq < endSeq;
        }
        if (!wantsMore || m.info.pending === 0 || lastSeq >= endSeq) {
          done = true;
          break;
        }
      }
      if (got === 0) done = true;
      // Leaving the loop early must not leave the pull request open on the connection.
      else if (done) await batch.close();
    }
    await consumer.delete().catch(() => false);
  }
  return { stream: o.stream, endSeq, lastSeq, snapshotAtMs, caughtUp: !moreLeft, moreLeft };
}

/**
 * Reads the cluster's feature log into one row matrix. Throws UpnextError NOT_FOUND when the
 * stream does not exist (no coordinator has logged yet: is `coordinator.featureLog.sampleRate` > 0?).
 */
export async function readServedRows(o: ReadServedRowsOptions): Promise<ServedRowsRead> {
  const maxRows = o.maxRows ?? DEFAULT_MAX_SERVED_ROWS;
  const fetchWaitMs = o.fetchWaitMs ?? DEFAULT_FETCH_WAIT_MS;
  const expect: ServedRowsExpectation = { featureSpecHash: o.featureSpecHash, width: o.width, maxRows };
  const collector = new ServedRowsCollector(expect);
  const { end, undecodable } = await readFeatureLog(o, fetchWaitMs, (rows) => collector.add(rows));
  const { stream, lastSeq, moreLeft } = end;
  const sample = collector.result();
  for (const m of sample.mismatches) o.log?.(describeMismatch(m, expect));
  return { ...sample, truncated: sample.truncated || moreLeft, stream, lastSeq, undecodable };
}

/**
 * Reads cluster `o.cluster`'s feature log (the ServedRows stream) through {@link readStreamSnapshot}:
 * each message decoded and handed to `take` with its stream sequence until `take` returns false;
 * a message that does not decode is counted and skipped. NOT_FOUND when no coordinator has logged
 * yet; TypeError for a `fetchWaitMs` under 1000 or a bad `startTimeMs`. Shared by the skew reader
 * and offline/logged.
 */
export async function readFeatureLog(
  o: { readonly nc: NatsConnection; readonly cluster: string; readonly startTimeMs?: number },
  fetchWaitMs: number,
  take: (rows: ServedRowsMsg, seq: number) => boolean,
): Promise<{ readonly end: StreamSnapshotEnd; readonly undecodable: number }> {
  if (!Number.isInteger(fetchWaitMs) || fetchWaitMs < 1000) throw new TypeError(`option fetchWaitMs must be an integer >= 1000 ms, got ${String(fetchWaitMs)}`);
  if (o.startTimeMs !== undefined && !(Number.isFinite(o.startTimeMs) && o.startTimeMs >= 0)) {
    throw new TypeError(`option startTimeMs must be a time >= 0 (epoch ms), got ${String(o.startTimeMs)}`);
  }
  let undecodable = 0;
  const end = await readStreamSnapshot(
    {
      nc: o.nc,
      stream: servedStreamName(o.cluster),
      subject: Subjects.served(o.cluster),
      fetchWaitMs,
      ...(o.startTimeMs !== undefined ? { startTimeMs: o.startTimeMs } : {}),
      notFound: (stream) =>
        new UpnextError(StatusCode.NOT_FOUND, `feature log stream ${stream} does not exist: no coordinator of cluster ${o.cluster} has logged served rows (is coordinator.featureLog.sampleRate > 0?)`),
    },
    (m) => {
      let rows: ServedRowsMsg;
      try {
        rows = Codecs.servedRows.decode(m.data);
      } catch {
        // take() returned true for the message before (or the read would have stopped): go on.
        undecodable++;
        return true;
      }
      return take(rows, m.info.streamSequence);
    },
  );
  return { end, undecodable };
}
