// Scheduled retraining (offline/logged/retrain-loop.ts): the promotion gate on a round's test
// metrics, and the loop's rounds with its neighbours faked (which version serves, training, the
// switch: the real ones are covered by test/offline/logged-e2e.test.ts and the switch tests):
// promote, reject (the candidate removed), a failed round that does not stop the loop, report-only
// mode, the training window, a refused switch, and a stop between rounds.
import t from 'tap';
import type { Test } from 'tap';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { DEFAULT_PROMOTION_GATE, parseDuration, promotionDecision, runRetrainLoop } from '../../offline/logged/retrain-loop.js';
import type { RetrainRound } from '../../offline/logged/retrain-loop.js';
import type { TrainLoggedOptions, TrainLoggedResult } from '../../offline/logged/train-logged.js';
import { StatusCode, UpnextError } from '../../core/status.js';

type M = Record<string, number>;
const serving: M = { click_auc_within_slot: 0.70, ece_calibrated: 0.02, watch_mae_log1p: 1.00 };
const decide = (n: M, s: M = serving, rows = 5000) => promotionDecision({ new: n, serving: s }, rows);

t.test('the gate: no metric worse than the serving ranker beyond its margin, and enough test rows', async (t) => {
  t.same(decide({ click_auc_within_slot: 0.72, ece_calibrated: 0.015, watch_mae_log1p: 0.95 }), { promote: true, reasons: [] }, 'better everywhere');
  t.ok(decide({ click_auc_within_slot: 0.696, ece_calibrated: 0.029, watch_mae_log1p: 1.04 }).promote, 'worse, but within every margin (0.005, 0.01, 5%)');
  const auc = decide({ click_auc_within_slot: 0.69, ece_calibrated: 0.02, watch_mae_log1p: 1 });
  t.notOk(auc.promote);
  t.match(auc.reasons.join(';'), /click_auc_within_slot 0\.6900 against serving 0\.7000 \(lower by more than 0\.0050\)/);
  t.match(decide({ click_auc_within_slot: 0.7, ece_calibrated: 0.031, watch_mae_log1p: 1 }).reasons.join(';'), /ece_calibrated/);
  t.match(decide({ click_auc_within_slot: 0.7, ece_calibrated: 0.02, watch_mae_log1p: 1.06 }).reasons.join(';'), /watch_mae_log1p 1\.0600 against serving 1\.0000 \(higher by more than 0\.0500\)/);
  t.match(decide({ click_auc_within_slot: 0.8, ece_calibrated: 0.01, watch_mae_log1p: 0.9 }, serving, 999).reasons.join(';'), /test rows 999 < 1000/);
  // Without slots the pooled AUC is compared.
  t.notOk(decide({ click_auc: 0.6, ece_calibrated: 0.02, watch_mae_log1p: 1 }, { click_auc: 0.7, ece_calibrated: 0.02, watch_mae_log1p: 1 }).promote);
  const missing = decide({ click_auc_within_slot: Number.NaN, ece_calibrated: 0.02, watch_mae_log1p: 1 });
  t.notOk(missing.promote, 'a comparison that cannot be made does not promote');
  t.match(missing.reasons.join(';'), /click_auc_within_slot: not measured on both/);
  t.equal(DEFAULT_PROMOTION_GATE.minTestRows, 1000);
});

t.test('durations', async (t) => {
  t.equal(parseDuration('--every', '6h'), 6 * 3_600_000);
  t.equal(parseDuration('--every', '30m'), 1_800_000);
  t.equal(parseDuration('--every', '90s'), 90_000);
  t.equal(parseDuration('--every', '2d'), 2 * 86_400_000);
  t.equal(parseDuration('--every', '1500'), 1500);
  t.throws(() => parseDuration('--every', '6 hours'), { message: /--every must be a duration like 6h/ });
  t.throws(() => parseDuration('--every', '0s'), { message: /--every must be > 0/ });
});

/** A loop whose neighbours are scripted: each round's candidate metrics (or an error), in order. */
async function scripted(t: Test, script: (M | Error)[], opts: { promote?: boolean; switchFails?: boolean; switchCode?: StatusCode; windowMs?: number; rounds?: number; everyMs?: number; abortAfter?: number; abortAfterMs?: number } = {}) {
  const root = await mkdtemp(path.join(tmpdir(), 'upnext-retrain-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  let served = 'v1';
  let clock = 5_000_000;
  const trained: TrainLoggedOptions[] = [];
  const switched: string[] = [];
  const expected: (number | null)[] = [];
  const seen: RetrainRound[] = [];
  const stop = new AbortController();
  const rounds = await runRetrainLoop({
    nc: {} as NatsConnection,
    cluster: 'c',
    modelsDir: root,
    everyMs: opts.everyMs ?? 10,
    rounds: opts.rounds ?? script.length,
    promote: opts.promote ?? true,
    signal: stop.signal,
    ...(opts.windowMs !== undefined ? { windowMs: opts.windowMs } : {}),
    onRound: (r) => {
      seen.push(r);
      if (opts.abortAfter !== undefined && seen.length >= opts.abortAfter) stop.abort();
      // An abort that comes while the loop waits for the next round (a SIGTERM hours into the wait).
      if (opts.abortAfterMs !== undefined) setTimeout(() => stop.abort(), opts.abortAfterMs);
    },
    deps: {
      now: () => clock,
      serving: async () => ({ dir: path.join(root, served), version: served, source: 'model key', keyRevision: switched.length + 7 }),
      train: async (o) => {
        trained.push(o);
        clock += 5;
        const step = script[trained.length - 1];
        if (step === undefined || step instanceof Error) throw step ?? new Error('script ran out');
        const version = `cand${trained.length}`;
        const dir = path.join(o.outDir, version);
        await mkdir(dir);
        return { version, dir, metrics: { new: step, serving }, split: { train: 1, valid: 1, test: 5000 } } as unknown as TrainLoggedResult;
      },
      switchTo: async (version, expectedRevision) => {
        expected.push(expectedRevision);
        if (opts.switchFails === true) throw new UpnextError(opts.switchCode ?? StatusCode.ABORTED, `n2 refused ${version}`);
        switched.push(version);
        served = version;
      },
    },
  });
  return { root, rounds, trained, switched, seen, expected };
}

const good: M = { click_auc_within_slot: 0.75, ece_calibrated: 0.01, watch_mae_log1p: 0.9 };
const bad: M = { click_auc_within_slot: 0.6, ece_calibrated: 0.01, watch_mae_log1p: 0.9 };

t.test('rounds: promoted, rejected (removed), failed (the loop goes on), promoted again from what serves then', async (t) => {
  const r = await scripted(t, [good, bad, new UpnextError(StatusCode.FAILED_PRECONDITION, 'a split would hold 12 rows'), good]);
  t.same(r.rounds.map((x) => x.outcome), ['promoted', 'rejected', 'failed', 'promoted']);
  t.same(r.switched, ['cand1', 'cand4']);
  t.same(r.trained.map((o) => path.basename(o.fromModelDir)), ['v1', 'cand1', 'cand1', 'cand1'], 'each round retrains what serves when it starts');
  t.equal(r.rounds[1]!.candidate, 'cand2');
  t.match(r.rounds[1]!.decision?.reasons.join(';'), /click_auc_within_slot 0\.6000/);
  await t.rejects(stat(path.join(r.root, 'cand2')), 'the rejected candidate was removed');
  t.ok((await stat(path.join(r.root, 'cand1'))).isDirectory(), 'the promoted one stays');
  t.same(r.rounds[2]!.error, { code: 'FAILED_PRECONDITION', message: 'a split would hold 12 rows' });
  t.equal(r.rounds[0]!.servingVersion, 'v1');
  t.same(r.seen, r.rounds, 'onRound saw every round as it ended');
  t.same(r.trained.map((o) => o.sinceMs), [undefined, undefined, undefined, undefined], 'no window: everything the log holds');
  t.same(r.trained.map((o) => o.keep), ['newest', 'newest', 'newest', 'newest'], 'over maxRows, the newest rows');
  t.same(r.expected, [7, 8], 'each switch is a compare-and-set on the key revision the round retrained');
});

t.test('report only (no --promote): a candidate that passes is kept, the cluster untouched', async (t) => {
  const r = await scripted(t, [good], { promote: false });
  t.same(r.rounds.map((x) => x.outcome), ['kept']);
  t.same(r.switched, []);
  t.ok((await stat(path.join(r.root, 'cand1'))).isDirectory());
});

t.test('a refused switch fails the round with the reason; the window sets where training reads from', async (t) => {
  const r = await scripted(t, [good], { switchFails: true, windowMs: 3_600_000 });
  t.equal(r.rounds[0]!.outcome, 'failed');
  t.same(r.rounds[0]!.error, { code: 'ABORTED', message: 'n2 refused cand1' });
  t.equal(r.rounds[0]!.candidate, 'cand1', 'the candidate is named');
  await t.rejects(stat(path.join(r.root, 'cand1')), 'and removed: it is not served');
  t.equal(r.trained[0]!.sinceMs, 5_000_000 - 3_600_000, 'the round start minus the window');
});

t.test('a stop between rounds ends the loop without waiting out the interval', async (t) => {
  const t0 = Date.now();
  const r = await scripted(t, [good, good, good], { rounds: 3, everyMs: 60_000, abortAfter: 1 });
  t.equal(r.rounds.length, 1);
  const during = await scripted(t, [good, good, good], { rounds: 3, everyMs: 60_000, abortAfterMs: 50 });
  t.equal(during.rounds.length, 1, 'a stop that comes during the wait');
  t.ok(Date.now() - t0 < 10_000, 'neither waited the 60 s interval');
});

t.test('credentials that may not switch stop the loop after that round', async (t) => {
  const r = await scripted(t, [good, good, good], { switchFails: true, switchCode: StatusCode.PERMISSION_DENIED, rounds: 3 });
  t.same(r.rounds.map((x) => x.outcome), ['failed']);
  t.equal(r.rounds[0]!.error?.code, 'PERMISSION_DENIED');
});

t.test('options are checked', async (t) => {
  const base = { nc: {} as NatsConnection, cluster: 'c', modelsDir: '/x' };
  await t.rejects(runRetrainLoop({ ...base, everyMs: 0 }), { message: /everyMs must be > 0/ });
  await t.rejects(runRetrainLoop({ ...base, everyMs: 10, rounds: 0 }), { message: /rounds must be an integer > 0/ });
  await t.rejects(runRetrainLoop({ ...base, everyMs: 10, windowMs: -1 }), { message: /windowMs must be > 0/ });
});
