/**
 * CPU and memory of the processes under test, read from Linux /proc: CPU seconds are
 * utime + stime (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of `getconf CLK_TCK`), RSS
 * is VmRSS from /proc/<pid>/status. Sampled on an interval over a run, so throughput can be put
 * per server core. A process that exits (node loss) simply has a gap in its series.
 *
 * Each sample also reads every thread of every process (/proc/<pid>/task/<tid>/stat, same
 * fields), because a node process is not a pool of interchangeable cores: its main thread, each
 * item-shard worker and each ranker worker run serially, so the busiest thread caps the process's
 * throughput whatever the core count (see {@link busiestThreads} and report/capacity.ts). Two
 * reads per thread per sample (stat and schedstat): a 3-node cluster is ~60 threads, cheap at one
 * sample a second.
 *
 * Waiting for a CPU: each thread's run-queue wait (field 2 of /proc/<pid>/task/<tid>/schedstat:
 * time runnable but not running, ns) and the machine's idle and steal time (/proc/stat) say how much
 * thread time went to waiting for a core rather than working. On the 2-vCPU VM a thread waits
 * ~0.2–0.5 ms each time it goes onto a CPU, even while the machine is half idle, and a Recommend's
 * threads go onto a CPU ~17 times (docs/capacity.md, "Waiting for a core, and which CPU"); on a
 * large machine the same figure shows oversubscription (more runnable threads than cores).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { ProcessRef } from '../target.js';
import { cgroupDirOf, readCgroupCpu, throttlingBetween } from './cgroup-cpu.js';
import type { CgroupCpuReading, CpuThrottling } from './cgroup-cpu.js';

/** One reading of one process. */
export interface ProcReading {
  /** CPU seconds (user + system) since the process started. */
  readonly cpuSeconds: number;
  /** Resident set size, bytes. */
  readonly rssBytes: number;
}

/** One reading of one thread of a process. */
export interface ThreadReading {
  /** Thread id (Linux tid); the main thread's tid equals the process's pid. */
  readonly tid: number;
  /** `comm` of the thread (at most 15 characters; Node names most of its threads "node"). */
  readonly comm: string;
  /** CPU seconds (user + system) since the thread started. */
  readonly cpuSeconds: number;
  /** Seconds runnable but waiting for a CPU since the thread started; undefined without schedstat. */
  readonly runQueueWaitSeconds?: number;
}

/** Clock ticks per second for /proc times; `getconf CLK_TCK`, 100 when getconf is missing. */
export function clockTicksPerSecond(): number {
  try {
    const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(v) && v > 0 ? v : 100;
  } catch {
    return 100;
  }
}

/**
 * Parses the text of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat file: the command name
 * (field 2) and utime + stime (fields 14 and 15) in seconds. Undefined when the text is not a stat
 * line (truncated read, a process mid-exit).
 */
export function parseStat(stat: string, ticksPerSecond: number): { readonly comm: string; readonly cpuSeconds: number } | undefined {
  // The command name (field 2) is in parentheses and may contain spaces and ')': it ends at the last ')'.
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const rest = stat.slice(close + 2).split(' ');
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { comm: stat.slice(open + 1, close), cpuSeconds: (utime + stime) / ticksPerSecond };
}

/**
 * The run-queue wait of a /proc/<pid>/task/<tid>/schedstat text ("<run ns> <wait ns> <slices>"),
 * in seconds; undefined when the text is not one (a truncated read) or is all zeros: a kernel that
 * keeps no scheduler statistics writes "0 0 0", and a thread we sample has run at least once.
 */
export function parseSchedstat(text: string): number | undefined {
  const f = text.trim().split(/\s+/);
  if (f.length < 3) return undefined;
  const [runNs, waitNs, slices] = f.slice(0, 3).map((x) => Number(x)) as [number, number, number];
  if (![runNs, waitNs, slices].every((x) => Number.isFinite(x) && x >= 0)) return undefined;
  if (runNs === 0 && slices === 0) return undefined;
  return waitNs / 1e9;
}

/** The machine's CPU time so far, from the aggregate `cpu` line of /proc/stat, in clock ticks. */
export interface MachineCpuReading {
  /** user + nice + system + idle + iowait + irq + softirq + steal (guest time is inside user). */
  readonly totalTicks: number;
  /** idle + iowait. */
  readonly idleTicks: number;
  /** Time the hypervisor ran something else while a vCPU had work. */
  readonly stealTicks: number;
}

/** Parses the text of /proc/stat; undefined when its first line is not the aggregate `cpu` line. */
export function parseProcStat(text: string): MachineCpuReading | undefined {
  const line = text.slice(0, text.indexOf('\n') < 0 ? text.length : text.indexOf('\n'));
  const f = line.trim().split(/\s+/);
  if (f[0] !== 'cpu' || f.length < 5) return undefined;
  const v = f.slice(1, 9).map((x) => Number(x));
  while (v.length < 8) v.push(0);
  if (v.some((x) => !Number.isFinite(x) || x < 0)) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = v as [number, number, number, number, number, number, number, number];
  return { totalTicks: user + nice + system + idle + iowait + irq + softirq + steal, idleTicks: idle + iowait, stealTicks: steal };
}

/** Shares of the machine's CPU time in a window, 0..1. */
export interface MachineCpuShares {
  readonly idleShare: number;
  readonly stealShare: number;
}

/** The shares between two readings; undefined when no time passed between them. */
export function machineCpuShares(from: MachineCpuReading, to: MachineCpuReading): MachineCpuShares | undefined {
  const total = to.totalTicks - from.totalTicks;
  if (!(total > 0)) return undefined;
  return { idleShare: Math.max(0, (to.idleTicks - from.idleTicks) / total), stealShare: Math.max(0, (to.stealTicks - from.stealTicks) / total) };
}

/**
 * Reads one process now; undefined when it does not exist (any more). `procRoot` (default
 * "/proc") lets tests read a fake tree.
 */
export function readProc(pid: number, ticksPerSecond: number, procRoot = '/proc'): ProcReading | undefined {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    status = readFileSync(`${procRoot}/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const s = parseStat(stat, ticksPerSecond);
  if (!s) return undefined;
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
  return { cpuSeconds: s.cpuSeconds, rssBytes: rssKb * 1024 };
}

/**
 * Reads every thread of one process now (empty when the process is gone). A thread that exits
 * between listing and reading is skipped.
 */
function readThreads(pid: number, ticksPerSecond: number, procRoot = '/proc'): ThreadReading[] {
  let tids: string[];
  try {
    tids = readdirSync(`${procRoot}/${pid}/task`);
  } catch {
    return [];
  }
  const out: ThreadReading[] = [];
  for (const t of tids) {
    const tid = Number(t);
    if (!Number.isInteger(tid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`${procRoot}/${pid}/task/${t}/stat`, 'utf8');
    } catch {
      continue;
    }
    const s = parseStat(stat, ticksPerSecond);
    if (!s) continue;
    let wait: number | undefined;
    try {
      wait = parseSchedstat(readFileSync(`${procRoot}/${pid}/task/${t}/schedstat`, 'utf8'));
    } catch {
      wait = undefined;
    }
    out.push(wait === undefined ? { tid, comm: s.comm, cpuSeconds: s.cpuSeconds } : { tid, comm: s.comm, cpuSeconds: s.cpuSeconds, runQueueWaitSeconds: wait });
  }
  return out;
}

/** One point of a process's series. */
export interface ProcPoint {
  /** Epoch ms. */
  readonly atMs: number;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
  /** Every thread at this sample; absent when thread sampling is off. */
  readonly threads?: readonly ThreadReading[];
}

/** A process's samples over the run. */
export interface ProcSeries {
  readonly name: string;
  readonly pid: number;
  readonly points: ProcPoint[];
}

/** CPU one thread spent in a window. */
export interface ThreadCpu {
  /** The process's display name (ProcessRef.name), e.g. "n1". */
  readonly process: string;
  readonly pid: number;
  readonly tid: number;
  /** "main" for the main thread (tid = pid), else the thread's comm. */
  readonly name: string;
  /** CPU seconds (user + system) in the window. */
  readonly cpuSeconds: number;
  /** Seconds runnable but waiting for a CPU in the window; undefined without schedstat. */
  readonly runQueueWaitSeconds: number | undefined;
}

/** What {@link busiestThreads} found in a window. */
export interface BusiestThreads {
  /** Per process name, its thread with the most CPU seconds (over restarts: the busiest of any pid). */
  readonly byProcess: Readonly<Record<string, ThreadCpu>>;
  /** The busiest threads over all processes, most CPU first. */
  readonly top: readonly ThreadCpu[];
}

/**
 * CPU seconds of every thread of every series between two epoch times: the thread's last reading
 * in the window minus its first. A thread first seen after the window's first sample started
 * inside the window, so all of its CPU counts (its counter started at 0); a thread that exited
 * keeps what it used up to its last reading. Pure: works on any {@link ProcSeries}.
 */
export function threadCpuBetween(series: readonly ProcSeries[], fromMs: number, toMs: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  for (const s of series) {
    const inside = s.points.filter((p) => p.atMs >= fromMs && p.atMs <= toMs && p.threads !== undefined);
    if (inside.length < 2) continue;
    const firstSeen = new Map<number, ThreadReading>();
    for (const t of inside[0]!.threads!) firstSeen.set(t.tid, t);
    const last = new Map<number, ThreadReading>();
    for (const p of inside) for (const t of p.threads!) last.set(t.tid, t);
    for (const [tid, t] of last) {
      const first = firstSeen.get(tid);
      const firstWait = first === undefined ? 0 : first.runQueueWaitSeconds;
      out.push({
        process: s.name,
        pid: s.pid,
        tid,
        name: tid === s.pid ? 'main' : t.comm,
        cpuSeconds: Math.max(0, t.cpuSeconds - (first?.cpuSeconds ?? 0)),
        runQueueWaitSeconds: t.runQueueWaitSeconds === undefined || firstWait === undefined ? undefined : Math.max(0, t.runQueueWaitSeconds - firstWait),
      });
    }
  }
  return out;
}

/**
 * The busiest thread per process name and the `top` busiest overall (default 5), from
 * {@link threadCpuBetween}'s list. Ties go to the lower tid, so the pick is deterministic.
 */
export function busiestThreads(threads: readonly ThreadCpu[], top = 5): BusiestThreads {
  const sorted = [...threads].sort((a, b) => b.cpuSeconds - a.cpuSeconds || a.tid - b.tid);
  const byProcess: Record<string, ThreadCpu> = {};
  for (const t of sorted) byProcess[t.process] ??= t;
  return { byProcess, top: sorted.slice(0, top) };
}

/** Options for {@link ProcSampler}. */
export interface ProcSamplerOptions {
  /** Asked at every sample (pids change when a node restarts). */
  readonly processes: () => readonly ProcessRef[];
  /** Sampling interval, ms. Default 1000. */
  readonly intervalMs?: number;
  /** Default from `getconf CLK_TCK`. */
  readonly ticksPerSecond?: number;
  /** Read every thread at each sample as well. Default true. */
  readonly threads?: boolean;
  /** Root of the proc filesystem. Default "/proc"; tests point it at a fake tree. */
  readonly procRoot?: string;
  /** Where cgroup v2 is mounted, for CPU-quota throttling ({@link readCgroupCpu}). Default "/sys/fs/cgroup". */
  readonly cgroupRoot?: string;
  /**
   * The processes whose cgroups' throttling is read: the system under test, not the load
   * generators beside it. Default: none (no throttling is read).
   */
  readonly cgroupProcesses?: () => readonly ProcessRef[];
}

function readMachineCpu(procRoot: string): MachineCpuReading | undefined {
  try {
    return parseProcStat(readFileSync(`${procRoot}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

export class ProcSampler {
  readonly #opts: ProcSamplerOptions;
  readonly #ticks: number;
  readonly #root: string;
  readonly #series = new Map<string, ProcSeries>();
  readonly #machine: Array<{ readonly atMs: number; readonly cpu: MachineCpuReading }> = [];
  /** Per sample, the cpu.stat of each cgroup the processes run in (one for a local cluster). */
  readonly #cgroups: Array<{ readonly atMs: number; readonly byDir: ReadonlyMap<string, CgroupCpuReading> }> = [];
  readonly #cgroupDirByPid = new Map<number, string | undefined>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: ProcSamplerOptions) {
    this.#opts = opts;
    this.#ticks = opts.ticksPerSecond ?? clockTicksPerSecond();
    this.#root = opts.procRoot ?? '/proc';
  }

  start(): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), this.#opts.intervalMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.sample();
  }

  /** Takes one sample of every process now (also called at phase boundaries). */
  sample(): void {
    const now = Date.now();
    const withThreads = this.#opts.threads ?? true;
    const machine = readMachineCpu(this.#root);
    if (machine !== undefined) this.#machine.push({ atMs: now, cpu: machine });
    this.#sampleCgroups(now, this.#opts.cgroupProcesses?.() ?? []);
    for (const p of this.#opts.processes()) {
      const r = readProc(p.pid, this.#ticks, this.#root);
      if (!r) continue;
      // Keyed by name and pid: a restarted node is a new series (its CPU counter restarts at 0).
      const key = `${p.name}#${p.pid}`;
      let s = this.#series.get(key);
      if (!s) {
        s = { name: p.name, pid: p.pid, points: [] };
        this.#series.set(key, s);
      }
      const point: ProcPoint = { atMs: now, cpuSeconds: r.cpuSeconds, rssBytes: r.rssBytes };
      s.points.push(withThreads ? { ...point, threads: readThreads(p.pid, this.#ticks, this.#root) } : point);
    }
  }

  #sampleCgroups(now: number, processes: readonly ProcessRef[]): void {
    const byDir = new Map<string, CgroupCpuReading>();
    const read = new Set<string>();
    for (const p of processes) {
      if (!this.#cgroupDirByPid.has(p.pid)) this.#cgroupDirByPid.set(p.pid, cgroupDirOf(p.pid, this.#root, this.#opts.cgroupRoot));
      const dir = this.#cgroupDirByPid.get(p.pid);
      // One read per cgroup and sample: a local cluster's processes all share one.
      if (dir === undefined || read.has(dir)) continue;
      read.add(dir);
      // Keyed by the group read (the binding one): processes sharing it count it once.
      const r = readCgroupCpu(dir, this.#opts.cgroupRoot);
      if (r !== undefined) byDir.set(r.group, r);
    }
    if (byDir.size > 0) this.#cgroups.push({ atMs: now, byDir });
  }

  series(): ProcSeries[] {
    return [...this.#series.values()];
  }

  /** CPU seconds each process name spent between two epoch times (summed over restarts). */
  cpuSecondsBetween(fromMs: number, toMs: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.#series.values()) {
      const inside = s.points.filter((p) => p.atMs >= fromMs && p.atMs <= toMs);
      if (inside.length < 2) continue;
      out[s.name] = (out[s.name] ?? 0) + inside[inside.length - 1]!.cpuSeconds - inside[0]!.cpuSeconds;
    }
    return out;
  }

  /** Every sampled thread's CPU and run-queue wait between two epoch times ({@link threadCpuBetween}). */
  threadCpuBetween(fromMs: number, toMs: number): ThreadCpu[] {
    return threadCpuBetween(this.series(), fromMs, toMs);
  }

  /** The machine's idle and steal shares between two epoch times; undefined without two readings. */
  machineCpuBetween(fromMs: number, toMs: number): MachineCpuShares | undefined {
    const inside = this.#machine.filter((m) => m.atMs >= fromMs && m.atMs <= toMs);
    if (inside.length < 2) return undefined;
    return machineCpuShares(inside[0]!.cpu, inside[inside.length - 1]!.cpu);
  }

  /**
   * CPU-quota throttling of the processes' cgroups between two epoch times; undefined without two
   * readings (no cgroup v2 cpu controller, or not Linux).
   */
  cpuThrottlingBetween(fromMs: number, toMs: number): CpuThrottling | undefined {
    const inside = this.#cgroups.filter((c) => c.atMs >= fromMs && c.atMs <= toMs);
    if (inside.length < 2) return undefined;
    return throttlingBetween(inside[0]!.byDir, inside[inside.length - 1]!.byDir);
  }

  /**
   * Per process name, the thread with the most CPU seconds between two epoch times, and the `top`
   * busiest threads overall (default 5). Empty when threads were not sampled.
   */
  busiestThreadsBetween(fromMs: number, toMs: number, top = 5): BusiestThreads {
    return busiestThreads(threadCpuBetween(this.series(), fromMs, toMs), top);
  }

  /** Highest RSS each process name reached between two epoch times, bytes. */
  maxRssBetween(fromMs: number, toMs: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.#series.values()) {
      for (const p of s.points) if (p.atMs >= fromMs && p.atMs <= toMs) out[s.name] = Math.max(out[s.name] ?? 0, p.rssBytes);
    }
    return out;
  }
}
