// The pipeline's drift hook (actors/coordinator/pipeline.ts → drift.ts) with fake ports: every
// answered, ranked request hands the calibrated P(click) it served for its ranked items; popular
// fill (priors, not predictions) and unranked answers are left out.
import t from 'tap';
import { Deadline } from '../../core/deadline.js';
import { specHash } from '../../core/features/index.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { EventType, UNKNOWN_CONTEXT } from '../../core/events.js';
import { ManualClock } from '../../core/clock.js';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import type { PredictionDriftSink, ServedPrediction } from '../../actors/coordinator/drift.js';
import { PredictionDriftMonitor } from '../../actors/coordinator/drift.js';
import { RecommendPipeline } from '../../actors/coordinator/pipeline.js';
import type { PipelinePorts, ServingModel } from '../../actors/coordinator/ports.js';
import { Source } from '../../actors/coordinator/types.js';
import { validateRecommendRequest } from '../../actors/coordinator/validate.js';
import { pipelineFakes } from '../actors/pipeline-fakes.js';

const spec = DEFAULT_FEATURE_SPEC;
const model: ServingModel = { version: 'test-v1', spec, specHash: specHash(spec), calibration: { type: 'temperature', temperature: 2 } };
const NOW_MS = Date.now();

/** A pool of `perShard` candidates per shard (2 shards); the ranker fails when `rankerFails`. */
function ports(perShard: number, rankerFails = false): PipelinePorts {
  return pipelineFakes({ perShard, ...(rankerFails ? { ranker: 'fail' as const } : {}) }).ports;
}

class CapturingDrift implements PredictionDriftSink {
  readonly calls: { requestId: string; items: ServedPrediction[]; surface: string | undefined }[] = [];
  sampled(): boolean {
    return true;
  }
  noteServed(requestId: string, items: readonly ServedPrediction[], _atMs: number, count = items.length, surface?: string): boolean {
    this.calls.push({ requestId, items: items.slice(0, count).map((i) => ({ videoId: i.videoId, pClick: i.pClick })), surface });
    return true;
  }
}

const config = resolveCoordinatorConfig({ trendingCandidates: 0 });
const query = (requestId: string, k: number, surface = 'home') => validateRecommendRequest({ userId: '7', k, context: { device: 'web', country: 'BR', localHour: 20 }, surface, requestId });

t.test('a ranked answer hands over every served item with the calibrated P(click) in the response', async (t) => {
  const drift = new CapturingDrift();
  const p = new RecommendPipeline({ ports: ports(30), config, model, itemShards: 2, drift });
  const r = await p.recommend(query('req-1', 20), Deadline.after(1000));
  t.equal(r.outcome, 'ok');
  t.equal(r.items.length, 20);
  t.equal(drift.calls.length, 1);
  t.equal(drift.calls[0]!.requestId, 'req-1');
  t.same(drift.calls[0]!.items, r.items.map((i) => ({ videoId: i.videoId, pClick: i.pClick })), 'answer order, the served (calibrated) p_click');
  t.equal(drift.calls[0]!.surface, 'home', 'a configured surface by its name');
  await p.recommend(query('req-1b', 5, 'somewhere-new'), Deadline.after(1000));
  await p.recommend(query('req-1c', 5, ''), Deadline.after(1000));
  t.same(drift.calls.slice(1).map((c) => c.surface), ['default', 'default'], 'unknown and empty surfaces as "default" (bounded label values)');
});

t.test('a popular fill is left out; an unranked answer hands nothing', async (t) => {
  const drift = new CapturingDrift();
  const short = new RecommendPipeline({ ports: ports(4), config, model, itemShards: 2, drift });
  const r = await short.recommend(query('req-2', 15), Deadline.after(1000));
  t.equal(r.items.length, 15);
  const ranked = r.items.filter((i) => i.source !== Source.FALLBACK);
  t.equal(ranked.length, 8, 'the 8 pool candidates were ranked; 7 came from the popular fill');
  t.same(drift.calls[0]!.items.map((i) => i.videoId), ranked.map((i) => i.videoId), 'only the ranked prefix');
  t.same(r.items.slice(0, 8), ranked, 'which is the head of the answer (index = slot)');

  const none = new CapturingDrift();
  const unranked = new RecommendPipeline({ ports: ports(30, true), config, model, itemShards: 2, drift: none });
  const u = await unranked.recommend(query('req-3', 10), Deadline.after(1000));
  t.match(u.degraded.join(';'), /ranking skipped/);
  t.equal(none.calls.length, 0, 'priors are not predictions: nothing tracked');
});

t.test('end to end in memory: Recommend, then its impressions and two clicks, give the observed CTR', async (t) => {
  const clock = new ManualClock(NOW_MS);
  const monitor = new PredictionDriftMonitor({ ...config.drift, sampleRate: 1 }, clock);
  const p = new RecommendPipeline({ ports: ports(30), config, model, itemShards: 2, drift: monitor, clock });
  const r = await p.recommend(query('req-4', 10), Deadline.after(1000, clock));
  const ev = (type: EventType, videoId: number, requestId = 'req-4') => ({ eventId: `${type}-${videoId}`, userId: 7, videoId, type, tsMs: 0, position: -1, watchSeconds: 0, context: UNKNOWN_CONTEXT, surface: 'home', requestId });
  monitor.noteEvents(r.items.map((i) => ev(EventType.IMPRESSION, i.videoId)));
  monitor.noteEvents([ev(EventType.CLICK, r.items[0]!.videoId), ev(EventType.CLICK, r.items[5]!.videoId), ev(EventType.CLICK, r.items[1]!.videoId, 'other-request')]);
  const s = monitor.snapshot();
  t.equal(s.impressions, 10);
  t.equal(s.clicks, 2);
  t.equal(s.observedCtr, 0.2);
  const mean = r.items.reduce((a, i) => a + i.pClick, 0) / 10;
  t.ok(Math.abs(s.meanPredictedCtr - mean) < 1e-12, 'mean of the served p_click');
  t.same([s.top.impressions, s.top.clicks], [3, 1], 'slots 0..2 are the top slice');
});
