/**
 * The user-routing table a coordinator hands to clients (`Recommender.GetRouting`): for each user
 * partition, the Recommend addresses of the coordinators whose node hosts it. A coordinator reads a
 * user's state in its own process when its node hosts the user's partition (`coordinator.localShards`
 * 'prefer', the default) and over NATS otherwise; a client that sends each user to such a coordinator
 * saves that NATS round trip — on a fleet of N nodes, N−1 of every N requests without routing.
 *
 * Routing is a hint, never a requirement: every coordinator serves every user, so a stale table
 * (a partition moved since) costs one NATS hop, not an error. Pure: built from a shard-map snapshot
 * on the server, read back on the client.
 */
import type { ShardMapSnapshot } from './snapshot.js';
import { MAX_ADDRESS_LENGTH, isAddress } from './snapshot.js';

/** Most user partitions a table may carry (a bound on what a client accepts from the wire). */
const MAX_ROUTING_PARTITIONS = 65_536;

export interface RoutingTable {
  readonly cluster: string;
  /** Shard-map version the table was built from. */
  readonly mapVersion: number;
  /** P; a user's partition is `userPartitionOf(userId, P)` (core/hash.ts, docs/protocol.md). */
  readonly userPartitions: number;
  /** partitions[p] = Recommend addresses of the coordinators on nodes hosting partition p (may be empty). */
  readonly partitions: readonly (readonly string[])[];
  /** Every coordinator's Recommend address: where a user whose partition has none may go. */
  readonly coordinators: readonly string[];
}

/**
 * The table for `map` (addresses as advertised: pass the map after `withAdvertisedAddresses`).
 * Coordinators without an address yet are left out; draining nodes stay in (they serve what they host).
 */
export function routingTableOf(map: ShardMapSnapshot): RoutingTable {
  const addressOf = (node: string): string | undefined => (map.coordinators.includes(node) ? map.nodes[node]?.recommendAddress : undefined);
  const partitions: string[][] = [];
  for (let p = 0; p < map.userPartitions; p++) {
    const addrs: string[] = [];
    for (const node of map.partitionOwners[p] ?? []) {
      const a = addressOf(node);
      if (a !== undefined && !addrs.includes(a)) addrs.push(a);
    }
    partitions.push(addrs);
  }
  const coordinators: string[] = [];
  for (const node of map.coordinators) {
    const a = addressOf(node);
    if (a !== undefined && !coordinators.includes(a)) coordinators.push(a);
  }
  return { cluster: map.cluster, mapVersion: map.version, userPartitions: map.userPartitions, partitions, coordinators };
}


/** The wire form (proto-loader, camelCase; `mapVersion` as a number or a decimal string). */
export interface RoutingTableWire {
  readonly cluster?: unknown;
  readonly mapVersion?: unknown;
  readonly userPartitions?: unknown;
  readonly partitions?: unknown;
  readonly coordinators?: unknown;
}

function addressList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new TypeError(`${field} must be a list of host:port strings`);
  return value.map((a: unknown, i) => {
    if (!isAddress(a)) throw new TypeError(`${field}[${i}] must be a host:port string of 1..${MAX_ADDRESS_LENGTH} characters without spaces, got ${JSON.stringify(a)}`);
    return a;
  });
}

/**
 * Checks a GetRouting reply as a client receives it: one entry per partition, in partition order,
 * P in 1..{@link MAX_ROUTING_PARTITIONS}. Throws a TypeError naming the field.
 */
export function routingTableFromWire(wire: RoutingTableWire): RoutingTable {
  const p = Number(wire.userPartitions);
  if (!Number.isInteger(p) || p < 1 || p > MAX_ROUTING_PARTITIONS) throw new TypeError(`user_partitions must be an integer in 1..${MAX_ROUTING_PARTITIONS}, got ${String(wire.userPartitions)}`);
  const parts = wire.partitions;
  if (!Array.isArray(parts) || parts.length !== p) throw new TypeError(`partitions must hold one entry per partition (${p}), got ${Array.isArray(parts) ? parts.length : typeof parts}`);
  const partitions = parts.map((entry: unknown, i) => {
    const e = (entry ?? {}) as { partition?: unknown; recommendAddresses?: unknown };
    if (Number(e.partition ?? 0) !== i) throw new TypeError(`partitions[${i}].partition must be ${i}, got ${String(e.partition)}`);
    return addressList(e.recommendAddresses, `partitions[${i}].recommend_addresses`);
  });
  const version = Number(wire.mapVersion ?? 0);
  return {
    cluster: typeof wire.cluster === 'string' ? wire.cluster : '',
    mapVersion: Number.isFinite(version) ? version : 0,
    userPartitions: p,
    partitions,
    coordinators: addressList(wire.coordinators, 'coordinators'),
  };
}

/** The wire form of `table` (what the server sends). */
export function routingTableToWire(table: RoutingTable): {
  cluster: string;
  mapVersion: number;
  userPartitions: number;
  partitions: { partition: number; recommendAddresses: string[] }[];
  coordinators: string[];
} {
  return {
    cluster: table.cluster,
    mapVersion: table.mapVersion,
    userPartitions: table.userPartitions,
    partitions: table.partitions.map((addrs, partition) => ({ partition, recommendAddresses: [...addrs] })),
    coordinators: [...table.coordinators],
  };
}
