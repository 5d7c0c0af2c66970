/**
 * Scheduled retraining (DESIGN §5: serve, log, join, retrain, switch — on a clock): every `everyMs`
 * a round retrains the ranker of the version the cluster serves on its logged rows
 * ({@link trainOnLoggedRows}), compares the candidate with the serving ranker on the same held-out
 * test rows, and promotes it — a live, ranker-only switch (`shardmap model`) — only when it passes
 * the {@link PromotionGate}; a rejected candidate is removed. Each round is one {@link RetrainRound}
 * (a JSON line in the report). A round that fails (too few logged rows yet, a refused switch) is
 * recorded and the loop goes on; the next round starts from whatever the cluster serves then.
 *
 * The gate reads, on the test rows: the click AUC within a slot (on logged rows the pooled AUC also
 * scores where the serving policy placed each item; within a slot only the ranker's ordering
 * counts), the calibrated ECE, and the watch-time error. A candidate may not be worse than the
 * serving ranker by more than the gate's margins on any of them, and the test split must be large
 * enough for the comparison to mean something.
 */
import { rm } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/nats-core';
import { toStatus, StatusCode } from '../../core/status.js';
import type { TrainLoggedOptions, TrainLoggedResult } from './train-logged.js';
import { trainOnLoggedRows } from './train-logged.js';
import { servingModelDir } from './serving-version.js';
import type { ServingModelDir } from './serving-version.js';

/** When a candidate ranker replaces the serving one. */
export interface PromotionGate {
  /** Fewest test rows the comparison needs. Default 1,000. */
  readonly minTestRows: number;
  /** Largest drop of click AUC within a slot (pooled AUC when slots are unknown) allowed. Default 0.005. */
  readonly maxAucDrop: number;
  /** Largest rise of calibrated ECE allowed. Default 0.01. */
  readonly maxEceRise: number;
  /** Largest relative rise of the watch-time error (MAE of log1p seconds) allowed. Default 0.05. */
  readonly maxWatchErrorRise: number;
}

/** Where `retrain-loop` appends one JSON line per round. */
export const DEFAULT_RETRAIN_REPORT = 'reports/retrain.jsonl';

export const DEFAULT_PROMOTION_GATE: PromotionGate = Object.freeze({ minTestRows: 1000, maxAucDrop: 0.005, maxEceRise: 0.01, maxWatchErrorRise: 0.05 });

/** The gate's verdict: promote, or why not (every failed check, named with both figures). */
export interface PromotionDecision {
  readonly promote: boolean;
  readonly reasons: readonly string[];
}

const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(4));

/**
 * The gate applied to a round's test metrics (`metrics.new` and `metrics.serving` of
 * {@link TrainLoggedResult}, on the same `testRows`). A metric missing or not finite on either side
 * fails its check: a comparison that cannot be made does not promote.
 */
export function promotionDecision(metrics: TrainLoggedResult['metrics'], testRows: number, gate: PromotionGate = DEFAULT_PROMOTION_GATE): PromotionDecision {
  const reasons: string[] = [];
  if (!(testRows >= gate.minTestRows)) reasons.push(`test rows ${testRows} < ${gate.minTestRows}`);
  const auc = metrics.new['click_auc_within_slot'] !== undefined ? 'click_auc_within_slot' : 'click_auc';
  const worse = (name: string, higherIsBetter: boolean, margin: (serving: number) => number) => {
    const n = metrics.new[name];
    const s = metrics.serving[name];
    if (n === undefined || s === undefined || !Number.isFinite(n) || !Number.isFinite(s)) {
      reasons.push(`${name}: not measured on both (new ${fmt(n)}, serving ${fmt(s)})`);
      return;
    }
    const bad = higherIsBetter ? n < s - margin(s) : n > s + margin(s);
    if (bad) reasons.push(`${name} ${fmt(n)} against serving ${fmt(s)} (${higherIsBetter ? 'lower' : 'higher'} by more than ${fmt(margin(s))})`);
  };
  worse(auc, true, () => gate.maxAucDrop);
  worse('ece_calibrated', false, () => gate.maxEceRise);
  worse('watch_mae_log1p', false, (s) => s * gate.maxWatchErrorRise);
  return { promote: reasons.length === 0, reasons };
}

/** One round of the loop, as the report holds it. */
export interface RetrainRound {
  readonly round: number;
  readonly startedAt: string;
  readonly ms: number;
  /** The version retrained (what the cluster served when the round began). */
  readonly servingVersion?: string;
  /** The candidate, when training finished. */
  readonly candidate?: string;
  readonly testRows?: number;
  readonly metrics?: TrainLoggedResult['metrics'];
  readonly decision?: PromotionDecision;
  /** promoted: the cluster switched to the candidate; rejected: removed; kept: passed, but promotion is off; failed: see error. */
  readonly outcome: 'promoted' | 'rejected' | 'kept' | 'failed';
  /** The gRPC status name and message of a failure (training, or the switch). */
  readonly error?: { readonly code: string; readonly message: string };
}

/** Options of {@link runRetrainLoop}. */
export interface RetrainLoopOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** Models root the serving versions are found under. */
  readonly modelsDir: string;
  /** Models root candidates are written under. Default `modelsDir` (a switch finds them there). */
  readonly outDir?: string;
  /** Time from one round's start to the next's, ms. */
  readonly everyMs: number;
  /** Rounds to run. Default: until `signal` aborts. */
  readonly rounds?: number;
  /** Switch the cluster to a candidate that passes the gate. Default false: report only ("kept"). */
  readonly promote?: boolean;
  readonly gate?: PromotionGate;
  /** Train only on rows logged in the last `windowMs`. Default: everything the feature log holds. */
  readonly windowMs?: number;
  /** Keep rejected candidates on disk. Default false (removed). */
  readonly keepRejected?: boolean;
  /** Passed to every round's training (epochs, lr, wait window, shares …). */
  readonly train?: Omit<TrainLoggedOptions, 'nc' | 'cluster' | 'fromModelDir' | 'outDir' | 'sinceMs' | 'log'>;
  /** Stops the loop: between rounds at once, within a round after it. */
  readonly signal?: AbortSignal;
  /** Each round when it ends. */
  readonly onRound?: (r: RetrainRound) => void | Promise<void>;
  /** Progress lines. Default silent. */
  readonly log?: (line: string) => void;
  /** The neighbours, replaceable in tests: which version serves, training, and the switch. */
  readonly deps?: Partial<RetrainDeps>;
}

/** What a round calls out to. */
export interface RetrainDeps {
  serving(): Promise<ServingModelDir>;
  train(o: TrainLoggedOptions): Promise<TrainLoggedResult>;
  /**
   * Switches the cluster to `version` (under outDir), only if the model key is still at
   * `expectedRevision` (what the round retrained: a switch or rollback made meanwhile wins, the
   * round fails ABORTED); rejects when a node refuses (the switch has then been rolled back).
   */
  switchTo(version: string, expectedRevision: number | null): Promise<void>;
  now(): number;
}

/** Runs rounds until `rounds` are done or `signal` aborts; resolves to every round. */
export async function runRetrainLoop(o: RetrainLoopOptions): Promise<RetrainRound[]> {
  if (!(Number.isFinite(o.everyMs) && o.everyMs > 0)) throw new TypeError(`option everyMs must be > 0, got ${String(o.everyMs)}`);
  if (o.rounds !== undefined && !(Number.isInteger(o.rounds) && o.rounds > 0)) throw new TypeError(`option rounds must be an integer > 0, got ${String(o.rounds)}`);
  if (o.windowMs !== undefined && !(Number.isFinite(o.windowMs) && o.windowMs > 0)) throw new TypeError(`option windowMs must be > 0, got ${String(o.windowMs)}`);
  const outDir = o.outDir ?? o.modelsDir;
  const gate = o.gate ?? DEFAULT_PROMOTION_GATE;
  const log = o.log ?? (() => {});
  const deps: RetrainDeps = {
    serving: () => servingModelDir({ nc: o.nc, cluster: o.cluster, modelsDir: o.modelsDir }),
    train: trainOnLoggedRows,
    switchTo: async () => {
      throw new TypeError('runRetrainLoop: promote needs deps.switchTo (the CLI passes shardmap model)');
    },
    now: Date.now,
    ...o.deps,
  };
  const rounds: RetrainRound[] = [];
  for (let round = 1; o.rounds === undefined || round <= o.rounds; round++) {
    if (o.signal?.aborted) break;
    const t0 = deps.now();
    const r = await runRound(round, t0, o, deps, outDir, gate, log);
    rounds.push(r);
    await o.onRound?.(r);
    if (o.rounds !== undefined && round >= o.rounds) break;
    // Credentials that may not switch will not grow the right: stop rather than train for nothing.
    if (r.error?.code === 'PERMISSION_DENIED') {
      log(`round ${round}: ${r.error.message}; stopping`);
      break;
    }
    const waitMs = Math.max(0, t0 + o.everyMs - deps.now());
    log(`round ${round}: ${r.outcome}; next in ${Math.round(waitMs / 1000)} s`);
    if (!(await sleep(waitMs, o.signal))) break;
  }
  return rounds;
}

async function runRound(round: number, t0: number, o: RetrainLoopOptions, deps: RetrainDeps, outDir: string, gate: PromotionGate, log: (line: string) => void): Promise<RetrainRound> {
  const base = { round, startedAt: new Date(t0).toISOString() };
  const failed = (err: unknown, more: Partial<RetrainRound> = {}): RetrainRound => {
    const st = toStatus(err);
    return { ...base, ...more, ms: deps.now() - t0, outcome: 'failed', error: { code: StatusCode[st.code] ?? String(st.code), message: st.message } };
  };
  let serving: ServingModelDir;
  let res: TrainLoggedResult;
  try {
    serving = await deps.serving();
    log(`round ${round}: retraining ${serving.version}`);
    res = await deps.train({
      ...o.train,
      nc: o.nc,
      cluster: o.cluster,
      fromModelDir: serving.dir,
      outDir,
      // Over maxRows, the newest rows: each round learns from and is gated on recent traffic.
      keep: o.train?.keep ?? 'newest',
      ...(o.windowMs !== undefined ? { sinceMs: Math.max(0, t0 - o.windowMs) } : {}),
      log: (line) => log(`round ${round}: ${line}`),
    });
  } catch (err) {
    return failed(err);
  }
  const decision = promotionDecision(res.metrics, res.split.test, gate);
  const done = { ...base, servingVersion: serving.version, candidate: res.version, testRows: res.split.test, metrics: res.metrics, decision };
  if (!decision.promote) {
    if (o.keepRejected !== true) await rm(res.dir, { recursive: true, force: true });
    log(`round ${round}: ${res.version} rejected: ${decision.reasons.join('; ')}`);
    return { ...done, ms: deps.now() - t0, outcome: 'rejected' };
  }
  if (o.promote !== true) return { ...done, ms: deps.now() - t0, outcome: 'kept' };
  try {
    await deps.switchTo(res.version, serving.keyRevision);
  } catch (err) {
    // Not served: the candidate goes like a rejected one.
    if (o.keepRejected !== true) await rm(res.dir, { recursive: true, force: true });
    return failed(err, done);
  }
  log(`round ${round}: the cluster serves ${res.version}`);
  return { ...done, ms: deps.now() - t0, outcome: 'promoted' };
}

/** Waits `ms`; false when `signal` aborted first. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(v);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** "6h", "30m", "90s", "2d" or plain milliseconds → ms; a TypeError naming `name` otherwise. */
export function parseDuration(name: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) throw new TypeError(`${name} must be a duration like 6h, 30m, 90s, 2d or milliseconds, got ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h' | 'd'];
  const ms = Number(m[1]) * unit;
  if (!(ms > 0)) throw new TypeError(`${name} must be > 0, got ${JSON.stringify(text)}`);
  return ms;
}
