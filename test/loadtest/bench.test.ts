import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { benchReport, ceilingRatio, qpsPerCore, writeBenchReport } from '../../loadtest/bench/ceiling-ratio.js';
import { benchFaiss, recallAtK } from '../../loadtest/bench/faiss-bench.js';
import { benchGrpc } from '../../loadtest/bench/grpc-bench.js';
import { benchNats } from '../../loadtest/bench/nats-bench.js';
import { benchHops } from '../../loadtest/bench/hop-bench.js';

t.test('ceiling ratio and bench.json shape', async (t) => {
  t.equal(ceilingRatio(500, 2000), 0.25);
  t.equal(ceilingRatio(undefined, 2000), undefined);
  t.equal(ceilingRatio(500, 0), undefined);
  t.equal(qpsPerCore(1000, 2), 500);
  t.equal(qpsPerCore(1000, 0), undefined);
  const r = benchReport({
    endToEnd: { qpsPerCore: 400, p50Ms: 5, p99Ms: 20, items: 1e6, recallAt100: 0.9, busiestThread: { process: 'n1', thread: 'main', msPerRequest: 1.57, utilisation: 0.235 } }, ceilingQpsPerCore: 1000,
    ranker: { batch1: 20_000, batch512: 200_000 }, faiss: { qpsPerCore: 1500, recallAt100: 0.96 }, conditions: { host_cpus: 2 },
  });
  t.same(Object.keys(r), ['end_to_end', 'ceiling', 'ceiling_ratio', 'ranker', 'faiss', 'conditions']);
  t.equal(r.ceiling_ratio, 0.4);
  t.same(r.faiss, { qps_per_core: 1500, recall_at_100: 0.96, recall_at_100_model_queries: null }, 'a model without retrieval queries: null');
  t.equal(benchReport({ faiss: { qpsPerCore: 1, recallAt100: 0.9, recallAt100ModelQueries: 0.95 }, conditions: {} }).faiss.recall_at_100_model_queries, 0.95);
  t.same(r.end_to_end, { qps_per_core: 400, p50_ms: 5, p99_ms: 20, items: 1e6, recall_at_100: 0.9, busiest_thread: { process: 'n1', thread: 'main', ms_per_request: 1.57, utilisation: 0.235 }, stages_p50_ms: null });
  t.same(r.ceiling, { qps_per_core: 1000, stages_p50_ms: null }, 'stage medians unmeasured: null');
  const staged = benchReport({
    endToEnd: { qpsPerCore: 400, p50Ms: 5, p99Ms: 20, items: 1e6, stagesP50Ms: { admission: 0.1, userState: 1, retrieval: 3, ranking: 4, policy: 0.5, total: 9 } },
    ceilingStagesP50Ms: { admission: 0, userState: 0.2, retrieval: 2, ranking: 1.5, policy: 0.3, total: 4 },
    conditions: {},
  });
  t.same(staged.end_to_end.stages_p50_ms, { admission: 0.1, user_state: 1, retrieval: 3, ranking: 4, policy: 0.5, total: 9 }, 'cluster stage medians under their bench.json names');
  t.same(staged.ceiling.stages_p50_ms, { admission: 0, user_state: 0.2, retrieval: 2, ranking: 1.5, policy: 0.3, total: 4 }, 'ceiling stage medians beside them');
  const empty = benchReport({ conditions: {} });
  t.equal(empty.ceiling_ratio, null, 'unmeasured parts are null, not 0');
  t.equal(empty.faiss.qps_per_core, null);
  t.equal(empty.end_to_end.busiest_thread, null, 'busiest thread unmeasured: null');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lt-bench-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = await writeBenchReport(r, path.join(dir, 'sub', 'bench.json'));
  t.same(JSON.parse(await readFile(file, 'utf8')), r);
});

t.test('recall@k counts overlap per query', async (t) => {
  const truth = BigInt64Array.from([1n, 2n, 3n, 4n]);
  t.equal(recallAtK(truth, BigInt64Array.from([1n, 9n, 4n, 3n]), 2), 0.75);
  t.equal(recallAtK(truth, BigInt64Array.from([-1n, -1n, -1n, -1n]), 2), 0, 'padding labels never count');
});

t.test('faiss bench reaches the recall target against brute force (tiny corpus)', async (t) => {
  const r = benchFaiss({ n: 3000, queries: 50, targetRecall: 0.9, nlist: 32 });
  t.same(r.results.map((x) => x.index), ['IVF32,Flat', 'HNSW32']);
  for (const x of r.results) {
    t.ok(x.metTarget && x.recallAtK >= 0.9, `${x.index} ${x.setting}: recall ${x.recallAtK}`);
    t.ok(x.qpsPerCore > 0);
  }
});

t.test('NATS request/reply bench against a real nats-server', async (t) => {
  const r = await benchNats({ requests: 300, concurrency: [1, 8] });
  t.equal(r.results.length, 2);
  for (const x of r.results) t.ok(x.roundTripsPerSecond > 0 && x.p50Ms > 0, `in flight ${x.inFlight}: ${x.roundTripsPerSecond.toFixed(0)}/s`);
  t.ok(r.results.some((x) => x.serverCores > 0), 'nats-server CPU read from /proc');
});

t.test('gRPC unary bench against the stub in its own process', async (t) => {
  const r = await benchGrpc({ calls: 300, concurrency: [1, 8], channels: 2 });
  t.equal(r.results.length, 2);
  for (const x of r.results) t.ok(x.callsPerSecond > 0 && x.p50Ms > 0, `in flight ${x.inFlight}: ${x.callsPerSecond.toFixed(0)}/s`);
  t.ok(r.results.some((x) => x.serverCores > 0), 'server CPU read from /proc');
});

t.test('worker-hop bench: back to back and paced rows, CPU counted', async (t) => {
  const r = await benchHops({ hotTrips: 300, pacedTrips: 10, gapsMs: [2] });
  t.same(r.results.map((x) => x.mode), ['back to back', 'every 2 ms: timer + hop', 'every 2 ms: timer alone']);
  t.same(r.results.map((x) => x.trips), [300, 10, 10]);
  t.ok(r.results[0]!.cpuUsPerTrip > 0, `a round trip costs CPU (${r.results[0]!.cpuUsPerTrip.toFixed(1)} µs)`);
});
