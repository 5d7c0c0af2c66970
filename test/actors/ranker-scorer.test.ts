/**
 * The in-process scorer on real ONNX Runtime in real piscina worker threads, with a tiny linear
 * ranker.onnx written by the test (ranker-fixture.ts).
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { openRankerScorer } from '../../actors/ranker/scorer.js';
import { maxAbsDiff, randomRows, writeLinearRankerModel } from './ranker-fixture.js';

const quiet = { log: () => undefined };

t.test('scores equal the model computed by hand, for batch sizes 1..300', async (t) => {
  const fx = await writeLinearRankerModel();
  t.teardown(() => fx.remove());
  const lines: string[] = [];
  const scorer = await openRankerScorer({ modelDir: fx.dir, workers: 2 }, { log: (l) => lines.push(l) });
  t.teardown(() => scorer.close());
  t.equal(scorer.width, fx.width);
  t.equal(scorer.executionProvider, 'cpu', 'no GPU on this machine');
  t.match(lines[0], /2 worker\(s\) on cpu execution provider/);
  t.same(scorer.tensors.inputs.map((i) => i.name), ['features']);
  for (const n of [1, 7, 300]) {
    const rows = randomRows(n, fx.width, n);
    const out = await scorer.score(rows, n);
    const ref = fx.reference(rows, n);
    t.ok(maxAbsDiff(out.pClick, ref.pClick) < 1e-5, `p_click matches at n=${n}`);
    t.ok(maxAbsDiff(out.watchLog1p, ref.watchLog1p) < 1e-4, `watch matches at n=${n}`);
  }
  const s = scorer.stats();
  t.equal(s.pool.executionProvider, 'cpu');
  t.equal(s.pool.rowsScored, 308);
});

t.test('concurrent requests are merged into fewer ONNX runs, with results identical to unbatched', async (t) => {
  const fx = await writeLinearRankerModel({ seed: 11 });
  t.teardown(() => fx.remove());
  const scorer = await openRankerScorer({ modelDir: fx.dir, workers: 1, batching: { maxDelayMs: 2 } }, quiet);
  t.teardown(() => scorer.close());
  const requests = Array.from({ length: 24 }, (_, i) => ({ n: 1 + (i % 9) * 7, rows: randomRows(1 + (i % 9) * 7, fx.width, 100 + i) }));
  // Unbatched: one at a time, so each is its own run.
  const alone: Float32Array[][] = [];
  for (const r of requests) {
    const out = await scorer.score(r.rows, r.n);
    alone.push([out.pClick.slice(), out.watchLog1p.slice()]);
  }
  const runsBefore = scorer.stats().pool.runs;
  t.equal(runsBefore, requests.length, 'sequential requests: one run each');
  const together = await Promise.all(requests.map((r) => scorer.score(r.rows, r.n)));
  const runs = scorer.stats().pool.runs - runsBefore;
  t.ok(runs < requests.length / 2, `24 concurrent requests took ${runs} runs`);
  requests.forEach((_, i) => {
    t.same(Array.from(together[i]!.pClick), Array.from(alone[i]![0]!), `request ${i} p_click identical`);
    t.same(Array.from(together[i]!.watchLog1p), Array.from(alone[i]![1]!), `request ${i} watch identical`);
  });
  t.ok(scorer.stats().batcher.maxBatchRowsSeen > 57, 'a batch held more rows than any one request');
});

t.test('queue bound gives RESOURCE_EXHAUSTED on the real pool', async (t) => {
  const fx = await writeLinearRankerModel();
  t.teardown(() => fx.remove());
  const scorer = await openRankerScorer({ modelDir: fx.dir, workers: 1, batching: { maxDelayMs: 0, maxQueueRows: 64, maxBatchRows: 32 } }, quiet);
  t.teardown(() => scorer.close());
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => scorer.score(randomRows(16, fx.width, i), 16)));
  const rejected = results.filter((r) => r.status === 'rejected');
  t.ok(rejected.length > 0, `${rejected.length} of 20 refused`);
  for (const r of rejected) t.equal(((r as PromiseRejectedResult).reason as UpnextError).code, StatusCode.RESOURCE_EXHAUSTED);
  t.ok(results.some((r) => r.status === 'fulfilled'), 'the ones within the bound were scored');
  t.equal(scorer.stats().batcher.rejectedQueueFull, rejected.length);
});

t.test('hot reload swaps the model; in-flight work finishes on the old one; a refused model keeps the old', async (t) => {
  const parent = await mkdtemp(path.join(tmpdir(), 'upnext-ranker-'));
  t.teardown(() => rm(parent, { recursive: true, force: true }));
  const v1 = await writeLinearRankerModel({ parent, version: 'v1', seed: 1 });
  const v2 = await writeLinearRankerModel({ parent, version: 'v2', seed: 2 });
  const bad = await writeLinearRankerModel({ parent, version: 'bad', seed: 3, featureSpecHash: 'deadbeefdeadbeef' });
  const scorer = await openRankerScorer({ modelDir: v1.dir, workers: 2, batching: { maxDelayMs: 0 } }, quiet);
  t.teardown(() => scorer.close());
  const rows = randomRows(50, v1.width, 5);
  const inFlight = Array.from({ length: 8 }, () => scorer.score(rows, 50));
  const reloading = scorer.reload(v2.dir);
  const firstResult = await inFlight[0]!;
  t.ok(maxAbsDiff(firstResult.pClick, v1.reference(rows, 50).pClick) < 1e-5, 'dispatched before the swap: scored by v1');
  await reloading;
  const settled = await Promise.all(inFlight);
  for (const r of settled) {
    const d1 = maxAbsDiff(r.pClick, v1.reference(rows, 50).pClick);
    const d2 = maxAbsDiff(r.pClick, v2.reference(rows, 50).pClick);
    t.ok(d1 < 1e-5 || d2 < 1e-5, 'every in-flight request was scored wholly by one model');
  }
  t.equal(scorer.model.version, 'v2');
  const after = await scorer.score(rows, 50);
  t.ok(maxAbsDiff(after.pClick, v2.reference(rows, 50).pClick) < 1e-5, 'after reload: v2');
  t.equal(scorer.stats().pool.reloads, 1);

  const err = (await scorer.reload(bad.dir).catch((e: unknown) => e)) as UpnextError;
  t.equal(err.code, StatusCode.FAILED_PRECONDITION, 'feature-spec hash mismatch refused');
  t.equal(scorer.model.version, 'v2', 'still serving v2');
  const still = await scorer.score(rows, 50);
  t.ok(maxAbsDiff(still.pClick, v2.reference(rows, 50).pClick) < 1e-5);
});

t.test('refuses models whose feature spec or tensors do not match', async (t) => {
  const mismatch = await writeLinearRankerModel({ featureSpecHash: '0000000000000000' });
  t.teardown(() => mismatch.remove());
  const e1 = (await openRankerScorer({ modelDir: mismatch.dir }, quiet).catch((e: unknown) => e)) as UpnextError;
  t.equal(e1.code, StatusCode.FAILED_PRECONDITION);
  t.match(e1.message, /feature/);
  const ok = await writeLinearRankerModel();
  t.teardown(() => ok.remove());
  const otherSpec = { ...DEFAULT_FEATURE_SPEC, numCategories: 8 };
  const e2 = (await openRankerScorer({ modelDir: ok.dir, featureSpec: otherSpec }, quiet).catch((e: unknown) => e)) as UpnextError;
  t.equal(e2.code, StatusCode.FAILED_PRECONDITION, 'the running spec differs from the model');
  const wrongWidth = await writeLinearRankerModel({ onnxWidth: ok.width + 3 });
  t.teardown(() => wrongWidth.remove());
  const e3 = (await openRankerScorer({ modelDir: wrongWidth.dir }, quiet).catch((e: unknown) => e)) as UpnextError;
  t.equal(e3.code, StatusCode.FAILED_PRECONDITION, 'ONNX input width disagrees with the manifest');
  t.match(e3.message, /columns/);
  const e4 = (await openRankerScorer({ modelDir: '/nonexistent/model' }, quiet).catch((e: unknown) => e)) as UpnextError;
  t.equal(e4.code, StatusCode.NOT_FOUND);
});

t.test('auto with a CUDA-capable probe tries CUDA and falls back to CPU when the provider cannot load', async (t) => {
  const fx = await writeLinearRankerModel();
  t.teardown(() => fx.remove());
  const lines: string[] = [];
  const scorer = await openRankerScorer(
    { modelDir: fx.dir, executionProvider: 'auto' },
    { probe: { cudaListed: true, cudaLibraryPresent: true, gpuVisible: true }, log: (l) => lines.push(l) },
  );
  t.teardown(() => scorer.close());
  t.equal(scorer.executionProvider, 'cpu');
  t.match(lines[0], /cpu execution provider \(fell back from cuda\)/);
  const rows = randomRows(3, fx.width, 1);
  t.ok(maxAbsDiff((await scorer.score(rows, 3)).pClick, fx.reference(rows, 3).pClick) < 1e-5);
  const forced = (await openRankerScorer({ modelDir: fx.dir, executionProvider: 'cuda' }, quiet).catch((e: unknown) => e)) as UpnextError;
  t.equal(forced.code, StatusCode.FAILED_PRECONDITION, "explicit 'cuda' without CUDA fails instead of silently using CPU");
});

t.test("explicit 'webgpu' either scores like CPU on a GPU or fails the start with FAILED_PRECONDITION", async (t) => {
  const fx = await writeLinearRankerModel();
  t.teardown(() => fx.remove());
  const opened = await openRankerScorer({ modelDir: fx.dir, executionProvider: 'webgpu' }, quiet).catch((e: unknown) => e);
  if (opened instanceof UpnextError) {
    // Without libvulkan.so.1 and a Vulkan driver (this CI box): a clear refusal, never a silent CPU run.
    t.equal(opened.code, StatusCode.FAILED_PRECONDITION);
    t.match(opened.message, /WebGPU|webgpu/);
    return;
  }
  const scorer = opened as Awaited<ReturnType<typeof openRankerScorer>>;
  t.teardown(() => scorer.close());
  t.equal(scorer.executionProvider, 'webgpu');
  const rows = randomRows(64, fx.width, 2);
  t.ok(maxAbsDiff((await scorer.score(rows, 64)).pClick, fx.reference(rows, 64).pClick) < 1e-4, 'GPU scores match the reference');
});

t.test('close fails queued requests with UNAVAILABLE and is idempotent', async (t) => {
  const fx = await writeLinearRankerModel();
  t.teardown(() => fx.remove());
  const scorer = await openRankerScorer({ modelDir: fx.dir, batching: { maxDelayMs: 0 } }, quiet);
  const settled = Promise.allSettled(Array.from({ length: 10 }, (_, i) => scorer.score(randomRows(20, fx.width, i), 20)));
  await Promise.all([scorer.close(), scorer.close()]);
  const results = await settled;
  t.ok(results[0]!.status === 'fulfilled', 'the running batch finished');
  for (const r of results) if (r.status === 'rejected') t.equal((r.reason as UpnextError).code, StatusCode.UNAVAILABLE);
  t.equal(((await scorer.score(randomRows(1, fx.width, 1), 1).catch((e: unknown) => e)) as UpnextError).code, StatusCode.UNAVAILABLE);
});
