/**
 * The capacity model: from the measured maximum QPS at the SLO and the server CPU it took, to
 * nodes for a target QPS; from memory per million items and users, to nodes for a corpus. Pure
 * arithmetic, every assumption stated in `notes` so the page says how a number was reached.
 *
 * Model (DESIGN.md §2): every serving node holds all item shards (replicate for throughput), so
 * item memory is paid on every node and QPS scales with nodes; user state is partitioned over the
 * nodes with `userReplicas` copies. If the items do not fit one node, nodes form groups that each
 * hold one slice of the items, and every request then needs one node of every group.
 *
 * A node is one OS process, and part of its work runs on single threads (the coordinator's main
 * thread, one worker per item shard, the ranker workers): the busiest of them caps one process at
 * `1000 / its CPU ms per request of that process` QPS however many cores the machine has, and the
 * process holds its SLO only while that thread stays below `busiestThreadMaxUtilisation` of a core
 * (queueing on the thread). So a machine of `coresPerNode` cores runs ⌈CPU-limited QPS / (that
 * ceiling × the utilisation bound)⌉ node processes, and each of them holds every item shard: item
 * memory (and the base footprint) is paid once per process.
 */
import type { CapacitySettings, Slo } from '../scenarios/config.js';

const GIB = 2 ** 30;

/** The busiest single thread of the server's node processes in a phase. */
export interface SerialThreadInput {
  /** Process display name, e.g. "n1". */
  readonly process: string;
  /** "main" or the thread's comm (worker threads of Node are named "node"), with its tid. */
  readonly thread: string;
  /** Its CPU ms per answered request in the phase; undefined when nothing was answered. */
  readonly msPerRequest: number | undefined;
  /** Its CPU seconds / the phase's wall seconds, 0..1 (1 = a full core: the process is at its ceiling). */
  readonly utilisation: number;
}

/** What the model needs from a phase. */
export interface CapacityPhaseInput {
  readonly name: string;
  readonly throughput: number;
  readonly errorRate: number;
  readonly latencyMs: { readonly p99: number };
  readonly serverCpuCores: number | undefined;
  readonly generatorSaturated: boolean;
  /** Absent or undefined when threads were not sampled (external target without pids, old reports). */
  readonly busiestThread?: SerialThreadInput | undefined;
  /** Entry processes of this phase when it knows them (routed by user: uneven); see {@link MeasuredCapacity.entryProcesses}. */
  readonly entryProcesses?: number;
}

/** The best phase that met the SLO. */
export interface MeasuredCapacity {
  readonly phase: string;
  /** Answers per second in that phase. */
  readonly qps: number;
  readonly serverCpuCores: number | undefined;
  /** qps / serverCpuCores. */
  readonly qpsPerCore: number | undefined;
  /** That phase's busiest node-process thread; undefined when unknown. */
  readonly busiestThread?: SerialThreadInput | undefined;
  /**
   * Node processes the requests entered through, as if evenly (the coordinators the generator
   * called; routed by user, unevenly, it is total / the busiest coordinator's calls, so it may be
   * fractional). Default 1. With k > 1 the model takes every sampled node process to be one of them
   * (a local cluster with `cluster.coordinators` "all"), so a thread's cost per request of its own
   * process is k × its cost per request of the whole phase.
   */
  readonly entryProcesses?: number;
}

/** True when a phase meets the SLO: P99 ≤ bound and error rate below the maximum. */
export function meetsSlo(p: Pick<CapacityPhaseInput, 'errorRate' | 'latencyMs'>, slo: Slo): boolean {
  return p.latencyMs.p99 <= slo.p99Ms && p.errorRate < Math.max(slo.maxErrorRate, Number.MIN_VALUE);
}

/** The highest-throughput phase meeting the SLO, or undefined when none does. */
export function findCapacity(phases: readonly CapacityPhaseInput[], slo: Slo, entryProcesses = 1): MeasuredCapacity | undefined {
  let best: CapacityPhaseInput | undefined;
  for (const p of phases) if (meetsSlo(p, slo) && (!best || p.throughput > best.throughput)) best = p;
  if (!best) return undefined;
  return {
    phase: best.name,
    qps: best.throughput,
    serverCpuCores: best.serverCpuCores,
    qpsPerCore: best.serverCpuCores && best.serverCpuCores > 0 ? best.throughput / best.serverCpuCores : undefined,
    busiestThread: best.busiestThread
      ? { process: best.busiestThread.process, thread: best.busiestThread.thread, msPerRequest: best.busiestThread.msPerRequest, utilisation: best.busiestThread.utilisation }
      : undefined,
    // A phase routed by user counts its own (uneven) entry processes; otherwise the caller's.
    ...((best.entryProcesses ?? entryProcesses) > 1 ? { entryProcesses: best.entryProcesses ?? entryProcesses } : {}),
  };
}

/**
 * Bytes per million from RSS at two or more corpus sizes: the least-squares slope of RSS over
 * count, times 1e6. Throws when the counts do not differ.
 */
export function bytesPerMillion(sizes: ReadonlyArray<{ readonly count: number; readonly rssBytes: number }>): number {
  const n = sizes.length;
  const mx = sizes.reduce((s, p) => s + p.count, 0) / n;
  const my = sizes.reduce((s, p) => s + p.rssBytes, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of sizes) {
    sxx += (p.count - mx) ** 2;
    sxy += (p.count - mx) * (p.rssBytes - my);
  }
  if (sxx === 0) throw new TypeError('memory sizes need at least two different counts');
  return (sxy / sxx) * 1e6;
}

export interface CapacityReport {
  readonly inputs: CapacitySettings;
  readonly measured: MeasuredCapacity | undefined;
  /** qpsPerCore × coresPerNode: CPU-limited QPS of a machine, reached with `processesPerNode` processes. */
  readonly qpsPerNode: number | undefined;
  /** The SLO phase's busiest node-process thread (measured.busiestThread). */
  readonly busiestThread: SerialThreadInput | undefined;
  /**
   * 1000 / (busiestThread.msPerRequest × entryProcesses): QPS of its own process at which that
   * thread would use a full core, the most one node process can serve. Per-request thread cost
   * falls as load rises, so measured at the SLO phase's load it errs low.
   */
  readonly processCeilingQps: number | undefined;
  /** processCeilingQps × busiestThreadMaxUtilisation: what one node process serves within the SLO. */
  readonly processSloQps: number | undefined;
  /** ⌈qpsPerNode / processCeilingQps⌉ (at least 1): node processes per machine to use its cores. */
  readonly processesPerNode: number | undefined;
  /** min(qpsPerNode, processesPerNode × processSloQps): what a machine serves within the SLO (qpsPerNode when the thread is unknown). */
  readonly qpsPerNodeAtSlo: number | undefined;
  /** min(qpsPerNode, processSloQps): what a machine running one node process serves. */
  readonly qpsPerNodeOneProcess: number | undefined;
  /** Machines for `targetQps` with one node process each (CPU only), for comparison. */
  readonly nodesForTargetQpsOneProcess: number | undefined;
  /** qpsPerNodeAtSlo × (1 − headroom). */
  readonly usableQpsPerNode: number | undefined;
  /** Nodes for `targetQps`, CPU only (before item groups). */
  readonly nodesForTargetQps: number | undefined;
  readonly memory: {
    readonly bytesPerMillionItems: number | undefined;
    readonly bytesPerMillionUsers: number | undefined;
    readonly source: string;
    readonly itemBytes: number | undefined;
    readonly userBytesAllReplicas: number | undefined;
    /** memoryPerNode × (1 − headroom). */
    readonly budgetBytesPerNode: number;
    /** Node processes per machine the memory side plans for (processesPerNode, 1 when unknown). */
    readonly processesPerNode: number;
    /** baseBytesPerNode × processes: every process has its own runtime and models. */
    readonly baseBytesPerMachine: number;
    /** Items of one group × processes: every process holds every item shard of its group. */
    readonly itemBytesPerMachine: number | undefined;
    /** Slices the items must be cut into to fit a node (1 = every node holds all items). */
    readonly itemGroups: number | undefined;
    readonly nodesForMemory: number | undefined;
  };
  /** max(CPU, memory), rounded up to whole item groups; undefined when an input is missing. */
  readonly nodesNeeded: number | undefined;
  readonly notes: readonly string[];
}

/** Runs the model. `measured` is the capacity found by {@link findCapacity} (or given). */
export function capacityModel(inputs: CapacitySettings, measured: MeasuredCapacity | undefined): CapacityReport {
  const notes: string[] = [];
  const h = inputs.headroom;
  const qpsPerNode = measured?.qpsPerCore !== undefined ? measured.qpsPerCore * inputs.coresPerNode : undefined;

  // The serial ceiling of one node process: its busiest thread cannot use more than one core.
  const thread = measured?.busiestThread;
  const entries = measured?.entryProcesses ?? 1;
  // Cost per request of the thread's own process: with k entry processes it sees 1/k of the requests.
  const threadMs = thread?.msPerRequest !== undefined ? thread.msPerRequest * entries : undefined;
  const ceiling = threadMs !== undefined && threadMs > 0 ? 1000 / threadMs : undefined;
  const u = inputs.busiestThreadMaxUtilisation;
  const processSlo = ceiling !== undefined ? ceiling * u : undefined;
  // Enough processes for their threads to use the cores, no more: extra processes each carry less
  // load and pay more wake-ups per request (measured: 8 processes served 40% less than 5 on 16 cores).
  const processes = ceiling !== undefined && qpsPerNode !== undefined ? Math.max(1, Math.ceil(qpsPerNode / ceiling)) : undefined;
  // Within the SLO a machine serves what its CPU allows, or what its processes hold at the bound.
  const sloPerNode = qpsPerNode !== undefined && processSlo !== undefined && processes !== undefined ? Math.min(qpsPerNode, processes * processSlo) : qpsPerNode;
  const usable = sloPerNode !== undefined ? sloPerNode * (1 - h) : undefined;
  const nodesForQps = usable !== undefined && usable > 0 ? Math.ceil(inputs.targetQps / usable) : undefined;
  const oneProcess = processSlo !== undefined && qpsPerNode !== undefined ? Math.min(qpsPerNode, processSlo) : undefined;
  const oneProcessUsable = oneProcess !== undefined ? oneProcess * (1 - h) : undefined;
  const nodesOneProcess = oneProcessUsable !== undefined && oneProcessUsable > 0 ? Math.ceil(inputs.targetQps / oneProcessUsable) : undefined;

  if (!measured) notes.push('No phase met the SLO, so CPU capacity is unknown: run the ramp scenario from a lower start rate.');
  else if (measured.qpsPerCore === undefined) notes.push('Server processes were not sampled (no pids), so QPS per core is unknown: use --start-cluster or --pid name=pid.');
  else {
    const perCore = `${fmt(measured.qpsPerCore)} QPS/core (measured in phase ${measured.phase}: ${fmt(measured.qps)} QPS on ${fmt(measured.serverCpuCores ?? 0)} server cores)`;
    if (thread !== undefined && threadMs !== undefined && ceiling !== undefined && processes !== undefined && oneProcess !== undefined) {
      notes.push(
        `CPU-limited QPS per node = ${perCore} × ${inputs.coresPerNode} cores = ${fmt(qpsPerNode!)}; assumes the CPU cost per request stays the same when the work is spread over ${processes} node process${processes === 1 ? '' : 'es'} on one machine.`,
      );
      const share = entries > 1
        ? `${fmt(thread.msPerRequest!)} ms per answered request of the phase, i.e. ${fmt(threadMs)} ms per request of its own process, since the requests entered ${Number.isInteger(entries) ? 'evenly ' : ''}through ${fmt(entries)} node processes${Number.isInteger(entries) ? '' : ' (routed by user, unevenly: requests / the busiest coordinator\'s)'}`
        : `${fmt(threadMs)} ms per answered request (every request entered through one node process)`;
      notes.push(
        `Serial ceiling: a node process runs part of its work on single threads; the busiest, ${thread.process} ${thread.thread}, used ${share} in phase ${measured.phase} (${Math.round(thread.utilisation * 100)}% of a core). A thread cannot use more than one core, so one node process tops out near 1000 / ${fmt(threadMs)} = ${fmt(ceiling)} QPS however many cores its machine has, and holds the SLO only while that thread stays below ${Math.round(u * 100)}% of a core (busiestThreadMaxUtilisation): ${fmt(processSlo!)} QPS per process.`,
      );
      notes.push(
        `Per-request thread cost falls as load rises (a busy thread pays fewer wake-ups), so ${fmt(ceiling)} QPS, measured at that phase's ${fmt(measured.qps)} QPS, errs low; but more processes per machine each carry less load and pay more wake-ups per request, so the CPU per request measured here may not hold for another process count: measure the machine with the count the model gives (--nodes, --set cluster.coordinators=all).`,
      );
      notes.push(
        processes > 1
          ? `One node process per ${inputs.coresPerNode}-core machine would serve only ${fmt(oneProcess)} QPS (${nodesOneProcess ?? '—'} machines for ${fmt(inputs.targetQps)} QPS); to use the cores, run ⌈${fmt(qpsPerNode!)} / ${fmt(ceiling)}⌉ = ${processes} node processes per machine, each holding every item shard (memory below counts every copy). More would not help: each would carry less load and pay more wake-ups per request.`
          : `One node process per machine reaches the CPU limit before its busiest thread fills a core (ceiling ${fmt(ceiling)} ≥ ${fmt(qpsPerNode!)} QPS).`,
      );
      notes.push(
        `Within the SLO a machine serves min(${fmt(qpsPerNode!)}, ${processes} × ${fmt(processSlo!)}) = ${fmt(sloPerNode!)} QPS${sloPerNode! < qpsPerNode! ? ': the processes\' busiest threads, not the cores, decide' : ''}.`,
      );
    } else {
      notes.push(`QPS per node = ${perCore} × ${inputs.coresPerNode} cores; assumes throughput scales linearly with cores (one worker per core).`);
      notes.push(
        'Per-thread CPU of the node processes was not measured, so the serial ceiling of one node process (its busiest thread, at most one core) is unknown: QPS per node may be far below the linear figure unless several node processes run per machine.',
      );
    }
    notes.push(`Headroom ${Math.round(h * 100)}%: each node is planned at ${Math.round((1 - h) * 100)}% of its measured capacity.`);
  }

  const m = inputs.memory;
  let perItems = m.bytesPerMillionItems;
  let perUsers = m.bytesPerMillionUsers;
  const sources: string[] = [];
  if (perItems === undefined && m.itemSizes) {
    perItems = bytesPerMillion(m.itemSizes);
    sources.push(`items: RSS slope over ${m.itemSizes.length} corpus sizes`);
  } else if (perItems !== undefined) sources.push('items: given');
  if (perUsers === undefined && m.userSizes) {
    perUsers = bytesPerMillion(m.userSizes);
    sources.push(`users: RSS slope over ${m.userSizes.length} sizes`);
  } else if (perUsers !== undefined) sources.push('users: given');

  const budget = inputs.memoryPerNodeGiB * GIB * (1 - h);
  const procs = processes ?? 1;
  const baseBytes = m.baseBytesPerNode * procs;
  const itemBytes = perItems !== undefined ? (inputs.items / 1e6) * perItems : undefined;
  const userBytes = perUsers !== undefined ? (inputs.users / 1e6) * perUsers * inputs.userReplicas : undefined;
  let itemGroups: number | undefined;
  let nodesForMemory: number | undefined;
  let itemBytesPerMachine: number | undefined;
  if (itemBytes !== undefined && userBytes !== undefined) {
    const free = budget - baseBytes;
    if (free <= 0) {
      notes.push(
        procs > 1
          ? `The per-node memory budget is below the base footprint of ${procs} node processes (${fmtBytes(baseBytes)}): raise memoryPerNodeGiB or run fewer, CPU-capped processes per machine.`
          : 'The per-node memory budget is below the base footprint: raise memoryPerNodeGiB.',
      );
    } else {
      // Items may take at most half a node, leaving room for user state; beyond that, split them.
      // Every process on a machine holds its own copy of its group's items.
      itemGroups = Math.max(1, Math.ceil((itemBytes * procs) / (free * 0.5)));
      itemBytesPerMachine = (itemBytes / itemGroups) * procs;
      const forUsers = free - itemBytesPerMachine;
      const byUsers = Math.ceil(userBytes / forUsers);
      nodesForMemory = roundUp(Math.max(itemGroups, byUsers), itemGroups);
      const copies = procs > 1 ? ` in each of its ${procs} node processes (${fmtBytes(itemBytesPerMachine)} and ${fmtBytes(baseBytes)} base per machine)` : '';
      notes.push(
        itemGroups === 1
          ? `Every node holds all ${fmt(inputs.items)} items (${fmtBytes(itemBytes)})${copies}; user state (${fmtBytes(userBytes)} with ${inputs.userReplicas} replicas) is spread over the nodes${procs > 1 ? ' and split among their processes, so it is not multiplied' : ''}.`
          : `Items (${fmtBytes(itemBytes)}${procs > 1 ? ` × ${procs} processes per machine` : ''}) exceed half a node's budget, so they are split into ${itemGroups} groups; every request needs one node of each group.`,
      );
    }
  } else {
    notes.push('Memory per million items/users not given: set capacity.memory in the scenario (bytesPerMillion* or itemSizes/userSizes measured at two corpus sizes).');
  }
  const cpuNodes = nodesForQps !== undefined ? nodesForQps * (itemGroups ?? 1) : undefined;
  const nodesNeeded = cpuNodes !== undefined && nodesForMemory !== undefined ? roundUp(Math.max(cpuNodes, nodesForMemory), itemGroups ?? 1) : undefined;
  return {
    inputs,
    measured,
    qpsPerNode,
    busiestThread: thread,
    processCeilingQps: ceiling,
    processSloQps: processSlo,
    processesPerNode: processes,
    qpsPerNodeAtSlo: sloPerNode,
    qpsPerNodeOneProcess: oneProcess,
    nodesForTargetQpsOneProcess: nodesOneProcess,
    usableQpsPerNode: usable,
    nodesForTargetQps: nodesForQps,
    memory: {
      bytesPerMillionItems: perItems,
      bytesPerMillionUsers: perUsers,
      source: sources.length > 0 ? sources.join('; ') : 'not given',
      itemBytes,
      userBytesAllReplicas: userBytes,
      budgetBytesPerNode: budget,
      processesPerNode: procs,
      baseBytesPerMachine: baseBytes,
      itemBytesPerMachine,
      itemGroups,
      nodesForMemory,
    },
    nodesNeeded,
    notes,
  };
}

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/** A number with thousands separators and at most 1 decimal. */
export function fmt(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 2 : n < 100 ? 1 : 0 });
}

/** Bytes as MiB or GiB. */
export function fmtBytes(b: number): string {
  return b >= GIB ? `${(b / GIB).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(0)} MiB`;
}
