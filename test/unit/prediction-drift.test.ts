// The prediction-drift monitor (actors/coordinator/drift.ts): sampling by request id, the join of
// impressions and clicks to tracked (request, video) pairs, the sliding window, eviction, the alert,
// and the coordinator.drift knobs' validation. Pure: a ManualClock, no server.
import t from 'tap';
import { ManualClock } from '../../core/clock.js';
import { EventType, UNKNOWN_CONTEXT } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { DEFAULT_COORDINATOR_CONFIG, resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import type { PredictionDriftConfig } from '../../actors/coordinator/config.js';
import { DRIFT_MAX_SLOTS, PredictionDriftMonitor } from '../../actors/coordinator/drift.js';
import { sampledByRequestId } from '../../actors/coordinator/sampling.js';
import { resolveConfig } from '../../cluster/config.js';

const MIN = 60_000;

function monitor(over: Partial<PredictionDriftConfig> = {}, clock = new ManualClock(1_000 * MIN)) {
  const config: PredictionDriftConfig = { ...DEFAULT_COORDINATOR_CONFIG.drift, sampleRate: 1, ...over };
  return { m: new PredictionDriftMonitor(config, clock), clock };
}

let seq = 0;
function ev(type: EventType, requestId: string, videoId: number): InteractionEvent {
  return { eventId: `e${seq++}`, userId: 1, videoId, type, tsMs: 0, position: -1, watchSeconds: 0, context: UNKNOWN_CONTEXT, surface: 'home', requestId };
}
const imp = (r: string, v: number) => ev(EventType.IMPRESSION, r, v);
const click = (r: string, v: number) => ev(EventType.CLICK, r, v);

t.test('sampling is by request id: deterministic, at the configured share, nested across rates, never an empty id', async (t) => {
  const ids = Array.from({ length: 20_000 }, (_, i) => `req-${i}-${(i * 2654435761) % 9973}`);
  const { m } = monitor({ sampleRate: 0.05 });
  const picked = ids.filter((id) => m.sampled(id));
  t.same(ids.filter((id) => m.sampled(id)), picked, 'the same ids again');
  t.same(
    picked,
    ids.filter((id) => sampledByRequestId(id, 0.05)),
    'the feature log\'s function decides',
  );
  t.ok(picked.length > 800 && picked.length < 1200, `~5% sampled (${picked.length} of 20000)`);
  const logged = ids.filter((id) => sampledByRequestId(id, 0.01));
  t.ok(logged.length > 0 && logged.every((id) => m.sampled(id)), 'the 1% feature-log sample lies inside the 5% drift sample');
  // A second monitor (another coordinator) samples the same requests.
  t.same(ids.filter((id) => monitor({ sampleRate: 0.05 }).m.sampled(id)), picked);
  const notPicked = ids.find((id) => !m.sampled(id))!;
  t.equal(m.noteServed(notPicked, [{ videoId: 1, pClick: 0.5 }], 1_000 * MIN), false, 'an unsampled request is not tracked');
  t.equal(m.noteServed(picked[0]!, [{ videoId: 1, pClick: 0.5 }], 1_000 * MIN), true, 'a sampled one is');
  t.equal(m.snapshot().trackedRequests, 1);
  const all = monitor({ sampleRate: 1 }).m;
  t.equal(all.noteServed('', [{ videoId: 1, pClick: 0.5 }], 0), false, 'no id, nothing an event could name');
  const off = monitor({ sampleRate: 0 }).m;
  t.equal(off.noteServed('x', [{ videoId: 1, pClick: 0.5 }], 0), false, 'rate 0: off');
});

t.test('impressions and clicks join only tracked (request, video) pairs, each once', async (t) => {
  const { m, clock } = monitor();
  m.noteServed('r1', [{ videoId: 10, pClick: 0.25 }, { videoId: 11, pClick: 0.5 }, { videoId: 12, pClick: 0.75 }], clock.nowMs());
  m.noteEvents([
    imp('r1', 10),
    imp('r1', 10), // duplicate
    click('r1', 10),
    click('r1', 10), // duplicate
    imp('unknown', 10), // untracked request
    click('unknown', 11),
    imp('r1', 99), // tracked request, video not served
    imp('', 11), // no request id
    ev(EventType.WATCH, 'r1', 11), // other types are not joined
    ev(EventType.LIKE, 'r1', 12),
  ]);
  let s = m.snapshot();
  t.same({ impressions: s.impressions, clicks: s.clicks, mean: s.meanPredictedCtr, observed: s.observedCtr }, { impressions: 1, clicks: 1, mean: 0.25, observed: 1 });
  t.equal(s.ratio, 0.25 / 1 - 1);
  // The rest of the answer is seen; a replay of the whole batch changes nothing.
  const rest = [imp('r1', 11), imp('r1', 12)];
  m.noteEvents(rest);
  m.noteEvents(rest);
  s = m.snapshot();
  t.equal(s.impressions, 3);
  t.equal(s.clicks, 1);
  t.equal(s.meanPredictedCtr, 0.5);
  t.equal(s.observedCtr, 1 / 3);
  t.equal(s.ratio, 0.5 / (1 / 3) - 1);
  // A click arriving before its impression still counts, once, when the impression comes.
  m.noteServed('r2', [{ videoId: 20, pClick: 0.5 }], clock.nowMs());
  m.noteEvents([click('r2', 20)]);
  t.same([m.snapshot().impressions, m.snapshot().clicks], [3, 1], 'a click without its impression waits (a lost impression must not inflate the observed CTR)');
  m.noteEvents([imp('r2', 20), click('r2', 20)]);
  s = m.snapshot();
  t.same([s.impressions, s.clicks], [4, 2]);
  // Slots 0..2 are "top" (default topPositions 3): every pair here is in the top slots.
  t.same([s.top.impressions, s.top.clicks], [4, 2]);
});

t.test('only the first DRIFT_MAX_SLOTS slots of a long answer are remembered', async (t) => {
  const { m, clock } = monitor();
  m.noteServed('long', Array.from({ length: 150 }, (_, i) => ({ videoId: i + 1, pClick: 0.5 })), clock.nowMs());
  m.noteEvents([imp('long', DRIFT_MAX_SLOTS), imp('long', DRIFT_MAX_SLOTS + 1)]); // slots 99 and 100
  t.equal(m.snapshot().impressions, 1, 'slot 99 joined, slot 100 not');
});

t.test('no clicks: no ratio (absent, not a made-up number)', async (t) => {
  const { m, clock } = monitor();
  m.noteServed('r', [{ videoId: 1, pClick: 0.2 }], clock.nowMs());
  t.equal(m.snapshot().ratio, undefined, 'nothing joined');
  m.noteEvents([imp('r', 1)]);
  const s = m.snapshot();
  t.equal(s.impressions, 1);
  t.equal(s.ratio, undefined);
  t.notOk('ratio' in s, 'the key is absent, so /metrics shows no series');
});

t.test('the window: counts leave after windowMs (15 buckets), with a ManualClock', async (t) => {
  const { m, clock } = monitor({ windowMs: 15 * MIN, joinWindowMs: 60 * MIN });
  // Start on a bucket boundary so the arithmetic below is exact.
  m.noteServed('a', [{ videoId: 1, pClick: 0.5 }, { videoId: 2, pClick: 0.5 }], clock.nowMs());
  m.noteEvents([imp('a', 1), click('a', 1)]);
  clock.advance(5 * MIN);
  m.noteEvents([imp('a', 2)]);
  t.equal(m.snapshot().impressions, 2, 'both in the window');
  clock.advance(10 * MIN - 1); // 15 min - 1 ms after the first
  t.equal(m.snapshot().impressions, 2, 'the first bucket is still inside');
  clock.advance(1); // the first bucket's turn comes round
  let s = m.snapshot();
  t.same([s.impressions, s.clicks], [1, 0], 'the first bucket (impression + click) expired, the second stays');
  clock.advance(5 * MIN);
  s = m.snapshot();
  t.same([s.impressions, s.clicks], [0, 0], 'all expired');
  // A bucket reused on its next turn starts from zero (the old counts are not carried over).
  m.noteServed('b', [{ videoId: 3, pClick: 0.1 }], clock.nowMs());
  m.noteEvents([imp('b', 3)]);
  s = m.snapshot();
  t.same([s.impressions, s.meanPredictedCtr], [1, 0.1]);
});

t.test('events later than joinWindowMs after serving are not joined; the request is forgotten', async (t) => {
  const { m, clock } = monitor({ joinWindowMs: 10 * MIN });
  m.noteServed('old', [{ videoId: 1, pClick: 0.5 }], clock.nowMs());
  clock.advance(10 * MIN);
  m.noteEvents([imp('old', 1)]);
  t.equal(m.snapshot().impressions, 1, 'exactly joinWindowMs later: joined');
  m.noteServed('old2', [{ videoId: 2, pClick: 0.5 }], clock.nowMs());
  clock.advance(10 * MIN + 1);
  m.noteEvents([imp('old2', 2), click('old2', 2)]);
  let s = m.snapshot();
  t.same([s.impressions, s.clicks, s.lateEvents, s.trackedRequests], [1, 0, 1, 0]);
  t.equal(s.expiredRequests, 2, 'old (by age, at the snapshot) and old2 (at its late event)');
  // A request already swept by age (at a snapshot or a later noteServed) still counts as late once.
  m.noteServed('swept', [{ videoId: 3, pClick: 0.5 }], clock.nowMs());
  clock.advance(10 * MIN + 1);
  t.equal(m.snapshot().trackedRequests, 0, 'swept by the snapshot');
  m.noteEvents([imp('swept', 3), click('swept', 3)]);
  s = m.snapshot();
  t.same([s.impressions, s.lateEvents], [0, 2], 'its late events count once');
  // After another join window even the memory of it is gone.
  m.noteServed('gone', [{ videoId: 4, pClick: 0.5 }], clock.nowMs());
  clock.advance(30 * MIN);
  m.snapshot();
  m.noteEvents([imp('gone', 4)]);
  t.equal(m.snapshot().lateEvents, 2, 'beyond two join windows: not even counted late');
});

t.test('room by count: when maxTracked are remembered, new sampled requests go untracked (counted)', async (t) => {
  const { m, clock } = monitor({ maxTracked: 3 });
  const tracked = [1, 2, 3, 4, 5].map((i) => m.noteServed(`r${i}`, [{ videoId: i, pClick: 0.5 }], clock.nowMs()));
  t.same(tracked, [true, true, true, false, false]);
  let s = m.snapshot();
  t.same([s.trackedRequests, s.droppedRequests, s.sampledRequests], [3, 2, 3]);
  m.noteEvents([imp('r4', 4), imp('r5', 5)]);
  t.equal(m.snapshot().impressions, 0, 'r4, r5 untracked: not joined');
  m.noteEvents([imp('r1', 1), imp('r3', 3)]);
  s = m.snapshot();
  t.equal(s.impressions, 2, 'the oldest keep their whole join window');
  // Re-serving a tracked id keeps one entry (its latest answer) and drops nothing.
  m.noteServed('r2', [{ videoId: 20, pClick: 0.5 }], clock.nowMs());
  s = m.snapshot();
  t.same([s.trackedRequests, s.droppedRequests], [3, 2]);
  m.noteEvents([imp('r2', 2), imp('r2', 20)]);
  t.equal(m.snapshot().impressions, 3, 'only the latest answer of r2 joins');
});

/** `n` one-item requests at `slot` (items above it padded), with `clicks` of them clicked, all predicted `p`. */
function serveAndLog(m: PredictionDriftMonitor, clock: ManualClock, tag: string, n: number, clicks: number, p: number, slot = 0, surface?: string): void {
  for (let i = 0; i < n; i++) {
    const id = `${tag}-${i}`;
    const items = Array.from({ length: slot + 1 }, (_, s) => ({ videoId: 1000 + s, pClick: s === slot ? p : 0.9 }));
    m.noteServed(id, items, clock.nowMs(), items.length, surface);
    m.noteEvents(i < clicks ? [imp(id, 1000 + slot), click(id, 1000 + slot)] : [imp(id, 1000 + slot)]);
  }
}

t.test('alert: |top drift| beyond alertAbove by more than 2 standard errors, with at least minImpressions top impressions', async (t) => {
  // 10,000 impressions at an observed 0.5: the drift's standard error is (1 + r) × 1%.
  const cases: [string, number, number, number, boolean][] = [
    // [what, top impressions, predicted, (observed 0.5), alert]
    ['drift exactly +alertAbove: not above', 10_000, 0.625, 0.5, false],
    ['drift +0.375', 10_000, 0.6875, 0.5, true],
    ['drift exactly −alertAbove: not above', 10_000, 0.375, 0.5, false],
    ['drift −0.375', 10_000, 0.3125, 0.5, true],
    ['drift +0.375 but one impression short', 9_999, 0.6875, 0.5, false],
  ];
  for (const [what, n, p, observed, alert] of cases) {
    const { m, clock } = monitor({ alertAbove: 0.25, minImpressions: 10_000 });
    serveAndLog(m, clock, 'x', n, Math.round(n * observed), p);
    const s = m.snapshot();
    t.equal(s.top.impressions, n, `${what}: impressions`);
    t.equal(s.alert, alert, what);
  }
  {
    // +0.375 on 100 impressions: 0.125 beyond the bound, but the standard error is 0.19: noise.
    const { m, clock } = monitor({ alertAbove: 0.25, minImpressions: 10 });
    serveAndLog(m, clock, 'few', 100, 50, 0.6875);
    const s = m.snapshot();
    t.equal(s.top.ratio, 0.375);
    t.equal(s.alert, false, 'beyond the bound but within two standard errors: no alert');
  }
  {
    const { m, clock } = monitor({ alertAbove: 0.25, minImpressions: 10 });
    serveAndLog(m, clock, 'z', 10, 0, 0.3);
    const s = m.snapshot();
    t.equal(s.top.ratio, undefined, 'no click: no ratio');
    t.equal(s.alert, true, 'but 10 impressions predicted at 0.3 and none clicked is an alert (lost clicks or a broken model)');
  }
  {
    const { m, clock } = monitor({ alertAbove: 0.25, minImpressions: 0 });
    t.equal(m.snapshot().alert, false, 'nothing at all: no alert even with minImpressions 0');
    serveAndLog(m, clock, 'q', 2, 1, 0.5);
    t.equal(m.snapshot().alert, false, 'calibrated');
  }
});

t.test('the alert reads the top slots only; the overall figures include every slot', async (t) => {
  const { m, clock } = monitor({ alertAbove: 0.25, minImpressions: 10, topPositions: 3 });
  // Calibrated at slot 0: 10 impressions, 5 clicks, predicted 0.5.
  serveAndLog(m, clock, 'top', 100, 50, 0.5, 0);
  // Far off at slot 3 (outside the top 3): predicted 0.5, observed 0.125 (position bias).
  serveAndLog(m, clock, 'low', 160, 20, 0.5, 3);
  const s = m.snapshot();
  t.same([s.top.impressions, s.top.clicks, s.top.ratio], [100, 50, 0]);
  t.same([s.impressions, s.clicks], [260, 70]);
  t.ok(s.ratio !== undefined && s.ratio > 0.25, `overall drift ${s.ratio} is large`);
  t.equal(s.alert, false, 'no alert: the top slots are calibrated');
  const every = monitor({ alertAbove: 0.25, minImpressions: 10, topPositions: 1000 });
  serveAndLog(every.m, every.clock, 'top', 100, 50, 0.5, 0);
  serveAndLog(every.m, every.clock, 'low', 160, 20, 0.5, 3);
  t.equal(every.m.snapshot().alert, true, 'topPositions 1000 (every slot): the overall drift alerts');
});

t.test('per surface: each has its own figures and alert; a drift on one that the pool hides still alerts', async (t) => {
  const { m, clock } = monitor({ alertAbove: 0.1, minImpressions: 1_000 });
  // home over-predicts by 25% (0.5 served, 0.4 observed), up_next under-predicts by 20% (0.4 served,
  // 0.5 observed): pooled, 0.45 predicted against 0.45 observed, no drift at all.
  serveAndLog(m, clock, 'h', 4_000, 1_600, 0.5, 0, 'home');
  serveAndLog(m, clock, 'u', 4_000, 2_000, 0.4, 0, 'up_next');
  const s = m.snapshot();
  t.equal(s.top.impressions, 8_000);
  t.ok(Math.abs(s.top.ratio ?? 1) < 1e-9, `pooled drift ${s.top.ratio} is nil`);
  t.equal(s.surfaces.labeledBy, 'surface');
  t.same(Object.keys(s.surfaces.entries), ['home', 'up_next'], 'one entry per surface served, in name order');
  const home = s.surfaces.entries['home']!;
  const upNext = s.surfaces.entries['up_next']!;
  t.same([home.top.impressions, home.top.clicks, home.impressions], [4_000, 1_600, 4_000]);
  t.ok(Math.abs((home.top.ratio ?? 0) - 0.25) < 1e-9, 'home: +25%');
  t.ok(Math.abs((upNext.top.ratio ?? 0) + 0.2) < 1e-9, 'up_next: −20%');
  t.equal(home.alert, true);
  t.equal(upNext.alert, true);
  t.equal(s.alert, true, 'the alert fires although the pooled drift is nil');

  // Each surface needs minImpressions on its own: 999 drifting impressions on "default" do not alert.
  const few = monitor({ alertAbove: 0.1, minImpressions: 1_000 });
  serveAndLog(few.m, few.clock, 'ok', 5_000, 2_500, 0.5, 0, 'home');
  serveAndLog(few.m, few.clock, 'd', 999, 0, 0.5);
  const f = few.m.snapshot();
  t.equal(f.surfaces.entries['default']?.top.impressions, 999, 'a request noted without a surface counts as "default"');
  t.equal(f.surfaces.entries['default']?.alert, false, 'under minImpressions on its own surface');
  t.equal(f.surfaces.entries['home']?.alert, false, 'home is calibrated');
  t.equal(f.alert, true, 'but pooled, 5,999 impressions with the default surface\'s clicks lost drift beyond the bound');
});

t.test('coordinator.drift knobs: defaults, and a TypeError naming the bad key', async (t) => {
  t.same({ ...resolveCoordinatorConfig().drift }, { sampleRate: 0.05, maxTracked: 20_000, joinWindowMs: 600_000, windowMs: 900_000, alertAbove: 0.1, minImpressions: 1000, topPositions: 3 });
  t.equal(resolveCoordinatorConfig({ drift: { sampleRate: 0 } }).drift.sampleRate, 0, '0 = off is valid');
  t.equal(resolveCoordinatorConfig({ drift: { minImpressions: 0 } }).drift.minImpressions, 0);
  const bad: [Partial<PredictionDriftConfig>, RegExp][] = [
    [{ sampleRate: 1.5 }, /drift\.sampleRate/],
    [{ sampleRate: -0.1 }, /drift\.sampleRate/],
    [{ maxTracked: 0 }, /drift\.maxTracked/],
    [{ maxTracked: 2.5 }, /drift\.maxTracked/],
    [{ joinWindowMs: 0 }, /drift\.joinWindowMs/],
    [{ windowMs: 10 }, /drift\.windowMs/],
    [{ alertAbove: 0 }, /drift\.alertAbove/],
    [{ minImpressions: -1 }, /drift\.minImpressions/],
    [{ topPositions: 0 }, /drift\.topPositions/],
    [{ topPositions: 1001 }, /drift\.topPositions/],
  ];
  for (const [drift, key] of bad) {
    t.throws(() => resolveCoordinatorConfig({ drift }), { name: 'TypeError', message: key }, JSON.stringify(drift));
  }
  // Through the node config: named from the root.
  t.throws(() => resolveConfig({ coordinator: { drift: { sampleRate: 2 } } }), { name: 'TypeError', message: /^config coordinator\.drift\.sampleRate/ });
  t.equal(resolveConfig({ coordinator: { drift: { topPositions: 5 } } }).coordinator.drift.topPositions, 5);
});
