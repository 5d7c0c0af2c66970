/**
 * The end-to-end cluster run of `make bench`: a real local cluster (cluster/local/launcher.ts: one
 * nats-server, N node processes hosting item shards, user partitions, rankers, popular and the
 * coordinator) driven over its public gRPC Recommend by the load generator (loadtest/runner) at
 * stepped open-loop rates. Per step: throughput, latency from intended send time (no coordinated
 * omission), and the CPU of every server process and nats-server read from /proc.
 *
 * QPS per server core = personalised answers per second (outcomes ranked + degraded; popular
 * fallbacks and shed requests excluded, since they skip the work the ceiling does) / server CPU
 * cores (node processes + nats-server; the generator excluded). The figure reported is the step
 * with the highest such throughput that met the SLO. Each step also names the busiest thread of
 * the node processes (/proc/<pid>/task/<tid>/stat) and its CPU ms per answered request: the serial
 * ceiling of one node process.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { UpnextConfigInput } from '../../cluster/config.js';
import { startLocalCluster } from '../../cluster/local/launcher.js';
import type { LocalClusterHandle } from '../../cluster/local/launcher.js';
import type { RequestMixSpec } from '../generator/request-mix.js';
import type { CpuThrottling } from '../measure/cgroup-cpu.js';
import { STAGE_LABELS, mapStages, slowestStage } from '../measure/outcome.js';
import type { ServerStage } from '../measure/outcome.js';
import type { Percentiles, PhaseResult, ThreadLoad } from '../report/types.js';
import { runScenario } from '../runner/scenario-runner.js';
import { parseScenario } from '../scenarios/config.js';
import type { Scenario } from '../scenarios/config.js';
import { clusterTarget } from '../target.js';

/** The request mix of the bench (scenario JSON `mix`): the steady homepage mix of loadtest/scenarios. */
export const BENCH_MIX_JSON = Object.freeze({
  newUserShare: 0.05,
  k: { '10': 0.2, '20': 0.6, '50': 0.2 },
  surfaces: { home: 0.7, up_next: 0.3 },
});

/** Options of {@link runEndToEnd}. */
export interface EndToEndOptions {
  readonly worldDir: string;
  readonly modelDir: string;
  /** Cluster working directory; item-shard snapshots there make the next start fast. Required. */
  readonly runDir: string;
  /** Cluster config (shape, actor knobs); the ceiling must use the same. Default: the defaults. */
  readonly config?: UpnextConfigInput;
  /** First open-loop rate, req/s. Default 25. */
  readonly startRate?: number;
  /** Rate added per step, req/s. Default 25. */
  readonly stepRate?: number;
  /** Highest rate tried, req/s. Default 2000. */
  readonly maxRate?: number;
  /** Seconds per step. Default 8. */
  readonly stepS?: number;
  /** P99 bound of the SLO, ms. Default 50. */
  readonly p99Ms?: number;
  /** Steps missing the SLO in a row before the ramp stops. Default 2. */
  readonly stopAfterBreaches?: number;
  /** Generator seed. Default 1. */
  readonly seed?: number;
  /**
   * Load-generator processes. Default 1, enough for the 2-core box; a 16-core machine's node
   * processes answer more than one generator process sends without lag (it reports itself
   * saturated), so a larger machine needs 3–4.
   */
  readonly generatorProcesses?: number;
  /**
   * How the generator picks a coordinator (GeneratorSettings.routing): "spread" (default) or "user"
   * (each user to a coordinator hosting its partition; meaningful when several nodes run one:
   * `--set cluster.coordinators=n1,n2,n3`).
   */
  readonly routing?: 'spread' | 'user';
  /**
   * Seconds of load at `startRate` before the ramp, not reported: the first requests pay for JIT,
   * connection set-up, the popular caches and user-embedding caches. Default 5.
   */
  readonly warmUpS?: number;
  /**
   * When set, every node process runs with `--cpu-prof` and writes its profile here on its
   * graceful stop (see {@link summariseProfiles}). Default: no profiling.
   */
  readonly profileDir?: string;
  readonly log?: (line: string) => void;
}

/** One ramp step, reduced to what bench.json and the tables show. */
export interface EndToEndStep {
  readonly offeredRate: number;
  readonly throughput: number;
  /** Ranked + degraded answers per second. */
  readonly goodput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errorRate: number;
  readonly serverCpuCores: number | null;
  /** goodput / serverCpuCores. */
  readonly qpsPerServerCore: number | null;
  readonly cpuCoresByProcess: Readonly<Record<string, number>>;
  /**
   * The busiest thread of the node processes in the step: its CPU ms per answered request sets the
   * most one node process can serve (1000 / ms); null when threads were not sampled.
   */
  readonly busiestThread: ThreadLoad | null;
  /** The five busiest threads of the server processes (item-shard and ranker workers show here). */
  readonly topThreads: readonly ThreadLoad[];
  /**
   * Ms per answered request the server's threads were runnable but waited for a CPU (summed over
   * threads, /proc schedstat); null where unread. Thread time, not a slice of latency: two threads
   * waiting at once count twice.
   */
  readonly runQueueWaitMsPerRequest: number | null;
  /** The machine's idle and hypervisor-steal shares of CPU time in the step; null where unread. */
  readonly machineCpu: { readonly idleShare: number; readonly stealShare: number } | null;
  /** CPU-quota throttling of the cluster's cgroup in the step (PhaseResult.cpuThrottling); null where unread. */
  readonly cpuThrottling: CpuThrottling | null;
  readonly meanCoverage: number | null;
  /**
   * The server's own p50/p99 of each pipeline stage in the step (PhaseResult.serverStagesMs);
   * null when the answers carried no timings.
   */
  readonly serverStagesMs: Readonly<Record<ServerStage, { readonly p50: number; readonly p99: number }>> | null;
  readonly outcomes: Readonly<Record<string, number>>;
  readonly generatorSaturated: boolean;
  /** With routing "user": share of calls sent to a coordinator hosting the user's partition. */
  readonly routedShare?: number;
  /**
   * Node processes the step's requests entered through, as the capacity model counts them: the
   * coordinators called (spread evenly), or attempts / the busiest coordinator's (routing "user").
   * A thread's cost per request of its own process is this × its cost per step request.
   */
  readonly entryProcesses: number;
  /**
   * Main-thread stalls the node processes logged during the step (GC pauses and event-loop seconds
   * at or over `node.stallLogMs`, cluster/node/stall-watch.ts): what a p99 spike waited for.
   */
  readonly stalls: readonly NodeStall[];
  readonly sloMet: boolean;
}

/** One `gc_pause` or `event_loop_stall` line of a node's log. */
export interface NodeStall {
  readonly node: string;
  /** "gc <kind>" or "event loop". */
  readonly what: string;
  readonly ms: number;
  /** When the stall began: the line's `atMs`, else when the line arrived. */
  readonly atEpochMs: number;
}

/** The stall a node log line reports (`arrivedEpochMs` stands in for a line without `atMs`), or undefined for any other line. */
export function parseNodeStall(node: string, line: string, arrivedEpochMs: number): NodeStall | undefined {
  if (!line.includes('"gc_pause"') && !line.includes('"event_loop_stall"')) return undefined;
  let m: { event?: unknown; kind?: unknown; ms?: unknown; maxMs?: unknown; atMs?: unknown };
  try {
    m = JSON.parse(line) as typeof m;
  } catch {
    return undefined;
  }
  const atEpochMs = typeof m.atMs === 'number' ? m.atMs : arrivedEpochMs;
  if (m.event === 'gc_pause' && typeof m.ms === 'number') return { node, what: `gc ${String(m.kind)}`, ms: m.ms, atEpochMs };
  if (m.event === 'event_loop_stall' && typeof m.maxMs === 'number') return { node, what: 'event loop', ms: m.maxMs, atEpochMs };
  return undefined;
}

/** What the end-to-end run measured. */
export interface EndToEndResult {
  readonly steps: readonly EndToEndStep[];
  /** The step with the highest goodput that met the SLO; undefined when none did. */
  readonly best: EndToEndStep | undefined;
  readonly scenario: Scenario;
  readonly cluster: { readonly nodes: number; readonly itemShards: number; readonly userPartitions: number; readonly replicas: number; readonly startMs: number; readonly pids: Readonly<Record<string, number>> };
  /** The ramp's span on the monotonic clock (µs, the clock of V8's CPU profiles), for {@link summariseProfiles}. */
  readonly rampWindowUs: { readonly from: number; readonly to: number };
}

/** The bench's load scenario: a ramp of the homepage mix, no LogEvents (Recommend work only). */
export function benchScenario(o: BenchScenarioOptions = {}): Scenario {
  return parseScenario(scenarioJson(o));
}

type BenchScenarioOptions = Pick<EndToEndOptions, 'startRate' | 'stepRate' | 'maxRate' | 'stepS' | 'p99Ms' | 'stopAfterBreaches' | 'seed' | 'routing' | 'generatorProcesses'>;

function scenarioJson(o: BenchScenarioOptions): Record<string, unknown> {
  return {
    name: 'bench',
    kind: 'ramp',
    description: 'make bench: homepage mix, open-loop ramp until the SLO breaks; Recommend only (no LogEvents)',
    slo: { p99Ms: o.p99Ms ?? 50, maxErrorRate: 0.001 },
    generator: { processes: o.generatorProcesses ?? 1, channels: 4, maxInFlight: 2000, deadlineMs: 1000, seed: o.seed ?? 1, routing: o.routing ?? 'spread' },
    mix: BENCH_MIX_JSON,
    load: {
      startRate: o.startRate ?? 25,
      stepRate: o.stepRate ?? 25,
      maxRate: o.maxRate ?? 2000,
      stepDurationS: o.stepS ?? 8,
      stopAfterBreaches: o.stopAfterBreaches ?? 2,
    },
  };
}

/** Now on CLOCK_MONOTONIC in µs: libuv's hrtime and V8's profiler ticks read the same clock. */
function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** The resolved request mix of {@link benchScenario} (for the ceiling's request list). */
export function benchMix(): RequestMixSpec {
  return benchScenario().mix;
}

function step(p: PhaseResult, spreadEntry: number, runStartEpochMs: number, stalls: readonly NodeStall[]): EndToEndStep {
  const cores = p.serverCpuCores ?? null;
  const from = runStartEpochMs + p.startS * 1000;
  const to = from + p.durationS * 1000;
  return {
    offeredRate: p.offeredRate,
    throughput: p.throughput,
    goodput: p.goodput,
    p50Ms: p.latencyMs.p50,
    p99Ms: p.latencyMs.p99,
    errorRate: p.errorRate,
    serverCpuCores: cores,
    qpsPerServerCore: cores !== null && cores > 0 ? p.goodput / cores : null,
    cpuCoresByProcess: p.cpuCoresByProcess,
    busiestThread: p.busiestThread ?? null,
    topThreads: p.topThreads,
    runQueueWaitMsPerRequest: p.runQueueWaitMsPerRequest ?? null,
    machineCpu: p.machineCpu ?? null,
    cpuThrottling: p.cpuThrottling ?? null,
    meanCoverage: p.coverage?.mean ?? null,
    serverStagesMs: p.serverStagesMs !== undefined ? stageQuantiles(p.serverStagesMs) : null,
    outcomes: p.outcomes,
    generatorSaturated: p.generatorSaturated,
    ...(p.routedShare !== undefined ? { routedShare: p.routedShare } : {}),
    entryProcesses: p.entryProcesses ?? spreadEntry,
    stalls: stalls.filter((x) => x.atEpochMs >= from && x.atEpochMs < to),
    sloMet: p.sloMet,
  };
}

function stageQuantiles(stages: Readonly<Record<ServerStage, Percentiles>>): Record<ServerStage, { p50: number; p99: number }> {
  return mapStages((stage) => ({ p50: stages[stage].p50, p99: stages[stage].p99 }));
}

/**
 * A step's CPU-quota throttling for the table: periods throttled of those elapsed, the throttled
 * run-queue time (summed over CPUs) and the quota; 'no quota' when the cgroup has none, '—' when
 * unread.
 */
export function throttlingText(t: CpuThrottling | null): string {
  if (t === null) return '—';
  if (t.quotaCores === null) return 'no quota';
  return `${t.throttledPeriods}/${t.periods} periods, ${t.throttledMs.toFixed(0)} CPU-ms (quota ${t.quotaCores.toFixed(2)} cores)`;
}

/**
 * The pipeline stage (total left out) with the highest p99 in a step, e.g. `retrieval 31.0`: where
 * the slow answers waited. '—' when the step has no timings.
 */
export function slowestStageText(stages: EndToEndStep['serverStagesMs']): string {
  if (stages === null) return '—';
  const worst = slowestStage(stages);
  return `${STAGE_LABELS[worst]} ${stages[worst].p99.toFixed(1)}`;
}

/** Starts the cluster, runs the ramp, stops the cluster (also on failure). */
export async function runEndToEnd(o: EndToEndOptions): Promise<EndToEndResult> {
  const log = o.log ?? (() => {});
  const scenario = benchScenario(o);
  const t0 = Date.now();
  log(`end-to-end: starting the local cluster in ${o.runDir}`);
  const stalls: NodeStall[] = [];
  const cluster: LocalClusterHandle = await startLocalCluster({
    runDir: o.runDir,
    onNodeLog: (node, line) => {
      const stall = parseNodeStall(node, line, Date.now());
      if (stall !== undefined) stalls.push(stall);
    },
    worldDir: o.worldDir,
    modelDir: o.modelDir,
    grpcPort: 0,
    ...(o.profileDir !== undefined ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', o.profileDir] } : {}),
    ...(o.config !== undefined ? { config: o.config } : {}),
  });
  const startMs = Date.now() - t0;
  log(`end-to-end: cluster ready in ${(startMs / 1000).toFixed(1)} s at ${cluster.grpcAddress}`);
  try {
    const target = clusterTarget(cluster, path.resolve(o.worldDir));
    const warmUpS = o.warmUpS ?? 5;
    if (warmUpS > 0) {
      const load = scenario.load.kind === 'ramp' ? scenario.load.startRate : 100;
      const warm = parseScenario({ ...scenarioJson(o), name: 'bench-warm-up', kind: 'steady', load: { rate: load, durationS: warmUpS } });
      log(`end-to-end: warm-up ${warmUpS} s at ${load}/s (not reported)`);
      await runScenario({ scenario: warm, target });
    }
    const from = monotonicUs();
    const report = await runScenario({ scenario, target, log });
    const to = monotonicUs();
    const spreadEntry = Math.max(1, report.conditions.coordinatorsCalled);
    const runStartEpochMs = Date.parse(report.startedAt);
    const steps = report.phases.map((p) => step(p, spreadEntry, runStartEpochMs, stalls));
    const best = steps.filter((s) => s.sloMet).sort((a, b) => b.goodput - a.goodput)[0];
    const c = cluster.config.cluster;
    const pids: Record<string, number> = { 'nats-server': cluster.natsPid };
    for (const n of cluster.nodes) pids[n.name] = n.pid;
    return { steps, best, scenario, cluster: { nodes: c.nodes, itemShards: c.itemShards, userPartitions: c.userPartitions, replicas: c.replicas, startMs, pids }, rampWindowUs: { from, to } };
  } finally {
    await cluster.stop();
  }
}

/** One function's share of a CPU profile. */
export interface ProfileEntry {
  /** `function (file:line)`, with the repository prefix cut. */
  readonly frame: string;
  /** Self time, ms. */
  readonly selfMs: number;
  /** Self time / all sampled time (idle excluded), 0..1. */
  readonly share: number;
}

interface CpuProfile {
  readonly startTime: number;
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number } }>;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/**
 * Frames where a thread sits blocked rather than computing: V8 samples them like work. piscina's
 * idle workers park in Atomics.wait inside `atomicsWaitLoop`.
 */
const BLOCKED_FRAMES = new Set(['(idle)', 'atomicsWaitLoop']);

/** Sampled time of one thread's profile inside the window, with its heaviest frames. */
export interface ThreadProfile {
  /** The profile file's name: `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`. */
  readonly file: string;
  readonly pid: number;
  /** 0 = the main thread, 1… = worker threads in start order. */
  readonly thread: number;
  /** Sampled ms in the window, blocked frames excluded. */
  readonly sampledMs: number;
  readonly top: readonly ProfileEntry[];
}

/** What {@link summariseProfiles} found. */
export interface ProfileSummary {
  /** The heaviest frames over every thread. */
  readonly top: readonly ProfileEntry[];
  /** Per thread, heaviest first. */
  readonly threads: readonly ThreadProfile[];
}

/**
 * Self time of V8 `.cpuprofile` files (`node --cpu-prof`), over all files and per thread, counting
 * only samples inside `windowUs` (monotonic µs, e.g. {@link EndToEndResult.rampWindowUs}; default:
 * all) so start-up work (world replay, index restore) stays out of the hot path. Blocked frames
 * ({@link BLOCKED_FRAMES}) are left out. V8 samples wall time of a running thread, so on a
 * contended machine the ms overstate CPU; the shares are what to read.
 */
export async function summariseProfiles(files: readonly string[], n = 15, windowUs?: { readonly from: number; readonly to: number }): Promise<ProfileSummary> {
  const all = new Map<string, number>();
  let total = 0;
  const threads: ThreadProfile[] = [];
  for (const file of files) {
    const prof = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
    const frameOf = new Map<number, string>();
    for (const node of prof.nodes) {
      const f = node.callFrame;
      const where = f.url === '' ? '' : ` (${f.url.replace(/^file:\/\//, '').replace(/^.*?\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1})`;
      frameOf.set(node.id, `${f.functionName || '(anonymous)'}${where}`);
    }
    const mine = new Map<string, number>();
    let mineTotal = 0;
    let at = prof.startTime;
    prof.samples.forEach((id, i) => {
      const us = prof.timeDeltas[i] ?? 0;
      at += us;
      if (windowUs !== undefined && (at < windowUs.from || at > windowUs.to)) return;
      const frame = frameOf.get(id) ?? '?';
      if (BLOCKED_FRAMES.has(frame.split(' (')[0]!)) return;
      mine.set(frame, (mine.get(frame) ?? 0) + us);
      mineTotal += us;
    });
    for (const [frame, us] of mine) all.set(frame, (all.get(frame) ?? 0) + us);
    total += mineTotal;
    const m = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(path.basename(file));
    threads.push({ file: path.basename(file), pid: Number(m?.[1] ?? -1), thread: Number(m?.[2] ?? -1), sampledMs: mineTotal / 1000, top: ranked(mine, mineTotal, 3) });
  }
  return { top: ranked(all, total, n), threads: threads.filter((t) => t.sampledMs > 0).sort((a, b) => b.sampledMs - a.sampledMs) };
}

function ranked(byFrame: ReadonlyMap<string, number>, total: number, n: number): ProfileEntry[] {
  return [...byFrame.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([frame, us]) => ({ frame, selfMs: us / 1000, share: total > 0 ? us / total : 0 }));
}

/** `.cpuprofile` files in `dir` (none when it does not exist). */
export async function cpuProfilesIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}
