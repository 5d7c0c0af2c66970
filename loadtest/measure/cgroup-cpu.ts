/**
 * CPU-quota throttling of the processes under test, from their cgroup (v2: `cpu.max` and
 * `cpu.stat` in the directory /proc/<pid>/cgroup names under /sys/fs/cgroup). A container with a
 * CPU limit (a Kubernetes `limits.cpu`, a `docker --cpus`) may use its quota early in each period
 * (100 ms by default) and then has every thread stopped until the period ends: a stall of every
 * process at once, with the machine's cores idle. That looks like the lock-step stalls of a
 * saturated machine in a latency report, so a capacity run reads it rather than guessing.
 *
 * The quota that binds may sit on an ancestor (a pod's cgroup above its containers', a systemd
 * slice above a scope): the group read is the one with the smallest quota on the way up to the
 * mount, whose `cpu.stat` counts its whole subtree. Absent files (cgroup v1, no cpu controller,
 * not Linux) mean no reading, never an error.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Counters of one cgroup's `cpu.stat` so far. */
export interface CgroupCpuReading {
  /** The cgroup directory read: the one whose quota binds (see {@link readCgroupCpu}). */
  readonly group: string;
  /** Enforcement periods that have elapsed (0 when no quota is set). */
  readonly periods: number;
  /** Periods in which the cgroup ran out of quota. */
  readonly throttledPeriods: number;
  /**
   * Throttled time, µs, as the kernel counts it: summed over the CPUs whose run queues were
   * throttled, so one 100 ms stall on 16 CPUs can count up to 1.6 s.
   */
  readonly throttledUs: number;
  /** The quota in cores (`cpu.max` quota / period), or null when unlimited or unreadable. */
  readonly quotaCores: number | null;
}

/**
 * Parses cgroup v2 `cpu.stat` (`nr_periods`, `nr_throttled`, `throttled_usec`). Undefined when the
 * throttling counters are missing (the cpu controller is not enabled for the group).
 */
export function parseCpuStat(text: string): Omit<CgroupCpuReading, 'quotaCores' | 'group'> | undefined {
  const v = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, n] = line.trim().split(/\s+/);
    if (k !== undefined && n !== undefined && Number.isFinite(Number(n))) v.set(k, Number(n));
  }
  const periods = v.get('nr_periods');
  const throttledPeriods = v.get('nr_throttled');
  const throttledUs = v.get('throttled_usec');
  if (periods === undefined || throttledPeriods === undefined || throttledUs === undefined) return undefined;
  return { periods, throttledPeriods, throttledUs };
}

/** Parses `cpu.max` ("<quota> <period>" in µs, quota "max" = unlimited): the quota in cores, or null. */
export function parseCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  const q = Number(quota);
  const p = Number(period);
  if (quota === 'max' || !(q > 0) || !(p > 0)) return null;
  return q / p;
}

/**
 * The cgroup v2 directory of a process: the `0::<path>` line of /proc/<pid>/cgroup under
 * `cgroupRoot`; inside a container whose cgroup namespace hides the path ("0::/"), the root itself.
 */
export function cgroupDirOf(pid: number, procRoot = '/proc', cgroupRoot = '/sys/fs/cgroup'): string | undefined {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  if (line === undefined) return undefined;
  const rel = line.slice(3).trim();
  // Joined, so a hostile path cannot climb out of the cgroup mount.
  return path.join(cgroupRoot, path.normalize(`/${rel}`).slice(1));
}

/**
 * Reads the group that binds `dir`'s CPU now: of `dir` and its ancestors up to `cgroupRoot`, the one
 * with the smallest `cpu.max` quota, else `dir` itself (quota null). Undefined when that group has
 * no throttling counters.
 */
export function readCgroupCpu(dir: string, cgroupRoot = '/sys/fs/cgroup'): CgroupCpuReading | undefined {
  let binding = dir;
  let quotaCores: number | null = null;
  const root = path.resolve(cgroupRoot);
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    let q: number | null = null;
    try {
      q = parseCpuMax(readFileSync(path.join(d, 'cpu.max'), 'utf8'));
    } catch {
      // No cpu.max here: the root cgroup, or the cpu controller is not enabled for this group.
    }
    if (q !== null && (quotaCores === null || q < quotaCores)) {
      quotaCores = q;
      binding = d;
    }
    if (d === root || !d.startsWith(root + path.sep)) break;
  }
  let stat: Omit<CgroupCpuReading, 'quotaCores' | 'group'> | undefined;
  try {
    stat = parseCpuStat(readFileSync(path.join(binding, 'cpu.stat'), 'utf8'));
  } catch {
    return undefined;
  }
  return stat === undefined ? undefined : { group: binding, ...stat, quotaCores };
}

/** Throttling in a window, summed over the cgroups of the processes under test. */
export interface CpuThrottling {
  /** The smallest quota among those cgroups, cores; null when none has one. */
  readonly quotaCores: number | null;
  readonly periods: number;
  readonly throttledPeriods: number;
  /**
   * Throttled time, ms, summed over the throttled CPUs' run queues (see
   * {@link CgroupCpuReading.throttledUs}); `throttledPeriods` × the period bounds the wall time.
   */
  readonly throttledMs: number;
}

/** The throttling between two sets of readings keyed by their group (groups in both only). */
export function throttlingBetween(from: ReadonlyMap<string, CgroupCpuReading>, to: ReadonlyMap<string, CgroupCpuReading>): CpuThrottling | undefined {
  let any = false;
  let quota: number | null = null;
  let periods = 0;
  let throttledPeriods = 0;
  let throttledUs = 0;
  for (const [dir, b] of to) {
    const a = from.get(dir);
    if (a === undefined) continue;
    any = true;
    if (b.quotaCores !== null) quota = quota === null ? b.quotaCores : Math.min(quota, b.quotaCores);
    periods += Math.max(0, b.periods - a.periods);
    throttledPeriods += Math.max(0, b.throttledPeriods - a.throttledPeriods);
    throttledUs += Math.max(0, b.throttledUs - a.throttledUs);
  }
  return any ? { quotaCores: quota, periods, throttledPeriods, throttledMs: throttledUs / 1000 } : undefined;
}
