/**
 * Adding a node to a running cluster, live (DESIGN §2, "add/drain a node"): the map edits, pure,
 * and the orchestration that applies them one compare-and-set at a time.
 *
 * The node process must already run: an operator (or cluster/local/launcher.ts `startExtraNode`)
 * starts it, it finds itself absent from the map, runs no actor and answers its status subject
 * (`Subjects.nodeStatus`) while it watches the map. {@link addNode} then:
 * 1. **registers** it (CAS): an active node, a ranker when every other active node is one (its
 *    address reaches coordinators only once its ranker serves: the node registers it itself),
 *    never a coordinator (a public endpoint is an operator's choice). Then waits until the node
 *    answers with that map version; if it never does, what this run wrote is undone (the node hosts
 *    nothing yet: a registered node leaves the map, a reactivated one drains again) and the error
 *    says to start the process.
 * 2. **replicates item shards** when the map keeps every item shard on every node (R_items ≥ the
 *    other active nodes, what `itemReplicas: "all"` writes): the node becomes an extra owner of
 *    each shard, one at a time, waiting until it serves it (the warm step of a move, no flip: the
 *    old owners stay), then R_items is raised to the new active-node count. Otherwise item shards
 *    are rebalanced like partitions (step 3).
 * 3. **rebalances user partitions**: moves (shardmap/move.ts `moveShard`: warm, wait, flip, drain)
 *    one partition at a time from the active node hosting the most to the new node, until every
 *    other active node hosts at most one more than it. A partition the node already hosts is never
 *    picked (its replicas stay on distinct nodes).
 * 4. waits until the node serves everything the map assigns it.
 *
 * Draining nodes: never a source (their partitions belong to the drain in progress, which moves
 * them itself; taking one here would race it) and not counted in the balance; never a
 * destination. Adding a node that is draining reactivates it only when its drain has finished
 * (it hosts nothing); one still hosting something is refused.
 *
 * Every step re-reads the map and skips what is done, so running it again after an interruption
 * resumes, and running it for a node that already has its share changes nothing.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { StatusCode, UpnextError } from '../core/status.js';
import type { ShardMapStore } from './kv-store.js';
import type { MovableKind, NodeStatus } from './move.js';
import { moveShard, ownersOf, waitFor, warmOwner, withNodeState } from './move.js';
import type { NodeInfo, ShardMapSnapshot } from './snapshot.js';
import { assignmentOf, itemReplicasOf } from './snapshot.js';

/** What a node name must match (the same rule as shardmap/assign.ts and NATS subject tokens). */
export const NODE_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Throws a TypeError unless `name` is a valid node name. */
export function validateNodeName(name: string): string {
  if (typeof name !== 'string' || !NODE_NAME_PATTERN.test(name)) {
    throw new TypeError(`node name must match [A-Za-z0-9_-]{1,64}, got "${String(name)}"`);
  }
  return name;
}

function activeNodes(map: ShardMapSnapshot): string[] {
  return Object.keys(map.nodes)
    .filter((n) => map.nodes[n]?.state === 'active')
    .sort();
}

/**
 * Whether the map keeps every item shard on every node: R_items ≥ the number of active nodes other
 * than `node` (what `itemReplicas: "all"` writes; the map stores the count, not the word). A map
 * that holds R_items = nodes by explicit choice reads the same, and that is what it means too.
 */
export function itemsOnEveryNode(map: ShardMapSnapshot, node: string): boolean {
  return itemReplicasOf(map) >= activeNodes(map).filter((n) => n !== node).length;
}

/** Whether `node` would be a ranker by default: every other active node is one (and there is one). */
export function rankerByDefault(map: ShardMapSnapshot, node: string): boolean {
  const others = activeNodes(map).filter((n) => n !== node);
  return others.length > 0 && others.every((n) => map.rankers.includes(n));
}

/**
 * The map with `node` added, active, hosting nothing yet; a ranker when `ranker`. Throws a
 * TypeError when the name is invalid or the node is already in the map.
 */
export function withNewNode(map: ShardMapSnapshot, node: string, ranker: boolean): ShardMapSnapshot {
  validateNodeName(node);
  if (map.nodes[node] !== undefined) throw new TypeError(`node "${node}" is already in the shard map of cluster ${map.cluster}`);
  const info: NodeInfo = { name: node, state: 'active' };
  return {
    ...map,
    nodes: { ...map.nodes, [node]: info },
    rankers: ranker ? [...map.rankers, node].sort() : map.rankers,
  };
}

/**
 * The map without `node` (undoing a registration whose process never answered). Throws a
 * TypeError when it hosts a shard or partition or runs the coordinator: those need a drain.
 */
export function withoutNode(map: ShardMapSnapshot, node: string): ShardMapSnapshot {
  if (map.nodes[node] === undefined) return map;
  const a = assignmentOf(map, node);
  if (a.itemShards.length + a.userPartitions.length > 0 || a.coordinator) {
    throw new TypeError(`node "${node}" hosts shards, partitions or a coordinator: drain it instead`);
  }
  const { [node]: _gone, ...nodes } = map.nodes;
  return { ...map, nodes, rankers: map.rankers.filter((n) => n !== node) };
}

/** Count of `kind` owned by each active node. */
function heldBy(map: ShardMapSnapshot, kind: MovableKind): Map<string, number> {
  const held = new Map(activeNodes(map).map((n) => [n, 0]));
  for (const owners of ownersOf(map, kind)) for (const n of owners) if (held.has(n)) held.set(n, held.get(n)! + 1);
  return held;
}

/**
 * The next move that brings `node` closer to its share of `kind`, or undefined when every other
 * active node hosts at most one more than it. Source: the active node hosting the most (ties: name
 * order); the partition (or shard): its lowest index that `node` does not host already. Pure.
 */
export function nextRebalanceMove(map: ShardMapSnapshot, kind: MovableKind, node: string): { readonly index: number; readonly from: string } | undefined {
  if (map.nodes[node]?.state !== 'active') return undefined;
  const held = heldBy(map, kind);
  const mine = held.get(node) ?? 0;
  const owners = ownersOf(map, kind);
  const sources = [...held]
    .filter(([n, c]) => n !== node && c - mine > 1)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  for (const [from] of sources) {
    const index = owners.findIndex((o) => o.includes(from) && !o.includes(node));
    if (index >= 0) return { index, from };
  }
  return undefined;
}

/** One step of {@link addNode}. */
export type AddNodeStep =
  | { readonly action: 'register'; readonly ranker: boolean; readonly version: number; readonly ms: number }
  | { readonly action: 'reactivate'; readonly version: number; readonly ms: number }
  /** Became an extra owner of item shard `index` and serves it (the old owners stay). */
  | { readonly action: 'replicate'; readonly kind: 'item'; readonly index: number; readonly version: number; readonly ms: number }
  /** Took `kind index` over from `from` (a whole live move). */
  | { readonly action: 'move'; readonly kind: MovableKind; readonly index: number; readonly from: string; readonly version: number; readonly ms: number }
  /** R_items raised so `shardmap show` counts the new node's copies as wanted ones. */
  | { readonly action: 'item-replicas'; readonly itemReplicas: number; readonly version: number; readonly ms: number };

/** Options of {@link addNode}. */
export interface AddNodeOptions {
  readonly nc: NatsConnection;
  readonly store: ShardMapStore;
  readonly cluster: string;
  /** Name of the node to add; its process must already run (see the module comment). */
  readonly node: string;
  /** Give it a ranker replica. Default: when every other active node has one. Only applied when the node is registered. */
  readonly ranker?: boolean;
  /** Longest wait for each node to converge, ms. Default 120,000 (as moveShard). */
  readonly timeoutMs?: number;
  /** Poll interval of the node status, ms. Default 100. */
  readonly pollMs?: number;
  /** Called after each step. */
  readonly log?: (step: AddNodeStep) => void;
}

/** What {@link addNode} did. */
export interface AddNodeResult {
  readonly node: string;
  readonly steps: readonly AddNodeStep[];
  /** True when nothing changed: the node was already in the map, active, with its share. */
  readonly noop: boolean;
  /** Whether item shards were replicated onto it (every node holds every item shard) rather than rebalanced. */
  readonly itemsOnEveryNode: boolean;
  /** The map after the last step. */
  readonly map: ShardMapSnapshot;
  /** Its final assignment. */
  readonly itemShards: readonly number[];
  readonly userPartitions: readonly number[];
}

async function readMap(o: AddNodeOptions): Promise<ShardMapSnapshot> {
  const map = await o.store.read();
  if (map === null) throw new UpnextError(StatusCode.NOT_FOUND, `cluster ${o.cluster} has no shard map`);
  return map;
}

/** Everything `node` should run according to `map` (its item shards and partitions). */
function servesAll(map: ShardMapSnapshot, node: string): (s: NodeStatus) => boolean {
  const a = assignmentOf(map, node);
  const keys = [...a.itemShards.map((s) => `item:${s}`), ...a.userPartitions.map((p) => `user:${p}`)];
  return (s) => s.mapVersion >= map.version && keys.every((k) => s.actors.includes(k));
}

/** Adds `o.node` to the cluster and gives it its share, live (see the module comment). */
export async function addNode(o: AddNodeOptions): Promise<AddNodeResult> {
  validateNodeName(o.node);
  const node = o.node;
  const steps: AddNodeStep[] = [];
  const step = (s: AddNodeStep) => {
    steps.push(s);
    o.log?.(s);
  };

  // 1. Register (or reactivate a drained node), then make sure its process answers.
  let map = await readMap(o);
  const present = map.nodes[node];
  let t0 = Date.now();
  // Logged once the node answers: the step's time is then CAS + the node reconciling to it.
  let joined: AddNodeStep | undefined;
  if (present?.state === 'draining') {
    const a = assignmentOf(map, node);
    const hosted = a.itemShards.length + a.userPartitions.length;
    if (hosted > 0) throw new TypeError(`node "${node}" is draining and still hosts ${hosted} shard(s)/partition(s): let the drain finish, then add it again`);
    map = await o.store.update((m) => (m.nodes[node]?.state === 'draining' ? withNodeState(m, node, 'active') : null));
    joined = { action: 'reactivate', version: map.version, ms: 0 };
  } else if (present === undefined) {
    const ranker = o.ranker ?? rankerByDefault(map, node);
    map = await o.store.update((m) => (m.nodes[node] === undefined ? withNewNode(m, node, ranker) : null));
    joined = { action: 'register', ranker, version: map.version, ms: 0 };
  }
  const registeredAt = map.version;
  try {
    await waitFor(o, node, (s) => s.mapVersion >= registeredAt, `node ${node} to answer on its status subject with map version ≥ ${registeredAt}`);
  } catch (err) {
    // Nothing is assigned to it yet, so undo what this run wrote: a node it registered leaves the
    // map, a node it reactivated is draining again. A node that was already in the map is left alone.
    let undone = '';
    await o.store
      .update((m) => {
        const a = m.nodes[node] === undefined ? undefined : assignmentOf(m, node);
        if (a === undefined || a.itemShards.length + a.userPartitions.length > 0 || a.coordinator) return null;
        if (joined?.action === 'register') {
          undone = '; it was taken out of the map again';
          return withoutNode(m, node);
        }
        if (joined?.action === 'reactivate') {
          undone = '; it is draining again';
          return withNodeState(m, node, 'draining');
        }
        return null;
      })
      .catch(() => (undone = ''));
    throw new UpnextError(
      StatusCode.UNAVAILABLE,
      `${err instanceof Error ? err.message : String(err)}: start the node process (same cluster and NATS) before add-node${undone}`,
    );
  }

  if (joined !== undefined) step({ ...joined, ms: Date.now() - t0 });

  // 2. Item shards: a copy of each when every node holds every shard, otherwise a share.
  map = await readMap(o);
  const everyNode = itemsOnEveryNode(map, node);
  if (everyNode) {
    for (let s = 0; s < map.itemShards; s++) {
      if ((map.itemShardOwners[s] ?? []).includes(node)) continue;
      t0 = Date.now();
      // The old owners keep theirs: a copy that never comes up is dropped again.
      const version = await warmOwner(o, 'item', s, node);
      step({ action: 'replicate', kind: 'item', index: s, version, ms: Date.now() - t0 });
    }
    t0 = Date.now();
    const before = await readMap(o);
    const after = await o.store.update((m) => {
      const active = activeNodes(m).length;
      return itemReplicasOf(m) < active ? { ...m, itemReplicas: active } : null;
    });
    if (after.version !== before.version) step({ action: 'item-replicas', itemReplicas: itemReplicasOf(after), version: after.version, ms: Date.now() - t0 });
  }

  // 3. Partitions (and item shards when they are not on every node): one live move at a time.
  for (const kind of everyNode ? (['user'] as const) : (['item', 'user'] as const)) {
    for (;;) {
      map = await readMap(o);
      const next = nextRebalanceMove(map, kind, node);
      if (next === undefined) break;
      t0 = Date.now();
      const r = await moveShard({ ...o, kind, index: next.index, from: next.from, to: node });
      step({ action: 'move', kind, index: next.index, from: next.from, version: r.versions.flip, ms: Date.now() - t0 });
    }
  }

  // 4. It serves everything it was given (covers steps a resumed run found already written).
  map = await readMap(o);
  await waitFor(o, node, servesAll(map, node), `${node} to serve its assignment of map version ${map.version}`);
  const a = assignmentOf(map, node);
  return { node, steps, noop: steps.length === 0, itemsOnEveryNode: everyNode, map, itemShards: a.itemShards, userPartitions: a.userPartitions };
}
