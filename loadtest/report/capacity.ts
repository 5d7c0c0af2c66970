/**
 * The capacity model: from the measured maximum QPS at the SLO and the server CPU it took, to
 * nodes for a target QPS; from memory per million items and users, to nodes for a corpus. Pure
 * arithmetic, every assumption stated in `notes` so the page says how a number was reached.
 *
 * Model (DESIGN.md §2): every serving node holds all item shards (replicate for throughput), so
 * item memory is paid on every node and QPS scales with nodes; user state is partitioned over the
 * nodes with `userReplicas` copies. If the items do not fit one node, nodes form groups that each
 * hold one slice of the items, and every request then needs one node of every group.
 */
import type { CapacitySettings, Slo } from '../scenarios/config.js';

const GIB = 2 ** 30;

/** What the model needs from a phase. */
export interface CapacityPhaseInput {
  readonly name: string;
  readonly throughput: number;
  readonly errorRate: number;
  readonly latencyMs: { readonly p99: number };
  readonly serverCpuCores: number | undefined;
  readonly generatorSaturated: boolean;
}

/** The best phase that met the SLO. */
export interface MeasuredCapacity {
  readonly phase: string;
  /** Answers per second in that phase. */
  readonly qps: number;
  readonly serverCpuCores: number | undefined;
  /** qps / serverCpuCores. */
  readonly qpsPerCore: number | undefined;
}

/** True when a phase meets the SLO: P99 ≤ bound and error rate below the maximum. */
export function meetsSlo(p: Pick<CapacityPhaseInput, 'errorRate' | 'latencyMs'>, slo: Slo): boolean {
  return p.latencyMs.p99 <= slo.p99Ms && p.errorRate < Math.max(slo.maxErrorRate, Number.MIN_VALUE);
}

/** The highest-throughput phase meeting the SLO, or undefined when none does. */
export function findCapacity(phases: readonly CapacityPhaseInput[], slo: Slo): MeasuredCapacity | undefined {
  let best: CapacityPhaseInput | undefined;
  for (const p of phases) if (meetsSlo(p, slo) && (!best || p.throughput > best.throughput)) best = p;
  if (!best) return undefined;
  return {
    phase: best.name,
    qps: best.throughput,
    serverCpuCores: best.serverCpuCores,
    qpsPerCore: best.serverCpuCores && best.serverCpuCores > 0 ? best.throughput / best.serverCpuCores : undefined,
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
  /** qpsPerCore × coresPerNode. */
  readonly qpsPerNode: number | undefined;
  /** qpsPerNode × (1 − headroom). */
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
  const usable = qpsPerNode !== undefined ? qpsPerNode * (1 - h) : undefined;
  const nodesForQps = usable !== undefined && usable > 0 ? Math.ceil(inputs.targetQps / usable) : undefined;
  if (!measured) notes.push('No phase met the SLO, so CPU capacity is unknown: run the ramp scenario from a lower start rate.');
  else if (measured.qpsPerCore === undefined) notes.push('Server processes were not sampled (no pids), so QPS per core is unknown: use --start-cluster or --pid name=pid.');
  else {
    notes.push(
      `QPS per node = ${fmt(measured.qpsPerCore)} QPS/core (measured in phase ${measured.phase}: ${fmt(measured.qps)} QPS on ${fmt(measured.serverCpuCores ?? 0)} server cores) × ${inputs.coresPerNode} cores; assumes throughput scales linearly with cores (one worker per core).`,
    );
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
  const itemBytes = perItems !== undefined ? (inputs.items / 1e6) * perItems : undefined;
  const userBytes = perUsers !== undefined ? (inputs.users / 1e6) * perUsers * inputs.userReplicas : undefined;
  let itemGroups: number | undefined;
  let nodesForMemory: number | undefined;
  if (itemBytes !== undefined && userBytes !== undefined) {
    const free = budget - m.baseBytesPerNode;
    if (free <= 0) {
      notes.push('The per-node memory budget is below the base footprint: raise memoryPerNodeGiB.');
    } else {
      itemGroups = Math.max(1, Math.ceil(itemBytes / (free * 0.5)));
      // Items may take at most half a node, leaving room for user state; beyond that, split them.
      const itemPerNode = itemBytes / itemGroups;
      const forUsers = free - itemPerNode;
      const byUsers = Math.ceil(userBytes / forUsers);
      nodesForMemory = roundUp(Math.max(itemGroups, byUsers), itemGroups);
      notes.push(
        itemGroups === 1
          ? `Every node holds all ${fmt(inputs.items)} items (${fmtBytes(itemBytes)}); user state (${fmtBytes(userBytes)} with ${inputs.userReplicas} replicas) is spread over the nodes.`
          : `Items (${fmtBytes(itemBytes)}) exceed half a node's budget, so they are split into ${itemGroups} groups; every request needs one node of each group.`,
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
    usableQpsPerNode: usable,
    nodesForTargetQps: nodesForQps,
    memory: {
      bytesPerMillionItems: perItems,
      bytesPerMillionUsers: perUsers,
      source: sources.length > 0 ? sources.join('; ') : 'not given',
      itemBytes,
      userBytesAllReplicas: userBytes,
      budgetBytesPerNode: budget,
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
