/**
 * Unit tests of the local-first ranking path: the choice logic of LocalFirstRankerScorer with a
 * fake local replica and a fake remote, and the batcher's hand-over (submitOwned) with a fake
 * runner. No threads, no sockets, no sleeping (manual clock and timers).
 */
import t from 'tap';
import { ManualClock } from '../../core/clock.js';
import { Deadline } from '../../core/deadline.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import type { BatchRunner, BatchTimers, OwnedScoreOutcome, RankerLoad, RankerOutputs } from '../../actors/ranker/batcher.js';
import { BatchRunFailure, DynamicBatcher } from '../../actors/ranker/batcher.js';
import { DEFAULT_BATCHING } from '../../actors/ranker/options.js';
import type { LocalRanker, RemoteRanker, RemoteRankerScores } from '../../actors/ranker/local-first.js';
import { LocalFirstRankerScorer, localOverloaded } from '../../actors/ranker/local-first.js';
import { applyOverrides, describeConfig, resolveConfig } from '../../cluster/config.js';

const W = 4;

function rowsOf(n: number, base = 0): Float32Array {
  return Float32Array.from({ length: n * W }, (_, i) => base + i / 8);
}

const IDLE: RankerLoad = { queuedRows: 0, inFlightBatches: 0, concurrency: 1, maxBatchRows: 1024 };

/** A local replica whose answer the test scripts; records what it was given. */
class FakeLocal implements LocalRanker {
  readonly address = '127.0.0.1:7001';
  loadNow: RankerLoad = IDLE;
  readonly calls: { rows: Float32Array; nRows: number; deadline: Deadline | undefined }[] = [];
  next: (rows: Float32Array, nRows: number) => OwnedScoreOutcome = (rows, nRows) => ({
    kind: 'scored',
    outputs: { pClick: rows.subarray(0, nRows).map(() => 0.25), watchLog1p: new Float32Array(nRows).fill(1) },
  });
  async scoreOwned(rows: Float32Array, nRows: number, deadline?: Deadline): Promise<OwnedScoreOutcome> {
    this.calls.push({ rows, nRows, deadline });
    return this.next(rows, nRows);
  }
  load(): RankerLoad {
    return this.loadNow;
  }
}

/** A remote replica set that answers 0.75 for every row (or fails when told). */
class FakeRemote implements RemoteRanker {
  readonly calls: { rows: Float32Array; values: number[]; nRows: number; deadline: Deadline }[] = [];
  fail: UpnextError | undefined;
  async score(rows: Float32Array, nRows: number, deadline: Deadline): Promise<RemoteRankerScores> {
    this.calls.push({ rows, values: [...rows], nRows, deadline });
    if (this.fail) throw this.fail;
    return { pClick: new Float32Array(nRows).fill(0.75), watchLog1p: new Float32Array(nRows).fill(2), replica: '127.0.0.1:7002' };
  }
}

function setup(opts: { local?: boolean; hasRemote?: boolean; minRemoteRetryMs?: number } = {}) {
  const clock = new ManualClock(1_000_000);
  const local = new FakeLocal();
  const remote = new FakeRemote();
  let present = opts.local ?? true;
  const scorer = new LocalFirstRankerScorer({
    local: () => (present ? local : undefined),
    remote,
    hasRemote: () => opts.hasRemote ?? true,
    ...(opts.minRemoteRetryMs !== undefined ? { minRemoteRetryMs: opts.minRemoteRetryMs } : {}),
  });
  return { clock, local, remote, scorer, setPresent: (p: boolean) => (present = p), deadline: (ms: number) => Deadline.after(ms, clock) };
}

t.test('localOverloaded: only when every slot is busy and the waiting rows fill the next batch', async (t) => {
  t.equal(localOverloaded(IDLE), false, 'idle');
  t.equal(localOverloaded({ queuedRows: 2000, inFlightBatches: 1, concurrency: 2, maxBatchRows: 1024 }), false, 'a slot is free');
  t.equal(localOverloaded({ queuedRows: 550, inFlightBatches: 1, concurrency: 1, maxBatchRows: 1024 }), false, 'busy, one request waiting');
  t.equal(localOverloaded({ queuedRows: 1023, inFlightBatches: 2, concurrency: 2, maxBatchRows: 1024 }), false, 'busy, one row short of a batch');
  t.equal(localOverloaded({ queuedRows: 1024, inFlightBatches: 2, concurrency: 2, maxBatchRows: 1024 }), true, 'busy and a full batch waiting');
  t.equal(localOverloaded({ queuedRows: 1100, inFlightBatches: 1, concurrency: 1, maxBatchRows: 1024 }), true, 'busy, two coordinator requests waiting');
});

t.test('local preferred: an idle local replica answers, the remote is not called', async (t) => {
  const { local, remote, scorer, deadline } = setup();
  const rows = rowsOf(3);
  const d = deadline(40);
  const r = await scorer.score(rows, 3, d);
  t.equal(r.path, 'local');
  t.equal(r.replica, local.address);
  t.same([...r.pClick], [0.25, 0.25, 0.25]);
  t.equal(local.calls.length, 1);
  t.equal(local.calls[0]?.rows, rows, 'the caller rows themselves go to the local replica (no copy)');
  t.equal(local.calls[0]?.deadline, d, 'with the same deadline');
  t.equal(remote.calls.length, 0);
  t.same(scorer.stats(), { localAnswered: 1, remoteAnswered: 0, remoteReasons: { noLocal: 0, overloaded: 0, localFailed: 0 }, localFailures: 0, failed: 0 });
});

t.test('overloaded local → remote; overloaded without a remote → local anyway', async (t) => {
  const { local, remote, scorer, deadline } = setup();
  local.loadNow = { queuedRows: 1100, inFlightBatches: 1, concurrency: 1, maxBatchRows: 1024 };
  const r = await scorer.score(rowsOf(200), 200, deadline(40));
  t.equal(r.path, 'remote');
  t.equal(r.replica, '127.0.0.1:7002');
  t.equal(local.calls.length, 0, 'the overloaded local replica is not queued on');
  t.equal(remote.calls.length, 1);
  t.equal(scorer.stats().remoteReasons.overloaded, 1);

  const lone = setup({ hasRemote: false });
  lone.local.loadNow = local.loadNow;
  const r2 = await lone.scorer.score(rowsOf(200), 200, lone.deadline(40));
  t.equal(r2.path, 'local', 'no other replica: the local queue it is');
  t.equal(lone.remote.calls.length, 0);
});

t.test('local error → one remote try with the rows it gave back, within the same deadline', async (t) => {
  const { local, remote, scorer, deadline } = setup();
  const rows = rowsOf(2, 5);
  const expected = [...rows];
  const back = new Float32Array(rows); // what a worker hands back after a failed run
  local.next = () => ({ kind: 'failed', error: new UpnextError(StatusCode.INTERNAL, 'ranker inference failed: boom'), rows: back });
  const d = deadline(40);
  const r = await scorer.score(rows, 2, d);
  t.equal(r.path, 'remote');
  t.equal(remote.calls.length, 1);
  t.equal(remote.calls[0]?.rows, back, 'the returned rows go to the remote');
  t.same(remote.calls[0]?.values, expected, 'with the same values');
  t.equal(remote.calls[0]?.deadline, d, 'and the same deadline');
  t.match(scorer.stats(), { localAnswered: 0, remoteAnswered: 1, remoteReasons: { localFailed: 1 }, localFailures: 1, failed: 0 });

  // RESOURCE_EXHAUSTED (queue full) and UNAVAILABLE (stopping) are retried the same way.
  for (const code of [StatusCode.RESOURCE_EXHAUSTED, StatusCode.UNAVAILABLE]) {
    local.next = (rs) => ({ kind: 'failed', error: new UpnextError(code, 'x'), rows: rs });
    t.equal((await scorer.score(rowsOf(1), 1, deadline(40))).path, 'remote', StatusCode[code]);
  }
});

t.test('local error with no remote try: rows lost, not retryable, too little time, or no remote', async (t) => {
  const lost = setup();
  lost.local.next = () => ({ kind: 'failed', error: new UpnextError(StatusCode.UNAVAILABLE, 'ranker worker failed: exited'), rows: undefined });
  await t.rejects(lost.scorer.score(rowsOf(1), 1, lost.deadline(40)), { code: StatusCode.UNAVAILABLE, message: /worker failed/ }, 'rows lost with the worker');
  t.equal(lost.remote.calls.length, 0);
  t.match(lost.scorer.stats(), { localFailures: 1, failed: 1, remoteReasons: { localFailed: 0 } });

  for (const code of [StatusCode.INVALID_ARGUMENT, StatusCode.DEADLINE_EXCEEDED]) {
    const s = setup();
    s.local.next = (rs) => ({ kind: 'failed', error: new UpnextError(code, 'no'), rows: rs });
    await t.rejects(s.scorer.score(rowsOf(1), 1, s.deadline(40)), { code }, `${StatusCode[code]} is not retried`);
    t.equal(s.remote.calls.length, 0);
  }

  const late = setup({ minRemoteRetryMs: 2 });
  const d = late.deadline(10);
  late.local.next = (rs) => {
    late.clock.advance(9); // the local call used up the deadline but 1 ms
    return { kind: 'failed', error: new UpnextError(StatusCode.INTERNAL, 'slow and failed'), rows: rs };
  };
  await t.rejects(late.scorer.score(rowsOf(1), 1, d), { code: StatusCode.INTERNAL }, 'less than minRemoteRetryMs left');
  t.equal(late.remote.calls.length, 0);

  const alone = setup({ hasRemote: false });
  alone.local.next = (rs) => ({ kind: 'failed', error: new UpnextError(StatusCode.RESOURCE_EXHAUSTED, 'full'), rows: rs });
  await t.rejects(alone.scorer.score(rowsOf(1), 1, alone.deadline(40)), { code: StatusCode.RESOURCE_EXHAUSTED }, 'no remote replica');
  t.equal(alone.remote.calls.length, 0);
});

t.test('no local replica → remote; it may come back', async (t) => {
  const { local, remote, scorer, deadline, setPresent } = setup({ local: false });
  t.equal((await scorer.score(rowsOf(1), 1, deadline(40))).path, 'remote');
  t.equal(scorer.stats().remoteReasons.noLocal, 1);
  setPresent(true);
  t.equal((await scorer.score(rowsOf(1), 1, deadline(40))).path, 'local', 'read per request');
  t.equal(local.calls.length, 1);
  t.equal(remote.calls.length, 1);
  remote.fail = new UpnextError(StatusCode.UNAVAILABLE, 'no ranker replica in the shard map');
  setPresent(false);
  await t.rejects(scorer.score(rowsOf(1), 1, deadline(40)), { code: StatusCode.UNAVAILABLE }, 'the remote error comes through');
  t.equal(scorer.stats().failed, 1);
});

t.test('deadline: an expired one calls nothing', async (t) => {
  const { local, remote, scorer, clock } = setup();
  const d = new Deadline(clock.nowMs(), clock);
  await t.rejects(scorer.score(rowsOf(1), 1, d), { code: StatusCode.DEADLINE_EXCEEDED });
  t.equal(local.calls.length + remote.calls.length, 0);
});

t.test('options are validated', async (t) => {
  const remote = new FakeRemote();
  t.throws(() => new LocalFirstRankerScorer({ local: undefined as never, remote, hasRemote: () => true }), { name: 'TypeError', message: /options\.local/ });
  t.throws(() => new LocalFirstRankerScorer({ local: () => undefined, remote: {} as never, hasRemote: () => true }), { name: 'TypeError', message: /options\.remote/ });
  t.throws(() => new LocalFirstRankerScorer({ local: () => undefined, remote, hasRemote: () => true, minRemoteRetryMs: -1 }), { name: 'TypeError', message: /minRemoteRetryMs/ });
});

// ---- the batcher's hand-over (what RankerScorer.scoreOwned runs on)

class ManualTimers implements BatchTimers {
  setTimeout(): unknown {
    return 0;
  }
  clearTimeout(): void {}
}

/** Completes batches when the test says; "transfers" the rows (detaches them) like the pool does. */
class TransferringRunner implements BatchRunner {
  readonly batches: { rows: Float32Array; nRows: number; finish: (how: 'ok' | 'fail-return' | 'fail-lost') => void }[] = [];
  run(rows: Float32Array, nRows: number): Promise<RankerOutputs> {
    const values = Float32Array.from(rows);
    // structuredClone with a transfer list detaches `rows.buffer` here, as postMessage to a worker does.
    const moved = structuredClone(rows, { transfer: [rows.buffer as ArrayBuffer] });
    return new Promise((resolve, reject) => {
      this.batches.push({
        rows,
        nRows,
        finish: (how) => {
          if (how === 'fail-return') return reject(new BatchRunFailure(StatusCode.INTERNAL, 'ranker inference failed', moved));
          if (how === 'fail-lost') return reject(new UpnextError(StatusCode.UNAVAILABLE, 'ranker worker failed: exited'));
          resolve({ pClick: Float32Array.from({ length: nRows }, (_, r) => values[r * W] ?? NaN), watchLog1p: new Float32Array(nRows) });
        },
      });
    });
  }
}

/** Lets a finished batch's bookkeeping (which pumps the next batch) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function batcherSetup(overrides: Partial<{ maxBatchRows: number; maxQueueRows: number; concurrency: number; maxDelayMs: number }> = {}) {
  const clock = new ManualClock(5_000);
  const runner = new TransferringRunner();
  const batcher = new DynamicBatcher({ ...DEFAULT_BATCHING, maxDelayMs: 0, concurrency: 1, ...overrides, width: W, runner, clock, timers: new ManualTimers() });
  return { clock, runner, batcher };
}

t.test('submitOwned: a lone request goes to the runner without a copy', async (t) => {
  const { runner, batcher } = batcherSetup();
  const rows = rowsOf(3, 1);
  const first = [rows[0], rows[W], rows[2 * W]];
  const p = batcher.submitOwned(rows, 3);
  t.equal(runner.batches[0]?.rows, rows, 'the caller array itself');
  t.equal(rows.length, 0, 'detached once handed to the (fake) worker');
  t.same(batcher.load(), { queuedRows: 0, inFlightBatches: 1, concurrency: 1, maxBatchRows: 1024 });
  runner.batches[0]?.finish('ok');
  const out = await p;
  t.equal(out.kind, 'scored');
  if (out.kind === 'scored') t.same([...out.outputs.pClick], first);
});

t.test('submitOwned: merged with others, or a view into a larger buffer, the rows are copied', async (t) => {
  const { runner, batcher } = batcherSetup();
  const busy = batcher.submitOwned(rowsOf(1), 1); // occupies the only slot
  const a = rowsOf(2, 10);
  const b = rowsOf(2, 20);
  const pa = batcher.submitOwned(a, 2);
  const pb = batcher.submitOwned(b, 2);
  t.same(batcher.load(), { queuedRows: 4, inFlightBatches: 1, concurrency: 1, maxBatchRows: 1024 });
  runner.batches[0]?.finish('ok');
  await busy;
  await settle();
  t.equal(runner.batches.length, 2, 'a and b in one batch');
  t.not(runner.batches[1]?.rows, a);
  t.equal(a.length, 2 * W, 'a stays intact');
  t.equal(b.length, 2 * W, 'b stays intact');
  runner.batches[1]?.finish('ok');
  const [ra, rb] = await Promise.all([pa, pb]);
  t.equal(ra.kind, 'scored');
  t.equal(rb.kind, 'scored');
  await settle();

  const big = rowsOf(4, 30);
  const view = big.subarray(W, 3 * W);
  const pv = batcher.submitOwned(view, 2);
  t.not(runner.batches[2]?.rows, view, 'a view is copied');
  t.equal(big.length, 4 * W, 'its buffer stays');
  runner.batches[2]?.finish('ok');
  t.equal((await pv).kind, 'scored');
});

t.test('submitOwned failures carry the rows while they exist', async (t) => {
  const { runner, batcher } = batcherSetup({ maxQueueRows: 4 });
  const running = batcher.submitOwned(rowsOf(1), 1);
  const queued = batcher.submitOwned(rowsOf(3), 3);
  const full = rowsOf(2);
  const refused = await batcher.submitOwned(full, 2);
  t.equal(refused.kind, 'failed');
  if (refused.kind === 'failed') {
    t.equal(refused.error.code, StatusCode.RESOURCE_EXHAUSTED);
    t.equal(refused.rows, full, 'refused before leaving: the caller rows come back');
  }
  runner.batches[0]?.finish('ok');
  await running;
  await settle();
  runner.batches[1]?.finish('fail-return');
  const failed = await queued;
  t.equal(failed.kind, 'failed');
  if (failed.kind === 'failed') {
    t.equal(failed.error.code, StatusCode.INTERNAL);
    t.equal(failed.rows?.length, 3 * W, 'the worker gave them back');
  }

  await settle();
  const lone = rowsOf(2, 50);
  const expected = [...lone];
  const p = batcher.submitOwned(lone, 2);
  runner.batches[2]?.finish('fail-return');
  const back = await p;
  t.equal(back.kind, 'failed');
  if (back.kind === 'failed') t.same([...(back.rows ?? [])], expected, 'returned rows hold the same values');
  await settle();

  const p2 = batcher.submitOwned(rowsOf(1), 1);
  runner.batches[3]?.finish('fail-lost');
  const lost = await p2;
  t.equal(lost.kind, 'failed');
  if (lost.kind === 'failed') {
    t.equal(lost.error.code, StatusCode.UNAVAILABLE);
    t.equal(lost.rows, undefined, 'lost with the worker');
  }

  batcher.close();
  const closed = rowsOf(1);
  const c = await batcher.submitOwned(closed, 1);
  t.equal(c.kind === 'failed' && c.rows, closed, 'closed: UNAVAILABLE with the rows');
});

t.test('submitOwned: expired while queued → DEADLINE_EXCEEDED with the rows', async (t) => {
  const { clock, runner, batcher } = batcherSetup();
  const running = batcher.submitOwned(rowsOf(1), 1);
  const rows = rowsOf(1, 9);
  const p = batcher.submitOwned(rows, 1, Deadline.after(5, clock));
  clock.advance(6);
  runner.batches[0]?.finish('ok');
  await running;
  await settle();
  const out = await p;
  t.equal(out.kind, 'failed');
  if (out.kind === 'failed') {
    t.equal(out.error.code, StatusCode.DEADLINE_EXCEEDED);
    t.equal(out.rows, rows);
  }
  t.equal(runner.batches.length, 1, 'never run');
});

t.test('config knob coordinator.localRanker: default prefer, validated, settable', async (t) => {
  t.equal(resolveConfig().coordinator.localRanker, 'prefer');
  t.equal(resolveConfig(applyOverrides({}, ['coordinator.localRanker=off'])).coordinator.localRanker, 'off');
  t.throws(() => resolveConfig({ coordinator: { localRanker: 'always' as never } }), { name: 'TypeError', message: /coordinator\.localRanker must be one of prefer\|off/ });
  t.ok(describeConfig().some((k) => k.key === 'coordinator.localRanker' && k.default === '"prefer"'), 'documented');
});
