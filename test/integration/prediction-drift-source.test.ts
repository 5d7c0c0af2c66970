// A coordinator (real nats-server for its event stream; fake pipeline ports) reports whether stream
// events reach its drift monitor: without a source (no popular actor with a feed on its node) the
// drift series say so (`…_events_source 0`) instead of showing bare zeros; drift off (sampleRate 0)
// renders no drift series at all.
import t from 'tap';
import type { ModelManifest } from '../../core/model/contract.js';
import { EventType, UNKNOWN_CONTEXT } from '../../core/events.js';
import { startCoordinator } from '../../actors/coordinator/index.js';
import type { PipelinePorts } from '../../actors/coordinator/ports.js';
import { renderMetrics } from '../../cluster/node/metrics.js';
import { bareManifest, fakeCandidateBatch } from '../actors/fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const manifest: ModelManifest = bareManifest('drift-src-v1');
const ports: PipelinePorts = {
  userState: { get: () => Promise.reject(new Error('unused')) },
  shards: { search: () => Promise.reject(new Error('unused')) },
  ranker: { score: () => Promise.reject(new Error('unused')) },
  popular: { get: (_c, _d, n) => Promise.resolve(fakeCandidateBatch(Array.from({ length: n }, (_, i) => i + 1), () => 1, Date.now())) },
};

const { nc } = await natsFixture(t, 'upnext-drift-src');
const cluster = `driftsrc${process.pid}`;

function metricsOf(stats: unknown): string {
  return renderMetrics({
    node: 'n1',
    cluster,
    mapVersion: 1,
    modelVersion: manifest.version,
    process: { cpuSecondsTotal: 0, rssBytes: 0, heapUsedBytes: 0, eventLoopDelayP99Ms: 0, uptimeSeconds: 0 },
    actors: [{ kind: 'coordinator', stats }],
  });
}

t.test('no event source: events_source 0; with one, 1 (read at each scrape)', async (t) => {
  const alone = await startCoordinator({ nc, cluster, itemShards: 1, userPartitions: 1, manifest, ports, config: { drift: { sampleRate: 1 } } });
  t.teardown(() => alone.stop());
  const text = metricsOf(alone.stats());
  t.match(text, /^upnext_coordinator_prediction_drift_events_source\{[^}]*\} 0$/m, 'says the figures cannot fill');
  t.match(text, /^upnext_coordinator_prediction_drift_impressions\{[^}]*\} 0$/m);
  t.match(text, /^upnext_coordinator_prediction_drift_alert\{[^}]*\} 0$/m);
  t.notMatch(text, /prediction_drift_ratio/, 'no ratio without clicks');

  let connected = false;
  const fed = await startCoordinator({ nc, cluster, itemShards: 1, userPartitions: 1, manifest, ports, config: { drift: { sampleRate: 1 } }, driftEventsSource: () => connected });
  t.teardown(() => fed.stop());
  t.equal(fed.stats().predictionDrift?.eventsSource, false);
  connected = true;
  t.equal(fed.stats().predictionDrift?.eventsSource, true);
  t.match(metricsOf(fed.stats()), /^upnext_coordinator_prediction_drift_events_source\{[^}]*\} 1$/m);
  // Events for a request this coordinator never served change nothing.
  fed.noteEvents([{ eventId: 'x', userId: 1, videoId: 1, type: EventType.IMPRESSION, tsMs: 0, position: 0, watchSeconds: 0, context: UNKNOWN_CONTEXT, surface: '', requestId: 'never-served' }]);
  t.equal(fed.stats().predictionDrift?.impressions, 0);
});

t.test('drift off (sampleRate 0): no drift series, noteEvents a no-op', async (t) => {
  const off = await startCoordinator({ nc, cluster, itemShards: 1, userPartitions: 1, manifest, ports, config: { drift: { sampleRate: 0 } }, driftEventsSource: () => true });
  t.teardown(() => off.stop());
  t.doesNotThrow(() => off.noteEvents([]));
  t.equal(off.stats().predictionDrift, undefined);
  t.notMatch(metricsOf(off.stats()), /prediction_drift/);
});

t.test('a non-function driftEventsSource is a TypeError', async (t) => {
  await t.rejects(
    startCoordinator({ nc, cluster, itemShards: 1, userPartitions: 1, manifest, ports, driftEventsSource: true as unknown as () => boolean }),
    { name: 'TypeError', message: /driftEventsSource/ },
  );
});
