/**
 * The cluster's JetStream event stream (DESIGN §3): one stream per cluster holding every
 * interaction event, one subject per user partition (`Subjects.events`), de-duplicated by event id.
 * The coordinator appends to it (actors/coordinator/events.ts); user partitions read their subject
 * back (feed.ts). Whoever starts first creates it.
 */
import { nanos } from '@nats-io/nats-core';
import type { JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import { JetStreamApiCodes, JetStreamApiError, StorageType } from '@nats-io/jetstream';
import { Subjects, eventStreamName } from '../../core/subjects.js';

/** De-duplication window of the event stream, in ms (JetStream's own default is also 2 minutes). */
export const EVENT_DUPLICATE_WINDOW_MS = 120_000;

/** The event stream's configuration for `cluster`. */
export function eventStreamConfig(cluster: string): Partial<StreamConfig> & { name: string } {
  return {
    name: eventStreamName(cluster),
    subjects: [Subjects.allEvents(cluster)],
    storage: StorageType.File,
    duplicate_window: nanos(EVENT_DUPLICATE_WINDOW_MS),
  };
}

/**
 * Creates the event stream when it does not exist; an existing stream is left as it is (another
 * node or actor may have created it first, and its config is the same by construction).
 */
export async function ensureEventStream(jsm: JetStreamManager, cluster: string): Promise<void> {
  const config = eventStreamConfig(cluster);
  try {
    await jsm.streams.info(config.name);
    return;
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
  }
  try {
    await jsm.streams.add(config);
  } catch (err) {
    // Lost a creation race with another coordinator: fine if the stream is there now.
    await jsm.streams.info(config.name).catch(() => {
      throw err;
    });
  }
}

