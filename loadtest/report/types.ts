/**
 * The load-test report as data: written as JSON beside the HTML page, read back by tools that
 * compare runs. Times are seconds from the run's start unless a field says otherwise; latencies
 * are milliseconds from the intended send time.
 */
import type { CpuThrottling } from '../measure/cgroup-cpu.js';
import type { ServerStage } from '../measure/outcome.js';
import type { Percentiles } from '../measure/recorder.js';
import type { CapacityReport } from './capacity.js';

export type { Percentiles };

/** One thread's CPU in a phase (from /proc/<pid>/task/<tid>/stat). */
export interface ThreadLoad {
  /** Process display name, e.g. "n1". */
  readonly process: string;
  readonly pid: number;
  readonly tid: number;
  /** "main" (tid = pid), else "thread <tid> (<comm>)": Node names its worker threads "node". */
  readonly thread: string;
  /** CPU seconds (user + system) of the thread in the phase. */
  readonly cpuSeconds: number;
  /** Thread CPU ms per answered request (any outcome); undefined when nothing was answered. */
  readonly msPerRequest: number | undefined;
  /** cpuSeconds / phase wall seconds, 0..1: at 1 the thread is a full core and caps its process. */
  readonly utilisation: number;
  /**
   * Ms per answered request the thread was runnable but waited for a CPU (its run-queue wait,
   * /proc/<pid>/task/<tid>/schedstat); undefined without schedstat or without answers.
   */
  readonly waitMsPerRequest?: number;
}

/** One phase (a ramp step, the whole steady run, one overload level). */
export interface PhaseResult {
  readonly name: string;
  readonly mode: 'open' | 'closed';
  /** Mean intended arrival rate, req/s (closed loop: the achieved rate). */
  readonly offeredRate: number;
  /** Closed loop: callers; open loop: 0. */
  readonly concurrency: number;
  readonly startS: number;
  readonly durationS: number;
  readonly sent: number;
  /** Arrivals the generator could not send (maxInFlight reached). */
  readonly dropped: number;
  readonly completed: number;
  /** Answers of any kind per second. */
  readonly throughput: number;
  /** Ranked + degraded answers per second (personalised answers). */
  readonly goodput: number;
  /** Count per outcome key: ranked, degraded, fallback, error:<CODE>. */
  readonly outcomes: Readonly<Record<string, number>>;
  /** Errors / completed. */
  readonly errorRate: number;
  readonly latencyMs: Percentiles;
  /** From actual send time: what a generator with coordinated omission would report. */
  readonly serviceMs: Percentiles;
  /** Generator lag: actual minus intended send time. */
  readonly lagMs: Percentiles;
  readonly byOutcome: Readonly<Record<string, Percentiles>>;
  /**
   * The server's own timing of each pipeline stage (RecommendResponse.timings; requests are sent
   * with debug unless `mix.stageTimings` is false): which stage a slow answer waited in. `total`
   * is the pipeline's time; `latencyMs` less it is the time outside the pipeline (the generator's
   * lag, gRPC and the network, the node's event loop before the handler ran). Absent when no
   * answer carried timings (reports written before the field, or timings off).
   */
  readonly serverStagesMs?: Readonly<Record<ServerStage, Percentiles>>;
  readonly coverage: { readonly mean: number; readonly min: number } | undefined;
  readonly logEvents: { readonly batches: number; readonly events: number; readonly failedBatches: number; readonly droppedBatches: number; readonly latencyMs: Percentiles };
  /** CPU cores used by each target process over the phase. */
  readonly cpuCoresByProcess: Readonly<Record<string, number>>;
  /** Sum over the target's processes (nats-server included); undefined when none is sampled. */
  readonly serverCpuCores: number | undefined;
  /** Throughput / serverCpuCores. */
  readonly qpsPerServerCore: number | undefined;
  /**
   * The busiest thread of the node processes (nats-server and generators excluded: Go spreads
   * goroutines over threads, so none of its threads is a serial limit); undefined when threads were
   * not sampled. Its msPerRequest sets the capacity model's process ceiling.
   */
  readonly busiestThread: ThreadLoad | undefined;
  /** Per sampled process (nats-server and generators included), its busiest thread. */
  readonly busiestThreadByProcess: Readonly<Record<string, ThreadLoad>>;
  /** The five busiest threads of the target's processes (generators excluded), most CPU first. */
  readonly topThreads: readonly ThreadLoad[];
  /**
   * Ms per answered request that the target's threads (nats-server's included, generators' not)
   * spent runnable but waiting for a CPU, summed over threads: latency spent waiting for a core,
   * not working. Undefined when threads were not sampled, the kernel has no schedstat, or nothing
   * was answered.
   */
  readonly runQueueWaitMsPerRequest?: number;
  /** The machine's CPU time over the phase (/proc/stat): idle and hypervisor-steal shares, 0..1. */
  readonly machineCpu?: { readonly idleShare: number; readonly stealShare: number };
  /**
   * CPU-quota throttling of the target processes' cgroups over the phase (cgroup v2 `cpu.stat` of
   * the group whose `cpu.max` binds): enforcement periods in which the group used its quota and
   * had its threads stopped until the period ended. Undefined where unread (no cgroup v2 cpu
   * controller, a remote target whose pids are not known).
   */
  readonly cpuThrottling?: CpuThrottling;
  /** Highest RSS per process in the phase, bytes. */
  readonly rssBytesByProcess: Readonly<Record<string, number>>;
  /** CPU cores used by the generator process(es). */
  readonly generatorCpuCores: number;
  readonly generatorProcesses: number;
  /** True when the generator could not keep its schedule; the phase then understates capacity. */
  readonly generatorSaturated: boolean;
  /**
   * With routing "user": the share of Recommend calls sent to a coordinator hosting the user's
   * partition (the rest were spread: no table yet, or no coordinator hosts the partition).
   */
  readonly routedShare?: number;
  /**
   * With routing "user": Recommend attempts / the busiest coordinator's attempts (the coordinators
   * the requests entered through, counted for the capacity model), and how many coordinators took any.
   */
  readonly entryProcesses?: number;
  readonly coordinatorsCalled?: number;
  readonly sloMet: boolean;
  /** Why the SLO was or was not met, in words. */
  readonly sloVerdict: string;
}

/** One second of the run. */
export interface TimelinePoint {
  readonly tS: number;
  readonly phase: string;
  readonly offered: number;
  readonly completed: number;
  readonly errors: number;
  readonly fallback: number;
  readonly dropped: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** Something that happened during the run (node killed, spike started). */
export interface TimelineEvent {
  readonly tS: number;
  readonly label: string;
}

/** CPU (cores) and RSS of one process over the run. */
export interface ProcessSeriesReport {
  readonly name: string;
  readonly pid: number;
  readonly points: ReadonlyArray<{ readonly tS: number; readonly cpuCores: number; readonly rssMiB: number }>;
  readonly cpuSeconds: number;
  readonly maxRssBytes: number;
}

/** Conditions of the run, so numbers are never quoted without them. */
export interface RunConditions {
  readonly host: string;
  readonly cpus: number;
  /** The CPU's model name (a VM may give only "AMD EPYC"). */
  readonly cpuModel: string;
  /** "family/model/stepping" from /proc/cpuinfo, "unknown" elsewhere (reports before 2026-11-26 lack it). */
  readonly cpuFamilyModelStepping?: string;
  /** The SIMD extensions that pick faiss's and ONNX Runtime's kernels; absent when unread. */
  readonly cpuSimd?: readonly string[];
  readonly memoryGiB: number;
  readonly node: string;
  readonly generatorProcesses: number;
  readonly channelsPerProcess: number;
  readonly maxInFlight: number;
  readonly deadlineMs: number;
  readonly seed: number;
  readonly users: string;
  readonly videos: string;
  readonly eventsPerSecond: number;
  /** True when the generator shares the machine with the target (local runs). */
  readonly generatorOnTargetHost: boolean;
  /** Coordinators the generator called: the given ones (spread), or those the routing table sent calls to (routing "user"). */
  readonly coordinatorsCalled: number;
  /** Routing "user": the share of routed calls the busiest coordinator took (1 / coordinators when even). */
  readonly busiestCoordinatorShare?: number;
  /** How Recommend calls picked a coordinator ("spread" or "user"; absent in reports before it existed). */
  readonly routing?: 'spread' | 'user';
}

export interface LoadtestReport {
  readonly version: 1;
  readonly scenario: string;
  readonly kind: string;
  readonly description: string;
  /** ISO-8601. */
  readonly startedAt: string;
  readonly durationS: number;
  readonly target: string;
  readonly slo: { readonly p99Ms: number; readonly maxErrorRate: number };
  readonly conditions: RunConditions;
  readonly phases: readonly PhaseResult[];
  readonly timeline: readonly TimelinePoint[];
  readonly events: readonly TimelineEvent[];
  readonly processes: readonly ProcessSeriesReport[];
  readonly capacity: CapacityReport;
  readonly warnings: readonly string[];
}
