/**
 * Human-readable rendering of a shard map (what `shardmap show` prints). Pure, so its output is
 * unit-tested without NATS.
 */
import type { ShardMapSnapshot } from './snapshot.js';
import { nodeRows, underReplicated } from './route.js';
import { itemReplicasOf } from './snapshot.js';

/** What a node last reported about its load (optional; published by nodes, see cluster/node). */
export interface NodeLoad {
  /** When the node wrote this report, epoch ms. */
  readonly atMs: number;
  /** Process CPU use over the last report interval, in cores (1.0 = one core busy). */
  readonly cpuCores: number;
  /** Resident set size, bytes. */
  readonly rssBytes: number;
  /** Items held by the node's item shards. */
  readonly items: number;
  /** Recommend calls served by the node's coordinator since it started. */
  readonly recommends: number;
}

/** Compresses a sorted list of integers into ranges: [0,1,2,5] → "0-2,5". */
export function formatRanges(values: readonly number[]): string {
  if (values.length === 0) return '-';
  const out: string[] = [];
  let start = values[0]!;
  let prev = start;
  for (let i = 1; i <= values.length; i++) {
    const v = values[i];
    if (v !== undefined && v === prev + 1) {
      prev = v;
      continue;
    }
    out.push(start === prev ? String(start) : `${start}-${prev}`);
    if (v !== undefined) start = prev = v;
  }
  return out.join(',');
}

function pad(cells: readonly string[][]): string {
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells.map((r) => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** The map as text: header, per-node table (with load when known), replication warnings. */
export function formatShardMap(map: ShardMapSnapshot, loads: ReadonlyMap<string, NodeLoad> = new Map()): string {
  const itemReplicas = itemReplicasOf(map);
  // One R when both kinds share it (older maps, or R_items chosen equal to R); both when they differ.
  const replicas = itemReplicas === map.replicas ? `R=${map.replicas}` : `R_items=${itemReplicas} R=${map.replicas}`;
  const lines = [
    `cluster ${map.cluster}  version ${map.version}  item shards S=${map.itemShards}  user partitions P=${map.userPartitions}  replicas ${replicas}`,
    '',
  ];
  const header = ['node', 'state', 'item shards', 'partitions', 'ranker', 'coordinator'];
  const withLoad = loads.size > 0;
  if (withLoad) header.push('cpu', 'rss MiB', 'items', 'recommends');
  const rows = [header];
  for (const r of nodeRows(map)) {
    const row = [
      r.name,
      r.state,
      formatRanges(r.itemShards),
      `${formatRanges(r.userPartitions)} (${r.userPartitions.length})`,
      r.ranker ? (r.rankerAddress ?? 'yes (no address yet)') : '-',
      r.coordinator ? (r.recommendAddress ?? 'yes (no address yet)') : '-',
    ];
    if (withLoad) {
      const l = loads.get(r.name);
      row.push(
        l ? l.cpuCores.toFixed(2) : '?',
        l ? (l.rssBytes / 2 ** 20).toFixed(0) : '?',
        l ? String(l.items) : '?',
        l ? String(l.recommends) : '?',
      );
    }
    rows.push(row);
  }
  lines.push(pad(rows));
  const under = underReplicated(map);
  if (under.itemShards.length > 0) lines.push('', `under-replicated item shards: ${formatRanges(under.itemShards)}`);
  if (under.userPartitions.length > 0) lines.push('', `under-replicated user partitions: ${formatRanges(under.userPartitions)}`);
  return lines.join('\n');
}
