import t from 'tap';
import { ManualClock, SeededRng } from '../../core/clock.js';
import { PoissonSchedule } from '../../loadtest/generator/arrivals.js';
import { runOpenLoop } from '../../loadtest/generator/loops.js';
import { RequestMix } from '../../loadtest/generator/request-mix.js';
import { PhaseRecorder } from '../../loadtest/measure/recorder.js';
import { GeneratorFleet } from '../../loadtest/generator/fleet.js';
import type { PhaseSpec } from '../../loadtest/generator/phase.js';
import { DEFAULT_MIX } from '../../loadtest/generator/request-mix.js';
import { startStubRecommender } from '../../loadtest/stub/stub-server.js';

t.test('a 1 s server stall shows in latency from intended send time, not in naive send-time latency', async (t) => {
  // The stub runs in this process, so its stall also blocks the generator: arrivals due during the
  // stall go out late. Measured from their actual send they look fast (coordinated omission);
  // measured from their intended time they carry the stall.
  const stub = await startStubRecommender();
  t.teardown(() => stub.stop());
  const spec: PhaseSpec = {
    name: 'stall', addresses: [stub.address], mode: 'open', segments: [{ startMs: 0, rate: 200 }], concurrency: 0, durationMs: 5000,
    maxInFlight: 2000, channels: 2, deadlineMs: 5000, mix: DEFAULT_MIX, users: { rangeStart: 0, rangeCount: 1000 },
    videos: { rangeStart: 0, rangeCount: 1000 }, seed: 21, idPrefix: 'co',
  };
  const fleet = new GeneratorFleet(1);
  t.teardown(() => fleet.close());
  let armed = false;
  // 5 s at 200/s = ~1000 requests. A 1 s stall delays the ~200 arrivals due during it (20%), while
  // timed from their send only the requests already in flight when it began carry it: on a loaded
  // machine that was ~1–2% of them (a 300 ms stall compared at p99 failed twice in fresh-clone CI
  // runs, naive p99 landing on those requests), so the two are compared at p90.
  const run = await fleet.run(spec, (tMs) => {
    if (!armed && tMs >= 2000) {
      armed = true;
      stub.stallOnNextCall(1000);
    }
  });
  const intended = run.recorder.latency();
  const naive = run.recorder.serviceTime();
  const lag = run.recorder.lag();
  t.ok(armed, 'stall was armed');
  t.ok(intended.p99 >= 250, `p99 from intended send time ${intended.p99} ms >= 250`);
  // Only the requests in flight when the stall began carry it when timed from their send; the
  // burst sent after the stall adds queueing (and a shared machine adds noise to both), so the
  // bound is relative, not absolute. The deterministic version is the next test.
  t.ok(intended.p90 - naive.p90 >= 200, `p90 from actual send time ${naive.p90} ms is at least 200 ms below ${intended.p90} ms (it hides the stall)`);
  t.ok(lag.max >= 250, `generator lag max ${lag.max} ms records the late sends`);
});

t.test('deterministic: a 300 ms stall of the sending loop is charged to the arrivals due during it', async (t) => {
  // Manual clock; answers are instant; once, at 800 ms, the loop is blocked for 300 ms (the clock
  // jumps while nothing runs), as a GC pause or a blocked event loop would do.
  const clock = new ManualClock(0);
  const recorder = new PhaseRecorder();
  const ok = { ok: true as const, value: { items: [], coverage: 1, degraded: [] as string[], modelVersion: '' } };
  const transport = { recommend: async () => ok, logEvents: async () => ok };
  let stalled = false;
  await runOpenLoop({
    schedule: PoissonSchedule.constant(200, new SeededRng(4)),
    durationMs: 2000, maxInFlight: 1000, recorder, clock, transport,
    mix: new RequestMix(DEFAULT_MIX, [1, 2, 3], [7], new SeededRng(2)),
    sleep: async (ms) => {
      // Let answers already received complete before time moves on.
      await new Promise((resolve) => setImmediate(resolve));
      if (!stalled && clock.monotonicMs() >= 800) {
        stalled = true;
        clock.advance(300);
      } else clock.advance(Math.max(ms, 0.1));
    },
  });
  const intended = recorder.latency();
  const naive = recorder.serviceTime();
  t.ok(stalled);
  t.ok(intended.p99 >= 250, `p99 from intended send time ${intended.p99} ms >= 250`);
  t.ok(naive.p99 <= 1, `p99 from actual send time ${naive.p99} ms: the naive measurement sees nothing`);
  t.ok(recorder.lag().max >= 290, `lag max ${recorder.lag().max} ms`);
});
