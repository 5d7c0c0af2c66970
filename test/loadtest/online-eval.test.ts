/**
 * Online evaluation against a real tiny cluster (nats-server, node processes, faiss, ONNX Runtime,
 * gRPC): the world's users play ~100 requests in every arm, the served arm's events go back through
 * LogEvents, and the cluster's answers must beat random feeds on watch time by a wide margin.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTinyCluster } from '../fixtures/tiny-cluster.js';
import { REPO_ROOT } from '../fixtures/assets.js';
import { ARMS, runOnlineEval } from '../../loadtest/online/eval.js';
import type { OnlineEvalReport } from '../../loadtest/online/eval.js';
import { loadSimWorld } from '../../loadtest/online/sim-world.js';
import { formatOnlineEval } from '../../loadtest/online/table.js';

const tiny = await startTinyCluster(t, 'online-eval');
const world = await loadSimWorld(tiny.assets.worldDir);

t.test('100 requests in every arm; served beats random on watch time', async (t) => {
  // 20 s per call, not the 2 s default: this checks what the arms measure, not latency, and the
  // first calls to a just-started cluster (cold sessions, JIT) beside another test file's work on a
  // 2-core machine took over 2 s in one run of the loadtest tests.
  const report = await runOnlineEval({ client: tiny.client, world, requests: 100, rate: 100, k: 10, seed: 3, logEvents: true, resamples: 400, deadlineMs: 20_000 });
  const table = formatOnlineEval(report);
  t.comment(table);
  t.equal(report.failures.requests, 0, `no failed requests (${report.failures.samples.join('; ')})`);
  t.equal(report.conditions.completed, 100);
  for (const a of ARMS) {
    t.equal(report.arms[a].requests, 100, `${a}: every request played`);
    t.ok(report.arms[a].metrics.impressionsPerRequest.value >= 1, `${a}: at least the first slot is seen`);
    t.equal(report.arms[a].ctrBySlot.length, 10, `${a}: CTR for each of k slots`);
    t.ok(table.includes(a), `${a} in the printed table`);
  }
  const served = report.arms.served;
  t.ok(served.itemsPerAnswer > 9, `the cluster answers ~k items (${served.itemsPerAnswer})`);
  t.ok((served.sourceShare.RETRIEVAL ?? 0) > 0.3, `served items mostly come from retrieval (${JSON.stringify(served.sourceShare)})`);
  t.same(Object.keys(report.arms.random.sourceShare), ['RANDOM']);
  const watch = served.metrics.watchSecondsPerRequest;
  const random = report.arms.random.metrics.watchSecondsPerRequest;
  t.ok(watch.lo <= watch.value && watch.value <= watch.hi, 'the interval holds its point estimate');
  const diff = report.differences.find((d) => d.a === 'served' && d.b === 'random' && d.metric === 'watchSecondsPerRequest');
  t.ok(diff !== undefined && diff.diff.lo > 0, `served − random watch s/request ${JSON.stringify(diff?.diff)} excludes 0`);
  t.ok(watch.value > 2 * random.value, `served ${watch.value.toFixed(1)} s/request > 2 × random ${random.value.toFixed(1)}`);
  t.ok(served.metrics.ctr.value > report.arms.random.metrics.ctr.value, 'served CTR above random');
  t.ok(report.events.published > 100 && report.events.accepted + report.events.duplicates === report.events.published, `events went through LogEvents (${JSON.stringify(report.events)})`);
  t.equal(report.servedDrift.requestsPerQuarter, 25);
});

t.test('the command prints the table and writes the JSON report', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-online-eval-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'online-eval.json');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [path.join(REPO_ROOT, 'dist/loadtest/online-eval.js'), '--target', tiny.cluster.grpcAddress, '--world', tiny.assets.worldDir, '--requests', '12', '--rate', '100', '--k', '5', '--out', out],
    { timeout: 60_000 },
  );
  t.match(stdout, /watch s \/ request/);
  const report = JSON.parse(await readFile(out, 'utf8')) as OnlineEvalReport & { target: string };
  t.equal(report.target, tiny.cluster.grpcAddress);
  t.equal(report.conditions.completed, 12);
  t.equal(report.conditions.logEvents, false);
  t.equal(report.events.published, 0, 'no events without --log-events');
  t.same(Object.keys(report.arms), [...ARMS]);
});
