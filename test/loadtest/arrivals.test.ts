import t from 'tap';
import { ManualClock, SeededRng } from '../../core/clock.js';
import { expectedArrivals, PoissonSchedule } from '../../loadtest/generator/arrivals.js';
import { GeneratorFleet } from '../../loadtest/generator/fleet.js';
import { runOpenLoop } from '../../loadtest/generator/loops.js';
import type { PhaseSpec } from '../../loadtest/generator/phase.js';
import { DEFAULT_MIX, RequestMix } from '../../loadtest/generator/request-mix.js';
import { PhaseRecorder } from '../../loadtest/measure/recorder.js';
import { startStubRecommender } from '../../loadtest/stub/stub-server.js';

t.test('Poisson schedule: realised rate over 100k arrivals is within 2% of the target', async (t) => {
  for (const rate of [50, 500, 5000]) {
    const s = PoissonSchedule.constant(rate, new SeededRng(rate));
    const n = 100_000;
    let last = 0;
    for (let i = 0; i < n; i++) last = s.next();
    const realised = n / (last / 1000);
    t.ok(Math.abs(realised - rate) / rate < 0.02, `rate ${rate}: realised ${realised.toFixed(1)}/s`);
  }
});

t.test('Poisson schedule: inter-arrival gaps are exponential (coefficient of variation ~1)', async (t) => {
  const s = PoissonSchedule.constant(1000, new SeededRng(7));
  let prev = 0;
  const gaps: number[] = [];
  for (let i = 0; i < 50_000; i++) {
    const x = s.next();
    gaps.push(x - prev);
    prev = x;
  }
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  const sd = Math.sqrt(gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length);
  t.ok(Math.abs(mean - 1) < 0.02, `mean gap ${mean} ms`);
  t.ok(Math.abs(sd / mean - 1) < 0.03, `CV ${sd / mean} (a fixed-interval schedule would give 0)`);
});

t.test('piecewise schedule follows each segment rate (flash-crowd spike)', async (t) => {
  const segs = [{ startMs: 0, rate: 1000 }, { startMs: 10_000, rate: 3000 }, { startMs: 20_000, rate: 1000 }];
  const s = new PoissonSchedule(segs, new SeededRng(3));
  const counts = [0, 0, 0];
  for (let x = s.next(); x < 30_000; x = s.next()) counts[Math.floor(x / 10_000)]! += 1;
  t.ok(Math.abs(counts[0]! - 10_000) / 10_000 < 0.03, `before ${counts[0]}`);
  t.ok(Math.abs(counts[1]! - 30_000) / 30_000 < 0.03, `spike ${counts[1]}`);
  t.ok(Math.abs(counts[2]! - 10_000) / 10_000 < 0.03, `after ${counts[2]}`);
  t.equal(expectedArrivals(segs, 30_000), 50_000);
  t.throws(() => new PoissonSchedule([{ startMs: 5, rate: 1 }], new SeededRng(1)), /start at startMs 0/);
});

t.test('open loop with a manual clock sends every arrival and drops beyond maxInFlight', async (t) => {
  const clock = new ManualClock(0);
  const recorder = new PhaseRecorder();
  const pending: Array<() => void> = [];
  // A transport that never answers until released: in-flight requests pile up.
  const transport = {
    recommend: () => new Promise<never>((resolve) => pending.push(() => resolve({ ok: true, value: { items: [], coverage: 1, degraded: [], modelVersion: '' } } as never))),
    logEvents: () => Promise.resolve({ ok: true as const, value: {} }),
  };
  const mix = new RequestMix(DEFAULT_MIX, [1, 2, 3], [10, 11], new SeededRng(1));
  const schedule = PoissonSchedule.constant(1000, new SeededRng(9));
  const reference = PoissonSchedule.constant(1000, new SeededRng(9));
  let scheduled = 0;
  for (let x = reference.next(); x < 1000; x = reference.next()) scheduled++;
  const done = runOpenLoop({
    schedule, durationMs: 1000, maxInFlight: 100, mix, transport, recorder, clock,
    // Sleeping advances the manual clock: the test runs a second of schedule without waiting.
    sleep: async (ms) => clock.advance(Math.max(ms, 0.5)),
  });
  while (recorder.counts.offered < scheduled) await new Promise((r) => setImmediate(r));
  t.equal(recorder.counts.sent, 100, 'sent up to maxInFlight');
  t.equal(recorder.counts.dropped, scheduled - 100, 'the rest counted as dropped by generator');
  for (const release of pending) release();
  await done;
  t.equal(recorder.counts.completed, 100);
});

t.test('real run: 500 req/s for 2 s against a gRPC server sends the scheduled count (within 2% of 1000)', async (t) => {
  const stub = await startStubRecommender();
  t.teardown(() => stub.stop());
  const spec: PhaseSpec = {
    name: 'rate', addresses: [stub.address], mode: 'open', segments: [{ startMs: 0, rate: 500 }], concurrency: 0, durationMs: 2000,
    maxInFlight: 1000, channels: 2, deadlineMs: 20000, mix: DEFAULT_MIX, users: { rangeStart: 0, rangeCount: 1000 },
    videos: { rangeStart: 0, rangeCount: 1000 }, events: { rate: 10, batchSize: 5 }, seed: 11, idPrefix: 't',
  };
  const fleet = new GeneratorFleet(1);
  t.teardown(() => fleet.close());
  const run = await fleet.run(spec);
  const c = run.recorder.counts;
  t.equal(c.dropped, 0, 'nothing dropped at 500/s');
  t.ok(Math.abs(c.sent - 1000) / 1000 < 0.02, `sent ${c.sent}`);
  t.equal(stub.recommendCalls(), c.sent, 'server saw every request');
  t.equal(c.completed, c.sent);
  t.ok(c.eventsSent > 0 && stub.eventsAccepted() === c.eventsSent, `LogEvents stream delivered ${c.eventsSent} events`);
});

t.test('two generator processes split the rate and their histograms merge', async (t) => {
  const stub = await startStubRecommender();
  t.teardown(() => stub.stop());
  const spec: PhaseSpec = {
    name: 'fleet', addresses: [stub.address], mode: 'open', segments: [{ startMs: 0, rate: 400 }], concurrency: 0, durationMs: 1500,
    maxInFlight: 1000, channels: 1, deadlineMs: 20000, mix: DEFAULT_MIX, users: { rangeStart: 0, rangeCount: 1000 },
    videos: { rangeStart: 0, rangeCount: 1000 }, seed: 5, idPrefix: 'f',
  };
  const fleet = new GeneratorFleet(2);
  t.teardown(() => fleet.close());
  const run = await fleet.run(spec);
  t.equal(fleet.pids().length, 2);
  t.equal(run.processes, 2);
  t.equal(run.recorder.counts.sent, stub.recommendCalls(), 'merged count equals what the server saw');
  t.ok(Math.abs(run.recorder.counts.sent - 600) / 600 < 0.1, `sent ${run.recorder.counts.sent} ≈ 600`);
  t.equal(run.recorder.latency().count, run.recorder.counts.completed, 'merged histogram holds every answer');
});

t.test('several coordinators: the generator spreads its requests evenly over every address', async (t) => {
  const stubs = await Promise.all([startStubRecommender(), startStubRecommender(), startStubRecommender()]);
  t.teardown(() => Promise.all(stubs.map((s) => s.stop())));
  const spec: PhaseSpec = {
    name: 'spread', addresses: stubs.map((s) => s.address), mode: 'open', segments: [{ startMs: 0, rate: 300 }], concurrency: 0, durationMs: 1000,
    maxInFlight: 1000, channels: 2, deadlineMs: 20000, mix: DEFAULT_MIX, users: { rangeStart: 0, rangeCount: 1000 },
    videos: { rangeStart: 0, rangeCount: 1000 }, seed: 9, idPrefix: 's',
  };
  const fleet = new GeneratorFleet(1);
  t.teardown(() => fleet.close());
  const run = await fleet.run(spec);
  const sent = run.recorder.counts.sent;
  const seen = stubs.map((s) => s.recommendCalls());
  t.equal(seen.reduce((a, b) => a + b, 0), sent, 'every request reached one of the coordinators');
  // Round robin over interleaved connections: each address gets a third, give or take one.
  for (const [i, n] of seen.entries()) t.ok(Math.abs(n - sent / 3) <= 1, `coordinator ${i} got ${n} of ${sent}`);
});
