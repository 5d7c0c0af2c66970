/**
 * Unit tests of the dynamic batcher with a fake runner, a manual clock and manual timers: no
 * threads, no sleeping.
 */
import t from 'tap';
import { ManualClock } from '../../core/clock.js';
import { Deadline } from '../../core/deadline.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import type { BatchRunner, BatchTimers, RankerOutputs } from '../../actors/ranker/batcher.js';
import { DynamicBatcher } from '../../actors/ranker/batcher.js';
import { DEFAULT_BATCHING } from '../../actors/ranker/options.js';

const W = 3;

class ManualTimers implements BatchTimers {
  #next = 1;
  readonly pending = new Map<number, { at: number; fn: () => void }>();
  constructor(readonly clock: ManualClock) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.pending.set(id, { at: this.clock.nowMs() + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  advance(ms: number): void {
    this.clock.advance(ms);
    for (const [id, timer] of [...this.pending]) {
      if (timer.at <= this.clock.nowMs()) {
        this.pending.delete(id);
        timer.fn();
      }
    }
  }
}

/** Runner whose batches complete when the test says so; output = (first, second) feature of each row. */
class FakeRunner implements BatchRunner {
  readonly batches: { rows: Float32Array; nRows: number; done: (fail?: UpnextError) => void }[] = [];
  run(rows: Float32Array, nRows: number): Promise<RankerOutputs> {
    return new Promise((resolve, reject) => {
      this.batches.push({
        rows,
        nRows,
        done: (fail) => {
          if (fail) return reject(fail);
          const pClick = new Float32Array(nRows);
          const watchLog1p = new Float32Array(nRows);
          for (let r = 0; r < nRows; r++) {
            pClick[r] = rows[r * W] ?? NaN;
            watchLog1p[r] = rows[r * W + 1] ?? NaN;
          }
          resolve({ pClick, watchLog1p });
        },
      });
    });
  }
}

function setup(overrides: Partial<{ maxBatchRows: number; maxDelayMs: number; maxQueueRows: number; concurrency: number }> = {}) {
  const clock = new ManualClock(1_000);
  const timers = new ManualTimers(clock);
  const runner = new FakeRunner();
  const batcher = new DynamicBatcher({
    ...DEFAULT_BATCHING,
    maxDelayMs: 0,
    concurrency: 1,
    ...overrides,
    width: W,
    runner,
    clock,
    timers,
  });
  return { clock, timers, runner, batcher };
}

/** `n` rows whose first feature encodes (tag, row) and second 100 + the same. */
function rowsOf(tag: number, n: number): Float32Array {
  const out = new Float32Array(n * W);
  for (let r = 0; r < n; r++) {
    out[r * W] = tag * 10 + r;
    out[r * W + 1] = 100 + tag * 10 + r;
  }
  return out;
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('requests arriving while the worker is busy merge into one batch and split back in order', async (t) => {
  const { runner, batcher } = setup({ maxDelayMs: 0, concurrency: 1 });
  const first = batcher.submit(rowsOf(0, 1), 1);
  t.equal(runner.batches.length, 1, 'an idle worker takes the first request at once (maxDelayMs 0)');
  const later = [batcher.submit(rowsOf(1, 2), 2), batcher.submit(rowsOf(2, 3), 3), batcher.submit(rowsOf(3, 1), 1)];
  t.equal(runner.batches.length, 1, 'nothing else dispatched while the only slot is busy');
  runner.batches[0]?.done();
  await first;
  await flush();
  t.equal(runner.batches.length, 2, 'the three waiting requests went out as one batch');
  t.equal(runner.batches[1]?.nRows, 6);
  runner.batches[1]?.done();
  const results = await Promise.all(later);
  t.same(Array.from(results[0]!.pClick), [10, 11]);
  t.same(Array.from(results[1]!.pClick), [20, 21, 22]);
  t.same(Array.from(results[2]!.pClick), [30]);
  t.same(Array.from(results[1]!.watchLog1p), [120, 121, 122]);
  const s = batcher.stats();
  t.equal(s.requests, 4);
  t.equal(s.batches, 2, 'two runs for four requests');
  t.equal(s.maxBatchRowsSeen, 6);
});

t.test('maxDelayMs holds an idle worker until the delay passes, then sends everything waiting', async (t) => {
  const { runner, batcher, timers } = setup({ maxDelayMs: 2, concurrency: 1 });
  const a = batcher.submit(rowsOf(1, 1), 1);
  timers.advance(1);
  const b = batcher.submit(rowsOf(2, 1), 1);
  t.equal(runner.batches.length, 0, 'waiting for others to join');
  timers.advance(1);
  t.equal(runner.batches.length, 1, 'dispatched when the oldest waited maxDelayMs');
  t.equal(runner.batches[0]?.nRows, 2);
  runner.batches[0]?.done();
  t.same(Array.from((await a).pClick), [10]);
  t.same(Array.from((await b).pClick), [20]);
  t.equal(timers.pending.size, 0, 'no timer left armed');
});

t.test('a full batch goes at once without waiting for the delay', async (t) => {
  const { runner, batcher } = setup({ maxDelayMs: 50, maxBatchRows: 4, concurrency: 1 });
  const a = batcher.submit(rowsOf(1, 2), 2);
  t.equal(runner.batches.length, 0);
  const b = batcher.submit(rowsOf(2, 2), 2);
  t.equal(runner.batches.length, 1, 'maxBatchRows reached');
  runner.batches[0]?.done();
  await Promise.all([a, b]);
});

t.test('batches never exceed maxBatchRows; an oversized request runs alone', async (t) => {
  const { runner, batcher } = setup({ maxDelayMs: 0, maxBatchRows: 4, concurrency: 1 });
  const p0 = batcher.submit(rowsOf(0, 1), 1);
  const rest = [batcher.submit(rowsOf(1, 3), 3), batcher.submit(rowsOf(2, 2), 2), batcher.submit(rowsOf(3, 6), 6), batcher.submit(rowsOf(4, 1), 1)];
  const sizes: number[] = [];
  for (let i = 0; i < 5 && runner.batches[i]; i++) {
    sizes.push(runner.batches[i]!.nRows);
    runner.batches[i]!.done();
    await flush();
  }
  await Promise.all([p0, ...rest]);
  t.same(sizes, [1, 3, 2, 6, 1], 'FIFO, whole requests, ≤4 rows except the 6-row one alone');
});

t.test('the queue bound rejects with RESOURCE_EXHAUSTED and recovers once rows drain', async (t) => {
  const { runner, batcher } = setup({ maxDelayMs: 0, maxQueueRows: 5, concurrency: 1 });
  const running = batcher.submit(rowsOf(0, 4), 4); // dispatched, not queued
  const queued = batcher.submit(rowsOf(1, 4), 4);
  const err = await batcher.submit(rowsOf(2, 2), 2).catch((e: unknown) => e);
  t.ok(err instanceof UpnextError);
  t.equal((err as UpnextError).code, StatusCode.RESOURCE_EXHAUSTED);
  t.equal(batcher.stats().rejectedQueueFull, 1);
  const tooBig = await batcher.submit(rowsOf(3, 6), 6).catch((e: unknown) => e);
  t.equal((tooBig as UpnextError).code, StatusCode.INVALID_ARGUMENT, 'a request larger than the whole queue can never fit');
  runner.batches[0]?.done();
  await running;
  await flush();
  const fits = batcher.submit(rowsOf(4, 1), 1);
  runner.batches[1]?.done();
  await queued;
  await flush();
  runner.batches[2]?.done();
  t.same(Array.from((await fits).pClick), [40]);
});

t.test('a request whose deadline passes while queued is dropped with DEADLINE_EXCEEDED, never run', async (t) => {
  const { runner, batcher, clock } = setup({ maxDelayMs: 0, concurrency: 1 });
  const running = batcher.submit(rowsOf(0, 1), 1);
  const doomed = batcher.submit(rowsOf(1, 1), 1, new Deadline(clock.nowMs() + 5, clock));
  const fine = batcher.submit(rowsOf(2, 1), 1, new Deadline(clock.nowMs() + 500, clock));
  clock.advance(10);
  runner.batches[0]?.done();
  await running;
  const err = await doomed.catch((e: unknown) => e);
  t.equal((err as UpnextError).code, StatusCode.DEADLINE_EXCEEDED);
  await flush();
  t.equal(runner.batches[1]?.nRows, 1, 'only the live request was dispatched');
  runner.batches[1]?.done();
  t.same(Array.from((await fine).pClick), [20]);
  t.equal(batcher.stats().expired, 1);
  const late = await batcher.submit(rowsOf(3, 1), 1, new Deadline(clock.nowMs() - 1, clock)).catch((e: unknown) => e);
  t.equal((late as UpnextError).code, StatusCode.DEADLINE_EXCEEDED, 'already expired on arrival');
});

t.test('a runner failure fails every request of that batch with its status', async (t) => {
  const { runner, batcher } = setup({ maxDelayMs: 0, concurrency: 1 });
  const a = batcher.submit(rowsOf(0, 1), 1);
  const b = batcher.submit(rowsOf(1, 1), 1);
  const c = batcher.submit(rowsOf(2, 1), 1);
  runner.batches[0]?.done();
  await a;
  await flush();
  runner.batches[1]?.done(new UpnextError(StatusCode.INTERNAL, 'boom'));
  for (const p of [b, c]) t.equal(((await p.catch((e: unknown) => e)) as UpnextError).code, StatusCode.INTERNAL);
  t.equal(batcher.stats().failed, 2);
});

t.test('concurrency > 1 keeps several batches in flight', async (t) => {
  const { runner, batcher } = setup({ maxDelayMs: 0, concurrency: 2 });
  const ps = [batcher.submit(rowsOf(0, 1), 1), batcher.submit(rowsOf(1, 1), 1), batcher.submit(rowsOf(2, 1), 1)];
  t.equal(runner.batches.length, 2, 'two slots, two batches');
  t.equal(batcher.stats().inFlightBatches, 2);
  runner.batches[0]?.done();
  runner.batches[1]?.done();
  await flush();
  runner.batches[2]?.done();
  await Promise.all(ps);
});

t.test('bad shapes are INVALID_ARGUMENT naming features; close fails waiting requests UNAVAILABLE', async (t) => {
  const { runner, batcher, timers } = setup({ maxDelayMs: 5, concurrency: 1 });
  const bad = (await batcher.submit(new Float32Array(5), 2).catch((e: unknown) => e)) as UpnextError;
  t.equal(bad.code, StatusCode.INVALID_ARGUMENT);
  t.equal(bad.details, 'features');
  t.same(Array.from((await batcher.submit(new Float32Array(0), 0)).pClick), [], 'zero rows answer at once');
  const waiting = batcher.submit(rowsOf(1, 1), 1);
  batcher.close();
  t.equal(((await waiting.catch((e: unknown) => e)) as UpnextError).code, StatusCode.UNAVAILABLE);
  t.equal(((await batcher.submit(rowsOf(1, 1), 1).catch((e: unknown) => e)) as UpnextError).code, StatusCode.UNAVAILABLE);
  t.equal(timers.pending.size, 0, 'close cleared the delay timer');
  t.equal(runner.batches.length, 0);
});

t.test('the caller keeps its rows: the batch is a copy', async (t) => {
  const { runner, batcher } = setup({ maxDelayMs: 0, concurrency: 1 });
  const rows = rowsOf(5, 2);
  const p = batcher.submit(rows, 2);
  t.not(runner.batches[0]?.rows.buffer, rows.buffer);
  runner.batches[0]?.done();
  await p;
  t.equal(rows[0], 50, 'caller array untouched');
});
