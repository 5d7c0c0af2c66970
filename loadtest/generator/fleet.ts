/**
 * Several generator processes offering one phase together. One Node process tops out at a few
 * thousand gRPC calls per second (and its event loop lag would then inflate the measured latency),
 * so a high rate is split: each child gets rate/N, its own seed, the same start time; their HDR
 * histograms are merged exactly. With `processes: 1` the phase runs in this process.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PhaseRecorder } from '../measure/recorder.js';
import type { RecorderSnapshot } from '../measure/recorder.js';
import type { PhaseRouting, PhaseRun, PhaseSpec } from './phase.js';
import { PhaseRunner, mergeRouting } from './phase.js';

/** Parent → child. */
export type FleetRequest = { readonly type: 'run'; readonly id: number; readonly spec: PhaseSpec } | { readonly type: 'close' };

/** Child → parent. */
export type FleetReply =
  | {
      readonly type: 'result'; readonly id: number; readonly snapshot: RecorderSnapshot; readonly generatorCpuSeconds: number;
      readonly wallMs: number; readonly startedAtEpochMs: number; readonly userIdsOrigin: string; readonly routing?: PhaseRouting;
    }
  | { readonly type: 'failed'; readonly id: number; readonly message: string };

/** A phase's merged result plus the pids that generated it. */
export interface FleetRun extends PhaseRun {
  /** Generator processes used (1 = in-process). */
  readonly processes: number;
}

/** Splits a phase for child `i` of `n`: rates, callers and in-flight bound divided, seed varied. */
export function splitSpec(spec: PhaseSpec, i: number, n: number, startAtEpochMs: number): PhaseSpec {
  const share = (x: number) => x / n;
  return {
    ...spec,
    segments: spec.segments.map((s) => ({ startMs: s.startMs, rate: share(s.rate) })),
    concurrency: Math.max(1, Math.round(share(spec.concurrency))),
    maxInFlight: Math.max(1, Math.ceil(share(spec.maxInFlight))),
    ...(spec.events ? { events: { rate: share(spec.events.rate), batchSize: spec.events.batchSize } } : {}),
    seed: (spec.seed + 7919 * (i + 1)) >>> 0,
    idPrefix: `${spec.idPrefix}-p${i}`,
    startAtEpochMs,
  };
}

export class GeneratorFleet {
  readonly #n: number;
  readonly #children: ChildProcess[] = [];
  readonly #local = new PhaseRunner();
  #nextId = 1;

  /** `processes` >= 1; more than 1 forks that many children on first use. */
  constructor(processes: number) {
    if (!Number.isInteger(processes) || processes < 1) throw new TypeError(`processes must be an integer >= 1, got ${processes}`);
    this.#n = processes;
  }

  /** Child pids (empty with one process), so the report can show the generator's own CPU. */
  pids(): number[] {
    return this.#children.map((c) => c.pid ?? 0).filter((p) => p > 0);
  }

  async run(spec: PhaseSpec, onTick?: (tMs: number) => void): Promise<FleetRun> {
    if (this.#n === 1) return { ...(await this.#local.run(spec, onTick)), processes: 1 };
    this.#ensureChildren();
    // Children load ids and connect first; a one-second lead lets them start together.
    const startAt = Date.now() + 1000;
    // Timed hooks (node kill) run here in the parent, on its own timer from the common start.
    const ticker = onTick ? setInterval(() => {
      const t = Date.now() - startAt;
      if (t >= 0) onTick(t);
    }, 20) : undefined;
    let replies: Array<Extract<FleetReply, { type: 'result' }>>;
    try {
      replies = await Promise.all(this.#children.map((child, i) => this.#ask(child, splitSpec(spec, i, this.#n, startAt))));
    } finally {
      if (ticker) clearInterval(ticker);
    }
    const recorder = new PhaseRecorder();
    for (const r of replies) recorder.merge(r.snapshot);
    return {
      recorder,
      generatorCpuSeconds: replies.reduce((s, r) => s + r.generatorCpuSeconds, 0),
      wallMs: Math.max(...replies.map((r) => r.wallMs)),
      startedAtEpochMs: Math.min(...replies.map((r) => r.startedAtEpochMs)),
      userIdsOrigin: replies[0]!.userIdsOrigin,
      ...(replies.some((r) => r.routing !== undefined) ? { routing: mergeRouting(replies.flatMap((r) => (r.routing !== undefined ? [r.routing] : []))) } : {}),
      processes: this.#n,
    };
  }

  async close(): Promise<void> {
    this.#local.close();
    await Promise.all(
      this.#children.map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || !c.connected) return resolve();
        c.once('exit', () => resolve());
        c.send({ type: 'close' } satisfies FleetRequest);
      })),
    );
    this.#children.length = 0;
  }

  #ensureChildren(): void {
    if (this.#children.length > 0) return;
    const entry = fileURLToPath(new URL('./generator-process.js', import.meta.url));
    for (let i = 0; i < this.#n; i++) this.#children.push(fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  #ask(child: ChildProcess, spec: PhaseSpec): Promise<Extract<FleetReply, { type: 'result' }>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const onMessage = (raw: unknown) => {
        const msg = raw as FleetReply;
        if (msg.id !== id) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (msg.type === 'result') resolve(msg);
        else reject(new Error(`generator process ${child.pid}: ${msg.message}`));
      };
      const onExit = (code: number | null) => reject(new Error(`generator process ${child.pid} exited with ${code} during phase ${spec.name}`));
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ type: 'run', id, spec } satisfies FleetRequest);
    });
  }
}
