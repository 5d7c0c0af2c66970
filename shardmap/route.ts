/**
 * Pure routing over a shard-map snapshot: key → owning virtual shard → the nodes hosting it, as a
 * tagged result in the style of grpc-js's `Picker.pick()`. Requests themselves travel on the
 * per-shard NATS subjects (core/subjects.ts) and NATS balances over the queue group; these helpers
 * answer the operational questions: who should serve a key, what is uncovered, how loaded is a node.
 */
import { itemShardOf, userPartitionOf } from '../core/hash.js';
import { Subjects } from '../core/subjects.js';
import type { NodeAssignment, ShardMapSnapshot } from './snapshot.js';
import { assignmentOf, itemReplicasOf } from './snapshot.js';

/** Where a key goes: its virtual shard, the NATS subject serving it and the nodes hosting it. */
export interface RouteTarget {
  readonly kind: 'target';
  readonly shard: number;
  readonly subject: string;
  /** Nodes hosting the shard (active and draining: a draining node still serves what it hosts). */
  readonly owners: readonly string[];
  /** The map version the answer was computed from. */
  readonly version: number;
}

/** The key has no live owner in this map (e.g. its only node was removed). */
export interface RouteReject {
  readonly kind: 'reject';
  readonly shard: number;
  readonly reason: string;
  readonly version: number;
}

export type RouteResult = RouteTarget | RouteReject;

function route(map: ShardMapSnapshot, shard: number, owners: readonly string[] | undefined, subject: string, what: string): RouteResult {
  const live = (owners ?? []).filter((n) => map.nodes[n] !== undefined);
  if (live.length === 0) {
    return { kind: 'reject', shard, reason: `${what} ${shard} has no owner in map version ${map.version}`, version: map.version };
  }
  return { kind: 'target', shard, subject, owners: live, version: map.version };
}

/** Route a video id to its item shard. */
export function routeVideo(map: ShardMapSnapshot, videoId: number): RouteResult {
  const s = itemShardOf(videoId, map.itemShards);
  return route(map, s, map.itemShardOwners[s], Subjects.itemSearch(map.cluster, s), 'item shard');
}

/** Route a user id to its user partition. */
export function routeUser(map: ShardMapSnapshot, userId: number): RouteResult {
  const p = userPartitionOf(userId, map.userPartitions);
  return route(map, p, map.partitionOwners[p], Subjects.userGet(map.cluster, p), 'user partition');
}

/**
 * Item shards with fewer active owners than R_items and user partitions with fewer than R (empty
 * lists: fully replicated).
 */
export interface UnderReplicated {
  readonly itemShards: readonly number[];
  readonly userPartitions: readonly number[];
}

export function underReplicated(map: ShardMapSnapshot): UnderReplicated {
  const short = (owners: readonly (readonly string[])[], target: number) =>
    owners.flatMap((o, i) => (o.filter((n) => map.nodes[n]?.state === 'active').length < target ? [i] : []));
  return {
    itemShards: short(map.itemShardOwners, itemReplicasOf(map)),
    userPartitions: short(map.partitionOwners, map.replicas),
  };
}

/** One row of the per-node view the CLI prints. */
export interface NodeRow extends NodeAssignment {
  readonly name: string;
  readonly state: 'active' | 'draining';
  readonly recommendAddress?: string;
  readonly rankerAddress?: string;
}

/** Every node's assignment, in name order. */
export function nodeRows(map: ShardMapSnapshot): NodeRow[] {
  return Object.keys(map.nodes)
    .sort()
    .map((name) => {
      const info = map.nodes[name]!;
      const row: NodeRow = { name, state: info.state, ...assignmentOf(map, name) };
      return {
        ...row,
        ...(info.recommendAddress ? { recommendAddress: info.recommendAddress } : {}),
        ...(info.rankerAddress ? { rankerAddress: info.rankerAddress } : {}),
      };
    });
}

/**
 * Structural check of a snapshot read from outside (KV, a file): shapes, S/P lengths, owners that
 * exist. `itemReplicas` may be absent (maps stored before it existed: it then reads as
 * `replicas`). Throws a TypeError naming the first bad field. Used by the KV adapter on every read
 * so a hand-edited map cannot crash a node later.
 */
export function validateShardMap(value: unknown): ShardMapSnapshot {
  const m = value as Partial<ShardMapSnapshot> | null;
  if (typeof m !== 'object' || m === null) throw new TypeError('shard map must be an object');
  const int = (f: keyof ShardMapSnapshot, min: number) => {
    const v = m[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new TypeError(`shard map ${f} must be an integer ≥ ${min}`);
    return v;
  };
  int('version', 0);
  const S = int('itemShards', 1);
  const P = int('userPartitions', 1);
  int('replicas', 1);
  if (m.itemReplicas !== undefined) int('itemReplicas', 1);
  if (typeof m.cluster !== 'string') throw new TypeError('shard map cluster must be a string');
  if (typeof m.nodes !== 'object' || m.nodes === null) throw new TypeError('shard map nodes must be an object');
  for (const [name, info] of Object.entries(m.nodes)) {
    if (!info || info.name !== name) throw new TypeError(`shard map nodes.${name}.name must equal its key`);
    if (info.state !== 'active' && info.state !== 'draining') throw new TypeError(`shard map nodes.${name}.state must be active|draining`);
  }
  const owners = (f: 'itemShardOwners' | 'partitionOwners', n: number) => {
    const v = m[f];
    if (!Array.isArray(v) || v.length !== n) throw new TypeError(`shard map ${f} must have ${n} entries`);
    v.forEach((o, i) => {
      if (!Array.isArray(o) || o.some((x) => typeof x !== 'string' || !(x in m.nodes!))) {
        throw new TypeError(`shard map ${f}[${i}] must list nodes of the map`);
      }
    });
  };
  owners('itemShardOwners', S);
  owners('partitionOwners', P);
  for (const f of ['rankers', 'coordinators'] as const) {
    const v = m[f];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !(x in m.nodes!))) {
      throw new TypeError(`shard map ${f} must list nodes of the map`);
    }
  }
  return m as ShardMapSnapshot;
}
