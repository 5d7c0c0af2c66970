// The load test asks for the server's per-stage timings (RecommendRequest.debug) and reports their
// percentiles per phase, so a report says which stage a slow answer waited in.
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { slowestStageText } from '../../loadtest/bench/end-to-end.js';
import type { CallResult, RecommendResponseMessage } from '../../loadtest/client/recommender-client.js';
import { GeneratorFleet } from '../../loadtest/generator/fleet.js';
import type { PhaseSpec } from '../../loadtest/generator/phase.js';
import { DEFAULT_MIX, RequestMix } from '../../loadtest/generator/request-mix.js';
import { SERVER_STAGES, classify, slowestStage } from '../../loadtest/measure/outcome.js';
import { PhaseRecorder } from '../../loadtest/measure/recorder.js';
import { ScenarioConfigError, parseScenario } from '../../loadtest/scenarios/config.js';
import { startStubRecommender } from '../../loadtest/stub/stub-server.js';

const timings = (retrievalMs: number, totalMs: number) => ({ admissionMs: 0.1, userStateMs: 0.5, retrievalMs, rankingMs: 2, policyMs: 0.2, totalMs });
const answer = (t?: ReturnType<typeof timings> | null): CallResult<RecommendResponseMessage> => ({
  ok: true, value: { items: [], coverage: 1, degraded: [], modelVersion: 'm', ...(t !== undefined ? { timings: t } : {}) },
});

t.test('classify carries the stage timings of an answer that has them, and none otherwise', async (t) => {
  t.same(classify(answer(timings(3, 7))).stageMs, { admission: 0.1, userState: 0.5, retrieval: 3, ranking: 2, policy: 0.2, total: 7 });
  t.equal(classify(answer(null)).stageMs, undefined, 'null timings (proto-loader default) = none');
  t.equal(classify(answer()).stageMs, undefined);
  t.equal(classify({ ok: false, code: 14, message: 'down' }).stageMs, undefined, 'errors carry none');
});

t.test('the recorder keeps a histogram per stage and merges them across generator processes', async (t) => {
  const a = new PhaseRecorder();
  const b = new PhaseRecorder();
  const none = new PhaseRecorder();
  // 99 fast answers in a, one slow retrieval in b: merged, the slow one is the p99.9 and the max.
  for (let i = 0; i < 99; i++) a.completed(i, 8, 8, classify(answer(timings(3, 7))));
  b.completed(0, 60, 60, classify(answer(timings(50, 55))));
  none.completed(0, 5, 5, classify(answer(null)));
  t.equal(none.serverStages(), undefined, 'no answer carried timings: no stages');
  t.equal(none.snapshot().stages, undefined, 'and none in the snapshot');
  a.merge(b.snapshot());
  a.merge(none.snapshot());
  const stages = a.serverStages();
  t.ok(stages !== undefined);
  for (const stage of SERVER_STAGES) t.equal(stages![stage].count, 100, `${stage}: the 100 timed answers (the untimed one is not counted)`);
  t.ok(Math.abs(stages!.retrieval.p50 - 3) <= 0.03, `retrieval p50 ${stages!.retrieval.p50} ≈ 3 ms`);
  t.ok(Math.abs(stages!.retrieval.max - 50) <= 0.5, `retrieval max ${stages!.retrieval.max} ≈ 50 ms (from the merged snapshot)`);
  t.ok(Math.abs(stages!.total.max - 55) <= 0.6, `total max ${stages!.total.max} ≈ 55 ms`);
  t.equal(a.latency().count, 101, 'latency counts every answer');
});

t.test('a stage the server never reached (0 ms: a shed request) is left out of that stage only', async (t) => {
  const r = new PhaseRecorder();
  for (let i = 0; i < 9; i++) r.completed(i, 20, 20, classify(answer(timings(10, 15))));
  // Shed at admission: only admission and total ran.
  r.completed(9, 3, 3, classify(answer({ admissionMs: 2, userStateMs: 0, retrievalMs: 0, rankingMs: 0, policyMs: 0, totalMs: 2.5 })));
  const st = r.serverStages()!;
  t.equal(st.admission.count, 10);
  t.equal(st.total.count, 10, 'total is kept for every answer');
  t.equal(st.retrieval.count, 9, 'the shed answer is not a 0 ms retrieval');
  t.ok(Math.abs(st.retrieval.p50 - 10) < 0.1, `retrieval p50 ${st.retrieval.p50} ms stays the retrievals'`);
  t.ok(Math.abs(st.admission.max - 2) < 0.05, 'the shed answer\'s admission wait is kept');
});

t.test('the slowest stage is the one with the highest p99, total left out', async (t) => {
  const at = (p99: Partial<Record<(typeof SERVER_STAGES)[number], number>>) =>
    Object.fromEntries(SERVER_STAGES.map((s) => [s, { p50: 0, p99: p99[s] ?? 1 }])) as Record<(typeof SERVER_STAGES)[number], { p50: number; p99: number }>;
  t.equal(slowestStage(at({ retrieval: 31, ranking: 9, total: 40 })), 'retrieval');
  t.equal(slowestStage(at({ userState: 12, ranking: 13, total: 99 })), 'ranking');
  t.equal(slowestStage(at({ admission: 5 })), 'admission');
  t.equal(slowestStageText(at({ retrieval: 31.04, total: 40 })), 'retrieval 31.0');
  t.equal(slowestStageText(null), '—');
});

t.test('requests ask for timings by default; mix.stageTimings false sends them as a production caller does', async (t) => {
  const on = new RequestMix(DEFAULT_MIX, [1, 2, 3], [7], new SeededRng(1));
  t.equal(on.recommendRequest(0).debug, true);
  const off = new RequestMix({ ...DEFAULT_MIX, stageTimings: false }, [1, 2, 3], [7], new SeededRng(1));
  t.equal(off.recommendRequest(0).debug, undefined);
  const steady = { kind: 'steady', load: { rate: 10, durationS: 1 } };
  t.equal(parseScenario(steady).mix.stageTimings, true, 'scenario default');
  t.equal(parseScenario({ ...steady, mix: { stageTimings: false } }).mix.stageTimings, false);
  let thrown: unknown;
  try {
    parseScenario({ ...steady, mix: { stageTimings: 'yes' } });
  } catch (err) {
    thrown = err;
  }
  t.ok(thrown instanceof ScenarioConfigError, 'a bad value is refused');
  t.equal((thrown as ScenarioConfigError).field, 'mix.stageTimings', 'naming the field');
  t.match((thrown as ScenarioConfigError).message, /true or false/);
});

t.test('against a gRPC server: the phase reports the server\'s stages, and latency includes them', async (t) => {
  const stub = await startStubRecommender({ delayMs: 25 });
  t.teardown(() => stub.stop());
  const fleet = new GeneratorFleet(1);
  t.teardown(() => fleet.close());
  const spec = (stageTimings: boolean): PhaseSpec => ({
    name: `timings-${stageTimings}`, addresses: [stub.address], mode: 'open', segments: [{ startMs: 0, rate: 100 }], concurrency: 0, durationMs: 1500,
    maxInFlight: 500, channels: 1, deadlineMs: 5000, mix: { ...DEFAULT_MIX, stageTimings }, users: { rangeStart: 0, rangeCount: 100 },
    videos: { rangeStart: 0, rangeCount: 100 }, seed: 5, idPrefix: 'st',
  });
  const on = await fleet.run(spec(true));
  const stages = on.recorder.serverStages();
  t.ok(stages !== undefined, 'answers carried timings');
  t.equal(stages!.total.count, on.recorder.latency().count, 'every answer timed');
  t.ok(Math.abs(stages!.ranking.p50 - 25) <= 0.3, `the stub's one stage: ranking p50 ${stages!.ranking.p50} ≈ its 25 ms delay`);
  t.equal(slowestStage(stages!), 'ranking');
  t.equal(stages!.retrieval.count, 0, 'the stub runs no retrieval: none counted');
  const off = await fleet.run(spec(false));
  t.ok(off.recorder.latency().count > 0);
  t.equal(off.recorder.serverStages(), undefined, 'timings off: the server was not asked');
});

t.test('a stall outside the pipeline shows in the client\'s latency and not in the pipeline\'s total', async (t) => {
  // The stub's stall is a busy wait before its handler answers: like an event-loop stall of a node,
  // it is outside the time the server reports for its stages.
  const stub = await startStubRecommender({ delayMs: 5 });
  t.teardown(() => stub.stop());
  const fleet = new GeneratorFleet(1);
  t.teardown(() => fleet.close());
  let armed = false;
  const run = await fleet.run({
    name: 'outside', addresses: [stub.address], mode: 'open', segments: [{ startMs: 0, rate: 100 }], concurrency: 0, durationMs: 2000,
    maxInFlight: 500, channels: 1, deadlineMs: 5000, mix: DEFAULT_MIX, users: { rangeStart: 0, rangeCount: 100 },
    videos: { rangeStart: 0, rangeCount: 100 }, seed: 9, idPrefix: 'so',
  }, (tMs) => {
    if (!armed && tMs >= 800) {
      armed = true;
      stub.stallOnNextCall(300);
    }
  });
  const stages = run.recorder.serverStages()!;
  t.ok(armed, 'stall armed');
  t.ok(run.recorder.latency().max >= 250, `the client saw the stall: max ${run.recorder.latency().max} ms`);
  t.ok(stages.total.max < 50, `the pipeline's total did not: max ${stages.total.max} ms`);
});
