/**
 * Runs a scenario against a {@link Target}: turns the scenario's load settings into phases, runs
 * them through the generator fleet while sampling the target's processes, fires timed actions
 * (node kill/restart) and marks them on the timeline, and assembles the {@link LoadtestReport}.
 */
import os from 'node:os';
import path from 'node:path';
import type { RateSegment } from '../generator/arrivals.js';
import { GeneratorFleet } from '../generator/fleet.js';
import type { FleetRun } from '../generator/fleet.js';
import type { PhaseSpec } from '../generator/phase.js';
import type { HotWindow } from '../generator/request-mix.js';
import { cpuIdentity } from '../measure/cpu-identity.js';
import { ProcSampler, busiestThreads } from '../measure/proc-sampler.js';
import type { ThreadCpu } from '../measure/proc-sampler.js';
import { REPO_ROOT } from '../paths.js';
import { capacityModel, findCapacity, meetsSlo } from '../report/capacity.js';
import type { LoadtestReport, PhaseResult, ProcessSeriesReport, ThreadLoad, TimelineEvent, TimelinePoint } from '../report/types.js';
import type { Scenario } from '../scenarios/config.js';
import type { Target } from '../target.js';
import { targetAddresses } from '../target.js';

/** Options for {@link runScenario}. */
export interface RunOptions {
  readonly scenario: Scenario;
  readonly target: Target;
  /** Overrides durations: whole run for steady/flash-crowd/node-loss, each step for ramp/overload, s. */
  readonly durationS?: number;
  /** Folder holding worlds. Default `<repo>/data/worlds`. */
  readonly worldsDir?: string;
  /** Process sampling interval, ms. Default 1000. */
  readonly sampleIntervalMs?: number;
  /** Progress lines. Default: none. */
  readonly log?: (line: string) => void;
}

/** A phase to run plus actions at given times in it. */
interface PlannedPhase {
  readonly spec: PhaseSpec;
  readonly actions: ReadonlyArray<{ readonly atMs: number; readonly label: string; readonly run: () => Promise<void> }>;
  readonly marks: ReadonlyArray<{ readonly atMs: number; readonly label: string }>;
}

export async function runScenario(opts: RunOptions): Promise<LoadtestReport> {
  const { scenario: sc, target } = opts;
  const log = opts.log ?? (() => undefined);
  // A started cluster knows its world: its ids are the ones worth asking for.
  const addresses = targetAddresses(target);
  const worldDir = target.worldDir ?? (sc.world !== undefined ? path.join(opts.worldsDir ?? path.join(REPO_ROOT, 'data', 'worlds'), sc.world) : undefined);
  const base: Omit<PhaseSpec, 'name' | 'segments' | 'durationMs'> = {
    addresses,
    ...(target.tls !== undefined ? { tls: target.tls } : {}),
    mode: 'open',
    concurrency: 0,
    maxInFlight: sc.generator.maxInFlight,
    channels: sc.generator.channels,
    routing: sc.generator.routing,
    deadlineMs: sc.generator.deadlineMs,
    mix: sc.mix,
    users: { ...(worldDir ? { worldDir } : {}), rangeStart: sc.users.rangeStart, rangeCount: sc.users.count },
    videos: { ...(worldDir ? { worldDir } : {}), rangeStart: sc.videos.rangeStart, rangeCount: sc.videos.count },
    ...(sc.events && sc.events.rate > 0 ? { events: { rate: sc.events.rate / sc.events.batchSize, batchSize: sc.events.batchSize } } : {}),
    seed: sc.generator.seed,
    idPrefix: `lt-${Date.now().toString(36)}`,
  };
  const open = (name: string, segments: RateSegment[], durationS: number, extra: Partial<PhaseSpec> = {}): PhaseSpec => ({
    ...base, name, segments, durationMs: durationS * 1000, ...extra,
  });

  const fleet = new GeneratorFleet(sc.generator.processes);
  const sampler = new ProcSampler({
    processes: () => [...target.processes(), ...fleet.pids().map((pid, i) => ({ name: `generator-${i}`, pid }))],
    // Quota throttling of the system under test only: the generators' cgroup says nothing of it.
    cgroupProcesses: () => target.processes(),
    intervalMs: opts.sampleIntervalMs ?? 1000,
  });
  const runStart = Date.now();
  const phases: PhaseResult[] = [];
  const timeline: TimelinePoint[] = [];
  const events: TimelineEvent[] = [];
  const warnings: string[] = [];
  let usersOrigin = '';
  sampler.start();

  const runPhase = async (planned: PlannedPhase): Promise<PhaseResult> => {
    const spec = planned.spec;
    log(`phase ${spec.name}: ${spec.mode === 'open' ? `${describeRate(spec.segments)} req/s` : `${spec.concurrency} callers`} for ${spec.durationMs / 1000} s`);
    let cpuFrom = Date.now();
    let started = false;
    const fired = new Set<number>();
    const pending: Array<Promise<void>> = [];
    const onTick = (tMs: number) => {
      if (!started) {
        started = true;
        // The window starts before the sample: a sample is stamped when it starts, and one stamped
        // before cpuFrom would fall out of every window and leave it starting at the next second.
        cpuFrom = Date.now();
        sampler.sample();
      }
      planned.actions.forEach((a, i) => {
        if (fired.has(i) || tMs < a.atMs) return;
        fired.add(i);
        const t0 = (Date.now() - runStart) / 1000;
        events.push({ tS: t0, label: `${a.label} (start)` });
        log(`  ${a.label}`);
        pending.push(a.run().then(
          () => void events.push({ tS: (Date.now() - runStart) / 1000, label: `${a.label} (done)` }),
          (err: unknown) => {
            events.push({ tS: (Date.now() - runStart) / 1000, label: `${a.label} failed` });
            warnings.push(`${a.label} failed: ${err instanceof Error ? err.message : String(err)}`);
          },
        ));
      });
    };
    const run: FleetRun = await fleet.run(spec, onTick);
    await Promise.all(pending);
    sampler.sample();
    const cpuTo = Date.now();
    usersOrigin = run.userIdsOrigin;
    const startS = (run.startedAtEpochMs - runStart) / 1000;
    for (const m of planned.marks) events.push({ tS: startS + m.atMs / 1000, label: m.label });
    const result = summarisePhase(spec, run, startS, sc, sampler, cpuFrom, cpuTo, target);
    for (const s of run.recorder.perSecond()) {
      timeline.push({
        tS: startS + s.second, phase: spec.name, offered: s.offered, completed: s.completed, errors: s.errors,
        fallback: s.fallback, dropped: s.dropped, p50Ms: s.latency.p50, p99Ms: s.latency.p99,
      });
    }
    if (result.generatorSaturated) {
      warnings.push(
        `generator saturated in phase ${spec.name}: lag p99 ${result.lagMs.p99.toFixed(1)} ms, ${result.dropped} dropped, ${result.generatorCpuCores.toFixed(2)} cores over ${result.generatorProcesses} process(es); latency there includes generator delay — add generator processes or machines.`,
      );
    }
    if (run.routing !== undefined && run.routing.failovers > 0) {
      warnings.push(
        `routing "user" in phase ${spec.name}: ${run.routing.failovers} routed call(s) found their coordinator gone (UNAVAILABLE) and were sent to another; their latency includes the failed attempt.`,
      );
    }
    if (run.routing !== undefined && run.routing.refreshFailures > 0) {
      warnings.push(
        `routing "user" in phase ${spec.name}: ${run.routing.refreshFailures} routing-table read(s) failed (${run.routing.lastError ?? 'no detail'}); calls followed the last table read, which may be stale.`,
      );
    }
    if (result.routedShare !== undefined && result.routedShare < 0.99) {
      warnings.push(
        `routing "user" in phase ${spec.name}: only ${(result.routedShare * 100).toFixed(1)}% of Recommend calls went to a coordinator hosting the user's partition (no routing table, partitions without a coordinator, or their coordinator down); the rest were spread.`,
      );
    }
    const bt = result.busiestThread;
    const busiest = bt ? `, busiest thread ${bt.process} ${bt.thread} ${bt.msPerRequest?.toFixed(2) ?? '—'} ms/req (${(bt.utilisation * 100).toFixed(0)}% of a core)` : '';
    log(`  -> ${result.throughput.toFixed(0)}/s, p50 ${result.latencyMs.p50.toFixed(1)} ms, p99 ${result.latencyMs.p99.toFixed(1)} ms, errors ${(result.errorRate * 100).toFixed(2)}%${busiest}, ${result.sloVerdict}`);
    phases.push(result);
    return result;
  };

  const load = sc.load;
  try {
    switch (load.kind) {
      case 'steady': {
        const d = opts.durationS ?? load.durationS;
        await runPhase({ spec: open('steady', [{ startMs: 0, rate: load.rate }], d), actions: [], marks: [] });
        break;
      }
      case 'ramp': {
        const stepS = opts.durationS ?? load.stepDurationS;
        if (load.warmUpS > 0) {
          // Not a step: the first step of a cold cluster measured caches filling (p99 74–84 ms at
          // 20 req/s in two runs, met from 40 on), which said nothing about capacity.
          // It stays on the latency-over-time plot (marked), not in the phases the capacity uses.
          await runPhase({ spec: open('warm-up', [{ startMs: 0, rate: load.startRate }], load.warmUpS), actions: [], marks: [{ atMs: 0, label: 'warm-up (not a step)' }] });
          phases.pop();
        }
        await runRamp(load.startRate, load.stepRate, load.maxRate, stepS, load.stopAfterBreaches, 'step', runPhase, open);
        break;
      }
      case 'flash-crowd': {
        const d = opts.durationS ?? load.durationS;
        const scale = d / load.durationS;
        const at = load.spikeAtS * scale * 1000;
        const end = at + load.spikeDurationS * scale * 1000;
        const hot: HotWindow = { startMs: at, endMs: end, share: (load.multiplier - 1) / load.multiplier, users: load.hotUsers, items: load.hotItems };
        const segments = [{ startMs: 0, rate: load.rate }, { startMs: at, rate: load.rate * load.multiplier }, { startMs: end, rate: load.rate }];
        await runPhase({
          spec: open('flash-crowd', segments, d, { hot }),
          actions: [],
          marks: [{ atMs: at, label: `spike ×${load.multiplier} on ${load.hotUsers} users / ${load.hotItems} videos` }, { atMs: end, label: 'spike ends' }],
        });
        break;
      }
      case 'overload': {
        const stepS = opts.durationS ?? load.stepDurationS;
        let capacity = load.capacityQps;
        if (capacity === undefined) {
          const r = load.ramp;
          await runRamp(r.startRate, r.stepRate, r.maxRate, opts.durationS ?? r.stepDurationS, 1, 'probe', runPhase, open);
          const found = findCapacity(phases, sc.slo);
          if (!found) throw new Error(`overload: no probe step met the SLO (p99 ≤ ${sc.slo.p99Ms} ms); give load.capacityQps or lower load.ramp.startRate`);
          capacity = found.qps;
          log(`capacity measured by probe: ${capacity.toFixed(0)} req/s`);
        }
        for (const mult of load.multipliers) await runPhase({ spec: open(`${mult}x`, [{ startMs: 0, rate: capacity * mult }], stepS), actions: [], marks: [] });
        break;
      }
      case 'node-loss': {
        const d = opts.durationS ?? load.durationS;
        const scale = d / load.durationS;
        const name = load.node ?? target.processes().find((p) => p.name !== 'nats-server')?.name;
        if (!target.killNode || !target.restartNode) throw new Error('node-loss needs a target that can kill and restart nodes (use --start-cluster)');
        if (name === undefined) throw new Error('node-loss: the target lists no node to kill; set load.node');
        const kill = target.killNode.bind(target);
        const restart = target.restartNode.bind(target);
        await runPhase({
          spec: open('node-loss', [{ startMs: 0, rate: load.rate }], d),
          actions: [
            { atMs: load.killAtS * scale * 1000, label: `kill ${name}`, run: () => kill(name) },
            { atMs: load.restartAtS * scale * 1000, label: `restart ${name}`, run: () => restart(name) },
          ],
          marks: [],
        });
        break;
      }
      case 'shard-move': {
        const d = opts.durationS ?? load.durationS;
        const scale = d / load.durationS;
        if (!target.moveShard) throw new Error('shard-move needs a target that can move shards (use --start-cluster)');
        const move = target.moveShard.bind(target);
        const what = `move ${load.move === 'user' ? 'partition' : 'item shard'} ${load.index}`;
        await runPhase({
          spec: open('shard-move', [{ startMs: 0, rate: load.rate }], d),
          actions: [{ atMs: load.moveAtS * scale * 1000, label: what, run: async () => log(`  ${await move(load.move, load.index, load.to)}`) }],
          marks: [],
        });
        break;
      }
      default: {
        const never: never = load;
        throw new Error(`unknown load kind ${JSON.stringify(never)}`);
      }
    }
  } finally {
    sampler.stop();
    await fleet.close();
  }

  // Routed by user, a phase carries its own entry processes (PhaseResult.entryProcesses); spread,
  // the requests entered evenly through the given coordinators.
  const measured = findCapacity(phases, sc.slo, addresses.length);
  const routedPhase = measured !== undefined ? phases.find((p) => p.name === measured.phase) : phases.at(-1);
  const cpuId = cpuIdentity();
  return {
    version: 1,
    scenario: sc.name,
    kind: sc.load.kind,
    description: sc.description,
    startedAt: new Date(runStart).toISOString(),
    durationS: (Date.now() - runStart) / 1000,
    target: addresses.join(','),
    slo: sc.slo,
    conditions: {
      host: os.hostname(),
      cpus: os.cpus().length,
      cpuModel: cpuId.model,
      cpuFamilyModelStepping: cpuId.familyModelStepping,
      ...(cpuId.simd !== undefined ? { cpuSimd: cpuId.simd } : {}),
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
      generatorProcesses: sc.generator.processes,
      channelsPerProcess: sc.generator.channels,
      routing: sc.generator.routing,
      maxInFlight: sc.generator.maxInFlight,
      deadlineMs: sc.generator.deadlineMs,
      seed: sc.generator.seed,
      users: usersOrigin,
      videos: worldDir ?? `range ${sc.videos.rangeStart}..${sc.videos.rangeStart + sc.videos.count - 1}`,
      eventsPerSecond: sc.events?.rate ?? 0,
      generatorOnTargetHost: addresses.some(isLocal),
      coordinatorsCalled: Math.max(addresses.length, ...phases.map((p) => p.coordinatorsCalled ?? 0)),
      ...(routedPhase?.entryProcesses !== undefined ? { busiestCoordinatorShare: 1 / routedPhase.entryProcesses } : {}),
    },
    phases,
    timeline,
    events: events.sort((a, b) => a.tS - b.tS),
    processes: processReports(sampler, runStart),
    capacity: capacityModel(sc.capacity, measured),
    warnings,
  };
}

type RunPhase = (p: PlannedPhase) => Promise<PhaseResult>;
type Open = (name: string, segments: RateSegment[], durationS: number) => PhaseSpec;

/** Steps the rate up until `stopAfter` consecutive steps miss the SLO or maxRate is passed. */
async function runRamp(start: number, step: number, max: number, stepS: number, stopAfter: number, prefix: string, runPhase: RunPhase, open: Open): Promise<void> {
  let breaches = 0;
  for (let rate = start; rate <= max + 1e-9; rate += step) {
    const r = await runPhase({ spec: open(`${prefix}-${Math.round(rate)}`, [{ startMs: 0, rate }], stepS), actions: [], marks: [] });
    breaches = r.sloMet ? 0 : breaches + 1;
    if (breaches >= stopAfter) break;
  }
}

function describeRate(segments: readonly RateSegment[]): string {
  return segments.map((s) => Math.round(s.rate)).join('→');
}

function isLocal(address: string): boolean {
  return /^(localhost|127\.|\[?::1\]?|0\.0\.0\.0)/.test(address);
}

/**
 * Routed by user, the coordinators a phase's requests entered through, unevenly (by their
 * partitions' traffic): attempts / the busiest coordinator's attempts, so that a thread's cost per
 * request of that coordinator's process is not understated; and how many coordinators took any.
 */
function routedEntry(run: FleetRun): Pick<PhaseResult, 'entryProcesses' | 'coordinatorsCalled'> {
  const counts = Object.values(run.routing?.callsByAddress ?? {});
  const total = counts.reduce((s, n) => s + n, 0);
  const max = Math.max(0, ...counts);
  return max > 0 ? { entryProcesses: total / max, coordinatorsCalled: counts.length } : {};
}

function summarisePhase(spec: PhaseSpec, run: FleetRun, startS: number, sc: Scenario, sampler: ProcSampler, cpuFrom: number, cpuTo: number, target: Target): PhaseResult {
  const rec = run.recorder;
  const c = rec.counts;
  const durationS = spec.durationMs / 1000;
  const byOutcome = rec.byOutcome();
  const outcomes: Record<string, number> = {};
  let errors = 0;
  for (const [k, p] of Object.entries(byOutcome)) {
    outcomes[k] = p.count;
    if (k.startsWith('error:')) errors += p.count;
  }
  const good = (outcomes['ranked'] ?? 0) + (outcomes['degraded'] ?? 0);
  const wallS = Math.max(0.001, (cpuTo - cpuFrom) / 1000);
  const cpu = sampler.cpuSecondsBetween(cpuFrom, cpuTo);
  const targetNames = new Set(target.processes().map((p) => p.name));
  const cpuCoresByProcess: Record<string, number> = {};
  let serverCores = 0;
  let sampled = false;
  for (const [name, s] of Object.entries(cpu)) {
    cpuCoresByProcess[name] = s / wallS;
    if (isServerProcess(name, targetNames)) {
      serverCores += s / wallS;
      sampled = true;
    }
  }
  const rssAll = sampler.maxRssBetween(cpuFrom, cpuTo);
  const threadCpu = sampler.threadCpuBetween(cpuFrom, cpuTo);
  // Top 5 of the target's threads: ask for more, since the generators' threads are left out.
  const threads = busiestThreads(threadCpu, 40);
  const runQueueWaitMs = serverRunQueueWaitMs(threadCpu, targetNames);
  const machineCpu = sampler.machineCpuBetween(cpuFrom, cpuTo);
  const cpuThrottling = sampler.cpuThrottlingBetween(cpuFrom, cpuTo);
  const topThreads = threads.top.filter((th) => !th.process.startsWith('generator-')).slice(0, 5).map((th) => threadLoad(th, c.completed, wallS));
  const busiestThreadByProcess: Record<string, ThreadLoad> = {};
  let busiestThread: ThreadLoad | undefined;
  for (const [name, th] of Object.entries(threads.byProcess)) {
    const load = threadLoad(th, c.completed, wallS);
    busiestThreadByProcess[name] = load;
    const isNode = !name.startsWith('generator-') && name !== 'nats-server' && targetNames.has(name);
    if (isNode && (!busiestThread || load.cpuSeconds > busiestThread.cpuSeconds)) busiestThread = load;
  }
  const throughput = c.completed / durationS;
  const errorRate = c.completed > 0 ? errors / c.completed : 0;
  const latencyMs = rec.latency();
  const serverStagesMs = rec.serverStages();
  const lagMs = rec.lag();
  const generatorCpuCores = run.generatorCpuSeconds / Math.max(0.001, run.wallMs / 1000);
  // Saturated: sends ran late by more than a tenth of the SLO (at least 5 ms) at P99, arrivals were
  // dropped, or the generator processes were near a full core each.
  const lagLimit = Math.max(5, sc.slo.p99Ms / 10);
  const generatorSaturated = lagMs.p99 > lagLimit || c.dropped > 0 || generatorCpuCores / run.processes > 0.9;
  const ok = meetsSlo({ errorRate, latencyMs }, sc.slo);
  const sloVerdict = ok
    ? `SLO met (p99 ${latencyMs.p99.toFixed(1)} ≤ ${sc.slo.p99Ms} ms, errors ${(errorRate * 100).toFixed(3)}%)`
    : latencyMs.p99 > sc.slo.p99Ms
      ? `SLO missed: p99 ${latencyMs.p99.toFixed(1)} > ${sc.slo.p99Ms} ms`
      : `SLO missed: error rate ${(errorRate * 100).toFixed(3)}% ≥ ${(sc.slo.maxErrorRate * 100).toFixed(3)}%`;
  return {
    name: spec.name,
    mode: spec.mode,
    offeredRate: spec.mode === 'open' ? c.offered / durationS : throughput,
    concurrency: spec.concurrency,
    startS,
    durationS,
    sent: c.sent,
    dropped: c.dropped,
    completed: c.completed,
    throughput,
    goodput: good / durationS,
    outcomes,
    errorRate,
    latencyMs,
    serviceMs: rec.serviceTime(),
    lagMs,
    byOutcome,
    ...(serverStagesMs !== undefined ? { serverStagesMs } : {}),
    coverage: c.coverageCount > 0 ? { mean: c.coverageSum / c.coverageCount, min: c.coverageMin } : undefined,
    logEvents: { batches: c.eventBatchesSent, events: c.eventsSent, failedBatches: c.eventBatchesFailed, droppedBatches: c.eventBatchesDropped, latencyMs: rec.eventLatency() },
    cpuCoresByProcess,
    serverCpuCores: sampled ? serverCores : undefined,
    qpsPerServerCore: sampled && serverCores > 0 ? throughput / serverCores : undefined,
    busiestThread,
    busiestThreadByProcess,
    topThreads,
    ...(runQueueWaitMs !== undefined && c.completed > 0 ? { runQueueWaitMsPerRequest: runQueueWaitMs / c.completed } : {}),
    ...(machineCpu !== undefined ? { machineCpu } : {}),
    ...(cpuThrottling !== undefined ? { cpuThrottling } : {}),
    rssBytesByProcess: rssAll,
    generatorCpuCores,
    generatorProcesses: run.processes,
    generatorSaturated,
    ...(run.routing !== undefined && run.routing.routed + run.routing.spread > 0 ? { routedShare: run.routing.routed / (run.routing.routed + run.routing.spread) } : {}),
    ...routedEntry(run),
    sloMet: ok,
    sloVerdict,
  };
}

/** A thread's phase CPU as a {@link ThreadLoad}: ms per answered request and share of a core. */
export function threadLoad(t: ThreadCpu, answered: number, wallS: number): ThreadLoad {
  return {
    process: t.process,
    pid: t.pid,
    tid: t.tid,
    thread: t.name === 'main' ? 'main' : `thread ${t.tid} (${t.name})`,
    cpuSeconds: t.cpuSeconds,
    msPerRequest: answered > 0 ? (t.cpuSeconds * 1000) / answered : undefined,
    utilisation: wallS > 0 ? t.cpuSeconds / wallS : 0,
    ...(t.runQueueWaitSeconds !== undefined && answered > 0 ? { waitMsPerRequest: (t.runQueueWaitSeconds * 1000) / answered } : {}),
  };
}

/** Whether a sampled process is part of the server (the target's processes and nats-server), not a load generator. */
function isServerProcess(name: string, targetNames: ReadonlySet<string>): boolean {
  return !name.startsWith('generator-') && (targetNames.has(name) || name === 'nats-server');
}

/**
 * Ms the server's threads ({@link isServerProcess}) spent waiting for a CPU in a phase, summed;
 * undefined when no server thread has a run-queue reading.
 */
export function serverRunQueueWaitMs(threads: readonly ThreadCpu[], targetNames: ReadonlySet<string>): number | undefined {
  let sum = 0;
  let seen = false;
  for (const t of threads) {
    if (!isServerProcess(t.process, targetNames) || t.runQueueWaitSeconds === undefined) continue;
    sum += t.runQueueWaitSeconds * 1000;
    seen = true;
  }
  return seen ? sum : undefined;
}

function processReports(sampler: ProcSampler, runStart: number): ProcessSeriesReport[] {
  return sampler.series().map((s) => {
    // Rates over at least half a second: phase-boundary samples can be milliseconds apart.
    const points: Array<{ tS: number; cpuCores: number; rssMiB: number }> = [];
    let prev = s.points[0];
    for (const p of s.points.slice(1)) {
      const dt = (p.atMs - prev!.atMs) / 1000;
      if (dt < 0.5) continue;
      points.push({ tS: (p.atMs - runStart) / 1000, cpuCores: (p.cpuSeconds - prev!.cpuSeconds) / dt, rssMiB: p.rssBytes / 2 ** 20 });
      prev = p;
    }
    const first = s.points[0];
    const last = s.points[s.points.length - 1];
    return {
      name: s.name,
      pid: s.pid,
      points,
      cpuSeconds: first && last ? last.cpuSeconds - first.cpuSeconds : 0,
      maxRssBytes: Math.max(0, ...s.points.map((p) => p.rssBytes)),
    };
  });
}
