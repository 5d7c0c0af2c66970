/**
 * The shard map: which node hosts each virtual item shard, user partition, ranker replica and
 * coordinator. An immutable, versioned snapshot: a change is a new snapshot written to NATS KV with
 * compare-and-set (the KV revision is the version), never a mutation under a request in flight.
 * Pure: no I/O here (see shardmap/kv-store.ts for the NATS KV adapter).
 */

/** What a node advertises about itself. */
export interface NodeInfo {
  readonly name: string;
  /** host:port of this node's public Recommend gRPC server, when it runs a coordinator. */
  readonly recommendAddress?: string;
  /** host:port of this node's KServe v2 ranker server, when it runs a ranker replica. */
  readonly rankerAddress?: string;
  /** "draining" nodes keep serving what they host but receive no new assignments. */
  readonly state: 'active' | 'draining';
}

export interface ShardMapSnapshot {
  /** Monotonic version: the KV revision it was read at (0 before it was first stored). */
  readonly version: number;
  readonly cluster: string;
  /** S: virtual item shards (fixed at creation). */
  readonly itemShards: number;
  /** P: virtual user partitions (fixed at creation). */
  readonly userPartitions: number;
  /** R: target replicas of each user partition (and of each item shard when itemReplicas is absent). */
  readonly replicas: number;
  /**
   * R_items: target replicas of each item shard, 1 ≤ R_items ≤ nodes. Optional so maps stored
   * before it existed still read; absent means `replicas`. Read it with {@link itemReplicasOf}.
   * Separate from R because every Recommend touches every item shard but only one user partition:
   * item shards are replicated for throughput (typically on every node), partitions only for
   * availability.
   */
  readonly itemReplicas?: number;
  readonly nodes: Readonly<Record<string, NodeInfo>>;
  /** itemShardOwners[s] = node names hosting item shard s. */
  readonly itemShardOwners: readonly (readonly string[])[];
  /** partitionOwners[p] = node names hosting user partition p. */
  readonly partitionOwners: readonly (readonly string[])[];
  /** Node names hosting a ranker replica. */
  readonly rankers: readonly string[];
  /** Node names hosting a coordinator (public Recommend endpoint). */
  readonly coordinators: readonly string[];
}

/** R_items: the target replicas of each item shard (`itemReplicas`, or `replicas` in maps without it). */
export function itemReplicasOf(map: Pick<ShardMapSnapshot, 'replicas' | 'itemReplicas'>): number {
  return map.itemReplicas ?? map.replicas;
}

/** Ranker endpoints (host:port) currently in the map, for client-side balancing. */
export function rankerAddresses(map: ShardMapSnapshot): string[] {
  const out: string[] = [];
  for (const name of map.rankers) {
    const addr = map.nodes[name]?.rankerAddress;
    if (addr) out.push(addr);
  }
  return out;
}

/** What one node should host according to the map. */
export interface NodeAssignment {
  readonly itemShards: number[];
  readonly userPartitions: number[];
  readonly ranker: boolean;
  readonly coordinator: boolean;
}

export function assignmentOf(map: ShardMapSnapshot, node: string): NodeAssignment {
  const itemShards: number[] = [];
  const userPartitions: number[] = [];
  map.itemShardOwners.forEach((owners, s) => owners.includes(node) && itemShards.push(s));
  map.partitionOwners.forEach((owners, p) => owners.includes(node) && userPartitions.push(p));
  return {
    itemShards,
    userPartitions,
    ranker: map.rankers.includes(node),
    coordinator: map.coordinators.includes(node),
  };
}
