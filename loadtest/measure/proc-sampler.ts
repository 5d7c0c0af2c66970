/**
 * CPU and memory of the processes under test, read from Linux /proc: CPU seconds are
 * utime + stime (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of `getconf CLK_TCK`), RSS
 * is VmRSS from /proc/<pid>/status. Sampled on an interval over a run, so throughput can be put
 * per server core. A process that exits (node loss) simply has a gap in its series.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ProcessRef } from '../target.js';

/** One reading of one process. */
export interface ProcReading {
  /** CPU seconds (user + system) since the process started. */
  readonly cpuSeconds: number;
  /** Resident set size, bytes. */
  readonly rssBytes: number;
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

/** Reads one process now; undefined when it does not exist (any more). */
export function readProc(pid: number, ticksPerSecond: number): ProcReading | undefined {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
  return { cpuSeconds: (utime + stime) / ticksPerSecond, rssBytes: rssKb * 1024 };
}

/** One point of a process's series. */
export interface ProcPoint {
  /** Epoch ms. */
  readonly atMs: number;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

/** A process's samples over the run. */
export interface ProcSeries {
  readonly name: string;
  readonly pid: number;
  readonly points: ProcPoint[];
}

/** Options for {@link ProcSampler}. */
export interface ProcSamplerOptions {
  /** Asked at every sample (pids change when a node restarts). */
  readonly processes: () => readonly ProcessRef[];
  /** Sampling interval, ms. Default 1000. */
  readonly intervalMs?: number;
  /** Default from `getconf CLK_TCK`. */
  readonly ticksPerSecond?: number;
}

export class ProcSampler {
  readonly #opts: ProcSamplerOptions;
  readonly #ticks: number;
  readonly #series = new Map<string, ProcSeries>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: ProcSamplerOptions) {
    this.#opts = opts;
    this.#ticks = opts.ticksPerSecond ?? clockTicksPerSecond();
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
    for (const p of this.#opts.processes()) {
      const r = readProc(p.pid, this.#ticks);
      if (!r) continue;
      // Keyed by name and pid: a restarted node is a new series (its CPU counter restarts at 0).
      const key = `${p.name}#${p.pid}`;
      let s = this.#series.get(key);
      if (!s) {
        s = { name: p.name, pid: p.pid, points: [] };
        this.#series.set(key, s);
      }
      s.points.push({ atMs: now, cpuSeconds: r.cpuSeconds, rssBytes: r.rssBytes });
    }
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

  /** Highest RSS each process name reached between two epoch times, bytes. */
  maxRssBetween(fromMs: number, toMs: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.#series.values()) {
      for (const p of s.points) if (p.atMs >= fromMs && p.atMs <= toMs) out[s.name] = Math.max(out[s.name] ?? 0, p.rssBytes);
    }
    return out;
  }
}
