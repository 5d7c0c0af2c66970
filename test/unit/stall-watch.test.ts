/**
 * The node's stall watch: GC pauses and event-loop delay reach the histograms, lines are logged at
 * or over the threshold (never with 0), a real blocked loop and real GCs are seen, and /metrics
 * renders both histograms.
 */
import t from 'tap';
import { constants } from 'node:perf_hooks';
import type { PerformanceEntry } from 'node:perf_hooks';
import { StallWatch, gcEntryKind } from '../../cluster/node/stall-watch.js';
import { renderMetrics } from '../../cluster/node/metrics.js';
import { resolveConfig } from '../../cluster/config.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('GC kinds by name', async (t) => {
  const entry = (kind?: number) => ({ detail: kind === undefined ? undefined : { kind } }) as unknown as PerformanceEntry;
  t.equal(gcEntryKind(entry(constants.NODE_PERFORMANCE_GC_MINOR)), 'minor');
  t.equal(gcEntryKind(entry(constants.NODE_PERFORMANCE_GC_MAJOR)), 'major');
  t.equal(gcEntryKind(entry(constants.NODE_PERFORMANCE_GC_INCREMENTAL)), 'incremental');
  t.equal(gcEntryKind(entry(constants.NODE_PERFORMANCE_GC_WEAKCB)), 'weakcb');
  t.equal(gcEntryKind(entry(undefined)), 'other');
});

t.test('pauses at or over the threshold are logged; all are counted', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const w = new StallWatch({ node: 'n1', logOverMs: 50, log: (l) => lines.push(l), windowMs: 60_000 });
  t.teardown(() => w.stop());
  w.recordGc('major', 49.9, 1000);
  w.recordGc('major', 50, 2000);
  w.recordGc('minor', 120, 3000);
  w.recordLoopWindow(12, 4000);
  w.recordLoopWindow(75, 5000);
  t.same(lines, [
    { event: 'gc_pause', node: 'n1', kind: 'major', ms: 50, atMs: 2000 },
    { event: 'gc_pause', node: 'n1', kind: 'minor', ms: 120, atMs: 3000 },
    { event: 'event_loop_stall', node: 'n1', maxMs: 75, atMs: 5000 },
  ]);
  const s = w.snapshot();
  t.equal(s.gcPauses.major.count, 2);
  t.equal(s.gcPauses.minor.count, 1);
  t.equal(s.eventLoopWindowMax.count, 2);
  t.equal(s.stallsLogged, 3);
});

t.test('threshold 0 logs nothing and still counts', async (t) => {
  const lines: unknown[] = [];
  const w = new StallWatch({ node: 'n1', logOverMs: 0, log: (l) => lines.push(l), windowMs: 60_000 });
  t.teardown(() => w.stop());
  w.recordGc('major', 500);
  w.recordLoopWindow(500);
  t.equal(lines.length, 0);
  t.equal(w.snapshot().gcPauses.major.count, 1);
  t.throws(() => new StallWatch({ node: 'n1', logOverMs: -1, log: () => {} }), /logOverMs/);
});

t.test('a blocked event loop is seen and logged', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const w = new StallWatch({ node: 'n1', logOverMs: 80, log: (l) => lines.push(l), windowMs: 100 });
  t.teardown(() => w.stop());
  await sleep(150);
  const blockedAt = Date.now();
  const until = blockedAt + 150;
  while (Date.now() < until) {
    // hold the main thread, as a long synchronous task would
  }
  await sleep(350);
  const stall = lines.find((l) => l['event'] === 'event_loop_stall');
  t.ok(stall, 'an event_loop_stall line');
  t.ok(Number(stall?.['maxMs']) >= 120 && Number(stall?.['maxMs']) < 400, `worst lateness ${String(stall?.['maxMs'])} ms for a 150 ms block`);
  const at = Number(stall?.['atMs']) - blockedAt;
  t.ok(at <= 5 && at >= -130, `placed in the window it began in: ${at} ms from the block's start (windows of 100 ms)`);
  t.ok(w.snapshot().eventLoopWindowMax.count >= 2, 'a window per 100 ms');
});

t.test("the probes' p99 since the previous read (the /metrics gauge) sees a block, then starts afresh", async (t) => {
  const w = new StallWatch({ node: 'n1', logOverMs: 0, log: () => {}, windowMs: 50 });
  t.teardown(() => w.stop());
  await sleep(120);
  w.takeLoopDelayP99Ms();
  const until = Date.now() + 150;
  while (Date.now() < until) {
    // block
  }
  await sleep(120);
  const p99 = w.takeLoopDelayP99Ms();
  t.ok(p99 >= 120, `p99 ${p99} ms over a handful of probes, one 150 ms late`);
  await sleep(150);
  const after = w.takeLoopDelayP99Ms();
  t.ok(after < 50, `${after} ms once read: the block is not counted twice`);
});

t.test('real garbage collections reach the histograms', async (t) => {
  const w = new StallWatch({ node: 'n1', logOverMs: 0, log: () => {}, windowMs: 60_000 });
  t.teardown(() => w.stop());
  let keep: number[][] = [];
  for (let i = 0; i < 200_000; i++) {
    keep.push([i, i + 1, i + 2]);
    if (keep.length > 1000) keep = [];
  }
  await sleep(50); // the observer's entries arrive asynchronously
  const s = w.snapshot();
  const total = Object.values(s.gcPauses).reduce((a, h) => a + h.count, 0);
  t.ok(total > 0, `${total} GC pauses observed`);
});

t.test('/metrics renders both histograms and the logged count', async (t) => {
  const w = new StallWatch({ node: 'n1', logOverMs: 50, log: () => {}, windowMs: 60_000 });
  t.teardown(() => w.stop());
  w.recordGc('major', 120);
  w.recordLoopWindow(3);
  const text = renderMetrics({
    node: 'n1',
    cluster: 'c',
    mapVersion: 1,
    modelVersion: 'v',
    process: { cpuSecondsTotal: 1, rssBytes: 1, heapUsedBytes: 1, eventLoopDelayP99Ms: 1, uptimeSeconds: 1, stalls: w.snapshot() },
    actors: [],
  });
  t.match(text, /# TYPE nodejs_gc_pause_seconds histogram/);
  t.match(text, /nodejs_gc_pause_seconds_bucket\{cluster="c",node="n1",kind="major",le="0\.1"\} 0\n/);
  t.match(text, /nodejs_gc_pause_seconds_bucket\{cluster="c",node="n1",kind="major",le="0\.15"\} 1\n/);
  t.match(text, /nodejs_gc_pause_seconds_count\{cluster="c",node="n1",kind="minor"\} 0\n/);
  t.match(text, /nodejs_eventloop_window_max_delay_seconds_count\{cluster="c",node="n1"\} 1\n/);
  t.match(text, /upnext_node_stalls_logged_total\{cluster="c",node="n1"\} 1\n/);
});

t.test('node.stallLogMs: default 50, bounded', async (t) => {
  t.equal(resolveConfig({}).node.stallLogMs, 50);
  t.equal(resolveConfig({ node: { stallLogMs: 0 } }).node.stallLogMs, 0);
  t.throws(() => resolveConfig({ node: { stallLogMs: -5 } }), /node\.stallLogMs/);
});
