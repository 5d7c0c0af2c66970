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

/**
 * Where a node serves, as the node itself advertises it under its own KV key
 * (shardmap/kv-store.ts `nodeAddressKey`), apart from the admin-written map. `{}` is a withdrawal:
 * the node stopped, or runs neither server.
 */
export interface NodeAddresses {
  /** host:port of the node's KServe v2 ranker server. */
  readonly rankerAddress?: string;
  /** host:port of the node's public Recommend gRPC server. */
  readonly recommendAddress?: string;
}

/** The address fields of `info` (none when the node is absent). */
export function addressesOf(info: NodeInfo | undefined): NodeAddresses {
  return {
    ...(info?.rankerAddress ? { rankerAddress: info.rankerAddress } : {}),
    ...(info?.recommendAddress ? { recommendAddress: info.recommendAddress } : {}),
  };
}

/** Whether two address records advertise the same endpoints. */
export function sameAddresses(a: NodeAddresses, b: NodeAddresses): boolean {
  return (a.rankerAddress ?? '') === (b.rankerAddress ?? '') && (a.recommendAddress ?? '') === (b.recommendAddress ?? '');
}

function withAddresses(info: NodeInfo, addresses: NodeAddresses): NodeInfo {
  const { rankerAddress: _r, recommendAddress: _c, ...rest } = info;
  return { ...rest, ...addressesOf({ ...rest, ...addresses }) };
}

/**
 * The map as readers see it: each node that has an address record gets that record's addresses
 * (replacing any the map itself holds: maps written by builds before the per-node keys carried
 * them); nodes without a record keep the map's; records of nodes not in the map are ignored. The
 * version stays the map's own: an address change is not an assignment change. Pure.
 */
export function withAdvertisedAddresses(map: ShardMapSnapshot, records: ReadonlyMap<string, NodeAddresses>): ShardMapSnapshot {
  let nodes: Record<string, NodeInfo> | undefined;
  for (const [name, addresses] of records) {
    const info = map.nodes[name];
    if (info === undefined || sameAddresses(addressesOf(info), addresses)) continue;
    nodes ??= { ...map.nodes };
    nodes[name] = withAddresses(info, addresses);
  }
  return nodes === undefined ? map : { ...map, nodes };
}

/**
 * The map with the addresses of `nodes` removed: what is stored under the map key for nodes whose
 * own address record decides (a copy there would be stale the moment the node re-registers). Pure.
 */
export function withoutAddresses(map: ShardMapSnapshot, nodes: ReadonlySet<string>): ShardMapSnapshot {
  return withAdvertisedAddresses(map, new Map([...nodes].map((n) => [n, {}])));
}

/** Most characters of an advertised host:port. */
export const MAX_ADDRESS_LENGTH = 256;

/** Whether `a` is an address as the map carries them: a non-empty host:port string without whitespace, ≤ MAX_ADDRESS_LENGTH. */
export function isAddress(a: unknown): a is string {
  return typeof a === 'string' && a.length > 0 && a.length <= MAX_ADDRESS_LENGTH && !/\s/.test(a);
}

/**
 * Structural check of an address record read from KV: an object whose `rankerAddress` and
 * `recommendAddress`, when present, are non-empty strings without whitespace of at most 256
 * characters. Other fields are dropped (a newer writer may add some). Throws a TypeError naming the
 * bad field.
 */
export function validateNodeAddresses(value: unknown): NodeAddresses {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError('node address record must be an object');
  const v = value as Record<string, unknown>;
  const out: { rankerAddress?: string; recommendAddress?: string } = {};
  for (const f of ['rankerAddress', 'recommendAddress'] as const) {
    const a = v[f];
    if (a === undefined) continue;
    if (!isAddress(a)) {
      throw new TypeError(`node address record ${f} must be a host:port string of 1..${MAX_ADDRESS_LENGTH} characters without spaces`);
    }
    out[f] = a;
  }
  return out;
}
