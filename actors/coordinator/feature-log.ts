/**
 * Feature logging (DESIGN §5): for a sample of ranked requests, the coordinator publishes the
 * ranker rows of the items it served — the exact columns the ranker scored, written by the same
 * RankerRowWriter — with the request id, user, model version and feature-spec hash, to the
 * cluster's feature-log stream. Training joins them with the labels that follow (LogEvents carries
 * the request id); `offline/cli.js skew` compares their distribution with the training rows.
 *
 * Why a core NATS publish into a JetStream stream, not a JetStream publish with an ack: the log is
 * a sample, and the Recommend path must not wait on (or fail because of) it. A message the stream
 * never stored is a smaller sample, not a failed request; `stats().publishFailures` counts the ones
 * the client refused outright.
 *
 * Sampling is by request id (a hash), so a request id is logged or not wherever it is served and a
 * replayed request id samples the same way; requests without an id are sampled at random.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { nanos } from '@nats-io/nats-core';
import type { JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import { DiscardPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import { ensureStream } from '../event-stream/stream.js';
import { Subjects, servedStreamName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { ServedRowsMsg } from '../../protos/codec.js';
import type { FeatureLogConfig } from './config.js';
import { sampledByRequestId } from './sampling.js';

/** Counters of one coordinator's feature log (the coordinator's stats, hence /metrics). */
export interface FeatureLogStats {
  /** Requests whose served rows were published. */
  readonly logged: number;
  /** Rows published (one per served, ranked item). */
  readonly rows: number;
  /** Bytes published. */
  readonly bytes: number;
  /** Publishes the NATS client refused (closed or draining connection). */
  readonly publishFailures: number;
}

/** What the pipeline hands over for one sampled request. */
export interface ServedRowsRecord {
  readonly requestId: string;
  readonly userId: number;
  readonly modelVersion: string;
  /** specHash of the model's feature spec (the rows' definition). */
  readonly featureSpecHash: string;
  readonly surface: string;
  /** Served items with rows, in answer order. */
  readonly videoIds: readonly number[];
  /** Their 0-based slots in the answer. */
  readonly slots: readonly number[];
  /** videoIds.length × rankerRowWidth(spec) floats. */
  readonly rows: Float32Array;
  readonly width: number;
}

/** Where sampled rows go; the pipeline depends on this, not on NATS. */
export interface FeatureLogSink {
  /** Whether this request's rows are logged (decided once per request). */
  sampled(requestId: string): boolean;
  log(record: ServedRowsRecord): void;
}

/** The feature-log stream's configuration for `cluster`. */
export function servedStreamConfig(cluster: string, cfg: Pick<FeatureLogConfig, 'maxAgeMs' | 'maxBytes'>): Partial<StreamConfig> & { name: string } {
  return {
    name: servedStreamName(cluster),
    subjects: [Subjects.served(cluster)],
    storage: StorageType.File,
    max_age: nanos(cfg.maxAgeMs),
    max_bytes: cfg.maxBytes,
    // A full log drops its oldest samples, never the new ones (and never blocks a publish).
    discard: DiscardPolicy.Old,
  };
}

/** Creates the feature-log stream, or updates its limits when they differ. */
export async function ensureServedStream(jsm: JetStreamManager, cluster: string, cfg: Pick<FeatureLogConfig, 'maxAgeMs' | 'maxBytes'>): Promise<void> {
  const config = servedStreamConfig(cluster, cfg);
  await ensureStream(jsm, config, (existing) =>
    existing.max_age !== config.max_age || existing.max_bytes !== config.max_bytes ? { max_age: config.max_age, max_bytes: config.max_bytes, discard: DiscardPolicy.Old } : undefined,
  );
}

/** Publishes sampled served rows to the cluster's feature-log stream. */
export class FeatureLog implements FeatureLogSink {
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #rate: number;
  readonly #random: () => number;
  #logged = 0;
  #rows = 0;
  #bytes = 0;
  #publishFailures = 0;

  private constructor(nc: NatsConnection, cluster: string, rate: number, random: () => number) {
    this.#nc = nc;
    this.#subject = Subjects.served(cluster);
    this.#rate = rate;
    this.#random = random;
  }

  /** A feature log for `cluster`; creates the stream when sampling is on (rate > 0). */
  static async create(nc: NatsConnection, cluster: string, cfg: FeatureLogConfig, random: () => number = Math.random): Promise<FeatureLog> {
    if (cfg.sampleRate > 0) await ensureServedStream(await jetstreamManager(nc), cluster, cfg);
    return new FeatureLog(nc, cluster, cfg.sampleRate, random);
  }

  sampled(requestId: string): boolean {
    return sampledByRequestId(requestId, this.#rate, this.#random);
  }

  log(record: ServedRowsRecord): void {
    if (record.videoIds.length === 0) return;
    const msg: ServedRowsMsg = {
      requestId: record.requestId,
      userId: record.userId,
      modelVersion: record.modelVersion,
      featureSpecHash: record.featureSpecHash,
      width: record.width,
      videoIds: [...record.videoIds],
      slots: [...record.slots],
      rows: new Uint8Array(record.rows.buffer, record.rows.byteOffset, record.rows.byteLength),
      servedAtMs: Date.now(),
      surface: record.surface,
    };
    const bytes = Codecs.servedRows.encode(msg);
    try {
      this.#nc.publish(this.#subject, bytes);
    } catch {
      this.#publishFailures++;
      return;
    }
    this.#logged++;
    this.#rows += record.videoIds.length;
    this.#bytes += bytes.byteLength;
  }

  stats(): FeatureLogStats {
    return { logged: this.#logged, rows: this.#rows, bytes: this.#bytes, publishFailures: this.#publishFailures };
  }

}
