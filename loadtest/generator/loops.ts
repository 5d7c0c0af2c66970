/**
 * The two ways of offering load.
 *
 * Open loop ({@link runOpenLoop}): arrivals follow a Poisson schedule regardless of how fast the
 * server answers, as real users do. Latency is measured from each arrival's intended time, so a
 * server (or generator) stall is charged to every request that should have gone out during it.
 * At most `maxInFlight` requests are outstanding; arrivals beyond that are counted as "dropped by
 * generator", never silently skipped.
 *
 * Closed loop ({@link runClosedLoop}): N callers each send, wait for the answer, and send again;
 * useful to sweep concurrency, but it under-reports latency under stalls (each caller waits), so
 * SLO figures come from the open loop.
 */
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import type { CallResult, InteractionEventMessage, RecommendRequestMessage, RecommendResponseMessage } from '../client/recommender-client.js';
import { classify } from '../measure/outcome.js';
import type { PhaseRecorder } from '../measure/recorder.js';
import type { PoissonSchedule } from './arrivals.js';
import type { RequestMix } from './request-mix.js';

/** What the loops send through (the gRPC client pool, or a fake in unit tests). */
export interface LoadTransport {
  recommend(req: RecommendRequestMessage): Promise<CallResult<RecommendResponseMessage>>;
  logEvents(events: readonly InteractionEventMessage[]): Promise<CallResult<unknown>>;
}

/** Sleeps `ms` (<= 0: yields once to the event loop so I/O callbacks run). */
export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) =>
  new Promise((resolve) => {
    if (ms >= 1) setTimeout(resolve, ms);
    else setImmediate(resolve);
  });

/** Options for {@link runOpenLoop}. */
export interface OpenLoopOptions {
  readonly schedule: PoissonSchedule;
  /** Arrivals intended in [0, durationMs) are offered. */
  readonly durationMs: number;
  /** Outstanding Recommend calls beyond which arrivals are dropped by the generator. */
  readonly maxInFlight: number;
  readonly mix: RequestMix;
  readonly transport: LoadTransport;
  readonly recorder: PhaseRecorder;
  /** LogEvents stream: a schedule of batch arrivals and the batch size. */
  readonly events?: { readonly schedule: PoissonSchedule; readonly batchSize: number; readonly maxInFlight: number };
  /** Default {@link systemClock}. */
  readonly clock?: Clock;
  /** Default {@link realSleep}. */
  readonly sleep?: Sleep;
  /** Called with the phase time (ms) of each loop turn; the scenario runner hooks events here. */
  readonly onTick?: (tMs: number) => void;
}

/** Runs one open-loop phase; resolves after the last request has completed. */
export async function runOpenLoop(o: OpenLoopOptions): Promise<void> {
  const clock = o.clock ?? systemClock;
  const sleep = o.sleep ?? realSleep;
  const start = clock.monotonicMs();
  const elapsed = () => clock.monotonicMs() - start;
  let inFlight = 0;
  let eventsInFlight = 0;
  let drained: (() => void) | undefined;
  const settle = () => {
    if (inFlight === 0 && eventsInFlight === 0 && drained) drained();
  };

  const fire = (intendedMs: number) => {
    if (inFlight >= o.maxInFlight) {
      o.recorder.dropped(intendedMs);
      return;
    }
    const req = o.mix.recommendRequest(intendedMs);
    const sentMs = elapsed();
    o.recorder.sent(intendedMs, sentMs - intendedMs);
    inFlight++;
    void o.transport.recommend(req).then((res) => {
      const doneMs = elapsed();
      o.recorder.completed(intendedMs, doneMs - intendedMs, doneMs - sentMs, classify(res));
      inFlight--;
      settle();
    });
  };

  const fireEvents = (intendedMs: number) => {
    const ev = o.events!;
    if (eventsInFlight >= ev.maxInFlight) {
      o.recorder.eventBatchDropped();
      return;
    }
    const batch = o.mix.eventBatch(intendedMs, ev.batchSize, clock.nowMs());
    eventsInFlight++;
    void o.transport.logEvents(batch).then((res) => {
      o.recorder.eventBatch(batch.length, elapsed() - intendedMs, res.ok);
      eventsInFlight--;
      settle();
    });
  };

  let nextReq = o.schedule.next();
  let nextEv = o.events ? o.events.schedule.next() : Infinity;
  for (;;) {
    const now = elapsed();
    o.onTick?.(now);
    while (nextReq <= now && nextReq < o.durationMs) {
      fire(nextReq);
      nextReq = o.schedule.next();
    }
    while (nextEv <= now && nextEv < o.durationMs) {
      fireEvents(nextEv);
      nextEv = o.events!.schedule.next();
    }
    const due = Math.min(nextReq, nextEv);
    if (due >= o.durationMs) {
      // Keep ticking until the phase's end so timed hooks (node kill) still fire in a pause.
      if (now >= o.durationMs) break;
      await sleep(Math.min(o.durationMs - now, 50));
      continue;
    }
    await sleep(due - elapsed());
  }
  if (inFlight > 0 || eventsInFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
}

/** Options for {@link runClosedLoop}. */
export interface ClosedLoopOptions {
  /** Concurrent callers. */
  readonly concurrency: number;
  readonly durationMs: number;
  readonly mix: RequestMix;
  readonly transport: LoadTransport;
  readonly recorder: PhaseRecorder;
  readonly clock?: Clock;
}

/** Runs N callers back to back for `durationMs`; latency is from each actual send. */
export async function runClosedLoop(o: ClosedLoopOptions): Promise<void> {
  const clock = o.clock ?? systemClock;
  const start = clock.monotonicMs();
  const elapsed = () => clock.monotonicMs() - start;
  const caller = async () => {
    for (let t = elapsed(); t < o.durationMs; t = elapsed()) {
      o.recorder.sent(t, 0);
      const res = await o.transport.recommend(o.mix.recommendRequest(t));
      const done = elapsed();
      o.recorder.completed(t, done - t, done - t, classify(res));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, caller));
}
