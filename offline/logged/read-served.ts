/**
 * Reads the feature log (stream `servedStreamName(cluster)`) into whole {@link ServedRequest}s, for
 * the training join. Same ordered-consumer snapshot read as the skew check (offline/skew/reader.ts
 * readStreamSnapshot): ephemeral, no acks, stops at the stream's last sequence as it was when
 * reading began, or at `maxRows`.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { readFeatureLog } from '../skew/reader.js';
import type { ServedRequests, ServedRowsKeep } from './served.js';
import { ServedRequestsCollector } from './served.js';

/** Default most logged rows read: 500,000 (~160 MB of rows at the default spec's 80 floats). */
export const DEFAULT_MAX_LOGGED_ROWS = 500_000;

/** Default wait of one fetch before the reader decides a stream has nothing more, ms. */
export const DEFAULT_LOGGED_FETCH_WAIT_MS = 2000;

/** Options of {@link readServedRequests}. */
export interface ReadServedRequestsOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** Read the messages stored at or after this time (epoch ms). Default: from the stream's first. */
  readonly startTimeMs?: number;
  /** Most rows read (whole requests). Default {@link DEFAULT_MAX_LOGGED_ROWS}. */
  readonly maxRows?: number;
  /** Wait of one fetch, ms (≥ 1000). Default {@link DEFAULT_LOGGED_FETCH_WAIT_MS}. */
  readonly fetchWaitMs?: number;
  /** Over `maxRows`: keep the oldest requests (default; reading stops there) or the newest. */
  readonly keep?: ServedRowsKeep;
}

/** {@link ServedRequests} plus where in the stream they came from. */
export interface ServedRequestsRead extends ServedRequests {
  readonly stream: string;
  /** Stream sequences of the first and last request read (0 when none). */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Messages that did not decode as ServedRows (skipped). */
  readonly undecodable: number;
}

/** Reads the cluster's feature log. NOT_FOUND when the stream does not exist. */
export async function readServedRequests(o: ReadServedRequestsOptions): Promise<ServedRequestsRead> {
  const fetchWaitMs = o.fetchWaitMs ?? DEFAULT_LOGGED_FETCH_WAIT_MS;
  const collector = new ServedRequestsCollector(o.maxRows ?? DEFAULT_MAX_LOGGED_ROWS, o.keep ?? 'oldest');
  const { end, undecodable } = await readFeatureLog(o, fetchWaitMs, (rows, seq) => collector.add(rows, seq));
  const got = collector.result();
  return {
    ...got,
    stream: end.stream,
    firstSeq: got.requests[0]?.seq ?? 0,
    lastSeq: got.requests.at(-1)?.seq ?? 0,
    undecodable,
  };
}
