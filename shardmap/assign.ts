/**
 * Creating a shard map: a balanced, deterministic assignment of the S virtual item shards and P
 * virtual user partitions to nodes: R_items replicas of each item shard, R of each partition.
 * Pure: the same input always gives the same snapshot, so a retried CAS write
 * (shardmap/kv-store.ts) never flips assignments.
 *
 * Balance rule: item shards are placed first, each replica on the node with the fewest item
 * shards so far (ties → fewest total, then the node after the previous pick in name order, so a
 * tie spreads round-robin); partitions are then placed on the node with the fewest partitions, ties
 * broken by fewer item shards (an item shard holds far more memory than a partition), then by the
 * rotating name order. Every item shard's R_items replicas are on R_items distinct nodes, every
 * partition's R replicas on R distinct nodes.
 *
 * Why two replica counts: every Recommend searches every item shard but reads one user partition,
 * so item shards are replicated for throughput (by default on every node, which also lets a
 * coordinator search them in-process) while partitions, too big to live everywhere, keep R.
 */
import { validateClusterName } from '../core/subjects.js';
import type { NodeInfo, ShardMapSnapshot } from './snapshot.js';

/** Input of {@link createShardMap}. */
export interface ShardMapSpec {
  /** Cluster name; scopes NATS subjects and the KV bucket. `[A-Za-z0-9_-]{1,64}`. */
  readonly cluster: string;
  /** S: virtual item shards, ≥ 1 (fixed for the cluster's life). */
  readonly itemShards: number;
  /** P: virtual user partitions, ≥ 1 (fixed for the cluster's life). */
  readonly userPartitions: number;
  /** R: replicas of each user partition, 1 ≤ R ≤ number of active nodes. */
  readonly replicas: number;
  /**
   * R_items: replicas of each item shard, 1 ≤ R_items ≤ number of active nodes. Default `replicas`
   * (callers wanting item shards on every node pass `nodes.length`).
   */
  readonly itemReplicas?: number;
  /** Node names (unique, `[A-Za-z0-9_-]{1,64}`); order does not matter (they are sorted). */
  readonly nodes: readonly string[];
  /** Nodes that host a ranker replica. Default: every node. */
  readonly rankers?: readonly string[];
  /** Nodes that host a coordinator (public Recommend endpoint). Default: the first node by name. */
  readonly coordinators?: readonly string[];
}

/** Largest S or P accepted; a larger map would make the KV value unwieldy (>1 MiB) anyway. */
export const MAX_VIRTUAL_SHARDS = 65_536;

const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function positiveInt(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new TypeError(`${field} must be an integer in 1..${max}, got ${String(value)}`);
  }
  return value;
}

function nodeList(field: string, names: readonly string[], known?: ReadonlySet<string>): string[] {
  if (!Array.isArray(names)) throw new TypeError(`${field} must be an array of node names`);
  const seen = new Set<string>();
  for (const n of names) {
    if (typeof n !== 'string' || !NODE_NAME.test(n)) {
      throw new TypeError(`${field} entries must match [A-Za-z0-9_-]{1,64}, got "${String(n)}"`);
    }
    if (seen.has(n)) throw new TypeError(`${field} lists "${n}" twice`);
    if (known && !known.has(n)) throw new TypeError(`${field} names "${n}", which is not in nodes`);
    seen.add(n);
  }
  return [...seen].sort();
}

/**
 * Picks `count` distinct nodes for one shard: lowest `key` first, ties broken round-robin from
 * `cursor` (the index after the previous pick) so equal nodes take turns.
 */
function pickNodes(
  nodes: readonly string[],
  count: number,
  key: (node: string) => readonly number[],
  cursor: number,
): string[] {
  const order = nodes.map((name, i) => ({ name, rot: (i - cursor + nodes.length) % nodes.length }));
  order.sort((a, b) => {
    const ka = key(a.name);
    const kb = key(b.name);
    for (let i = 0; i < ka.length; i++) {
      const d = (ka[i] ?? 0) - (kb[i] ?? 0);
      if (d !== 0) return d;
    }
    return a.rot - b.rot;
  });
  return order.slice(0, count).map((o) => o.name);
}

/**
 * A balanced, deterministic shard map (version 0: not yet stored). Throws a TypeError naming the
 * bad field when the spec is invalid (S or P < 1, R or R_items out of 1..nodes, bad or duplicate
 * names). The snapshot always records `itemReplicas`, even when it equals `replicas`.
 */
export function createShardMap(spec: ShardMapSpec): ShardMapSnapshot {
  try {
    validateClusterName(spec.cluster);
  } catch {
    throw new TypeError(`cluster must match [A-Za-z0-9_-]{1,64}, got "${String(spec.cluster)}"`);
  }
  const S = positiveInt('itemShards', spec.itemShards, MAX_VIRTUAL_SHARDS);
  const P = positiveInt('userPartitions', spec.userPartitions, MAX_VIRTUAL_SHARDS);
  const nodes = nodeList('nodes', spec.nodes);
  if (nodes.length === 0) throw new TypeError('nodes must list at least one node');
  const R = positiveInt('replicas', spec.replicas, MAX_VIRTUAL_SHARDS);
  if (R > nodes.length) {
    throw new TypeError(`replicas must be ≤ the number of nodes (${nodes.length}), got ${R}`);
  }
  const RI = spec.itemReplicas === undefined ? R : positiveInt('itemReplicas', spec.itemReplicas, MAX_VIRTUAL_SHARDS);
  if (RI > nodes.length) {
    throw new TypeError(`itemReplicas must be ≤ the number of nodes (${nodes.length}), got ${RI}`);
  }
  const known = new Set(nodes);
  const rankers = spec.rankers === undefined ? [...nodes] : nodeList('rankers', spec.rankers, known);
  const coordinators =
    spec.coordinators === undefined ? nodes.slice(0, 1) : nodeList('coordinators', spec.coordinators, known);
  if (coordinators.length === 0) throw new TypeError('coordinators must list at least one node');

  const items = new Map(nodes.map((n) => [n, 0]));
  const parts = new Map(nodes.map((n) => [n, 0]));
  const itemShardOwners: string[][] = [];
  let cursor = 0;
  for (let s = 0; s < S; s++) {
    const owners = pickNodes(nodes, RI, (n) => [items.get(n) ?? 0, (items.get(n) ?? 0) + (parts.get(n) ?? 0)], cursor);
    for (const n of owners) items.set(n, (items.get(n) ?? 0) + 1);
    cursor = (nodes.indexOf(owners[owners.length - 1] ?? '') + 1) % nodes.length;
    itemShardOwners.push(owners.sort());
  }
  const partitionOwners: string[][] = [];
  for (let p = 0; p < P; p++) {
    const owners = pickNodes(nodes, R, (n) => [parts.get(n) ?? 0, items.get(n) ?? 0], cursor);
    for (const n of owners) parts.set(n, (parts.get(n) ?? 0) + 1);
    cursor = (nodes.indexOf(owners[owners.length - 1] ?? '') + 1) % nodes.length;
    partitionOwners.push(owners.sort());
  }
  const nodeInfos: Record<string, NodeInfo> = {};
  for (const n of nodes) nodeInfos[n] = { name: n, state: 'active' };
  return {
    version: 0,
    cluster: spec.cluster,
    itemShards: S,
    userPartitions: P,
    replicas: R,
    itemReplicas: RI,
    nodes: nodeInfos,
    itemShardOwners,
    partitionOwners,
    rankers,
    coordinators,
  };
}

/**
 * The map with one node's advertised info replaced (e.g. its ranker / Recommend address after it
 * bound its ports). Pure; the caller writes it back with a CAS update. Throws a TypeError when the
 * node is not in the map.
 */
export function withNodeInfo(
  map: ShardMapSnapshot,
  name: string,
  patch: Partial<Omit<NodeInfo, 'name'>>,
): ShardMapSnapshot {
  const current = map.nodes[name];
  if (!current) throw new TypeError(`node "${name}" is not in the shard map of cluster ${map.cluster}`);
  const next: NodeInfo = { ...current, ...patch, name };
  return { ...map, nodes: { ...map.nodes, [name]: next } };
}
