/**
 * Moving a virtual item shard or user partition between nodes, live (DESIGN §7): the two map edits
 * of a move, pure, and the orchestration that applies them with compare-and-set and waits for the
 * nodes in between.
 *
 * A move of `kind index` from node A to node B:
 * 1. **warm**: B is added as an extra owner (CAS). B starts the actor: it restores the snapshot and
 *    replays the event stream from the snapshot's sequence (user partitions), then joins the NATS
 *    queue group — from then on A and B both answer, with the same state.
 * 2. wait until B reports the actor running (its node status, `Subjects.nodeStatus`).
 * 3. **flip**: A is removed as an owner (CAS). A stops the actor gracefully: it leaves the queue
 *    group first (NATS sends everything to B), finishes what it holds, then closes.
 * 4. wait until A reports it gone.
 * No request fails: at every moment the queue group has a member with the state. If B does not
 * become ready within the timeout, the move is rolled back (B removed) and the error says why.
 * Every step is a CAS over the whole map, so a move is safe to retry.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { Subjects } from '../core/subjects.js';
import type { ShardMapStore } from './kv-store.js';
import type { ShardMapSnapshot } from './snapshot.js';

/** Which kind of virtual shard a move concerns. */
export type MovableKind = 'item' | 'user';

/** The owner lists of `kind` (item shards or user partitions), by index. */
export function ownersOf(map: ShardMapSnapshot, kind: MovableKind): readonly (readonly string[])[] {
  return kind === 'item' ? map.itemShardOwners : map.partitionOwners;
}

function checkIndex(map: ShardMapSnapshot, kind: MovableKind, index: number): void {
  const count = kind === 'item' ? map.itemShards : map.userPartitions;
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new TypeError(`${kind === 'item' ? 'item shard' : 'partition'} must be an integer in 0..${count - 1}, got ${String(index)}`);
  }
}

function withOwners(map: ShardMapSnapshot, kind: MovableKind, index: number, owners: readonly string[]): ShardMapSnapshot {
  const all = ownersOf(map, kind).map((o, i) => (i === index ? [...owners].sort() : o));
  return kind === 'item' ? { ...map, itemShardOwners: all } : { ...map, partitionOwners: all };
}

/** The map with `node` added as an owner of `kind index` (the warm step). Throws a TypeError naming the problem. */
export function withExtraOwner(map: ShardMapSnapshot, kind: MovableKind, index: number, node: string): ShardMapSnapshot {
  checkIndex(map, kind, index);
  const info = map.nodes[node];
  if (info === undefined) throw new TypeError(`node "${node}" is not in the shard map of cluster ${map.cluster}`);
  if (info.state !== 'active') throw new TypeError(`node "${node}" is ${info.state}: it takes no new shards`);
  const owners = ownersOf(map, kind)[index] ?? [];
  if (owners.includes(node)) throw new TypeError(`node "${node}" already hosts ${kind} ${index}`);
  return withOwners(map, kind, index, [...owners, node]);
}

/** The map with `node` removed as an owner of `kind index` (the flip step). Throws when it would leave none. */
export function withoutOwner(map: ShardMapSnapshot, kind: MovableKind, index: number, node: string): ShardMapSnapshot {
  checkIndex(map, kind, index);
  const owners = ownersOf(map, kind)[index] ?? [];
  if (!owners.includes(node)) throw new TypeError(`node "${node}" does not host ${kind} ${index}`);
  if (owners.length === 1) throw new TypeError(`${kind} ${index} would have no owner left: add the new owner first`);
  return withOwners(map, kind, index, owners.filter((n) => n !== node));
}

/** What a node answers on `Subjects.nodeStatus`. */
export interface NodeStatus {
  readonly node: string;
  /** The map version the node has reconciled to. */
  readonly mapVersion: number;
  /** Actor keys running now, e.g. "item:0", "user:3". */
  readonly actors: readonly string[];
  /** The model the node serves and its last answer to the cluster's "model" key (absent from nodes that do not follow it). */
  readonly model?: NodeModelStatus;
}

/** The model part of a {@link NodeStatus}. */
export interface NodeModelStatus {
  /** manifest.version of the model the node serves now. */
  readonly version: string;
  /**
   * Embedding space of its towers (actors/model/embedding-space.ts): nodes of different spaces do not
   * search each other's vectors (a rolling restart onto new towers shows two). Absent from older builds.
   */
  readonly space?: string;
  /** KV revision of the last "model" key value the node acted on (switched, kept or refused); 0 = none yet. */
  readonly keyRevision: number;
  /** Why the node did not switch to the version at `keyRevision`, when it refused. */
  readonly refused?: { readonly version: string; readonly code: string; readonly message: string };
}

/** Options of {@link moveShard}. */
export interface MoveOptions {
  readonly nc: NatsConnection;
  readonly store: ShardMapStore;
  readonly cluster: string;
  readonly kind: MovableKind;
  readonly index: number;
  readonly from: string;
  readonly to: string;
  /** Longest wait for each node to converge, ms. Default 120,000 (a 1M-item shard restores in seconds, builds in about a minute). */
  readonly timeoutMs?: number;
  /** Poll interval of the node status, ms. Default 100. */
  readonly pollMs?: number;
}

/** How long each step took. */
export interface MoveResult {
  /** Map versions after the warm and the flip. */
  readonly versions: { readonly warm: number; readonly flip: number };
  /** From the warm CAS until the new owner serves, ms. */
  readonly warmMs: number;
  /** From the flip CAS until the old owner stopped it, ms. */
  readonly drainMs: number;
}

/** One node's status, or undefined when it does not answer within 1 s (down, restarting, never started). */
export async function nodeStatus(nc: NatsConnection, cluster: string, node: string): Promise<NodeStatus | undefined> {
  try {
    const m = await nc.request(Subjects.nodeStatus(cluster, node), new Uint8Array(), { timeout: 1000 });
    return JSON.parse(new TextDecoder().decode(m.data)) as NodeStatus;
  } catch {
    return undefined; // down or restarting: keep polling until the timeout
  }
}

/** What waiting on a node's status needs. */
export type StatusPoll = Pick<MoveOptions, 'nc' | 'cluster' | 'timeoutMs' | 'pollMs'>;

/**
 * Polls `node`'s status until `ok` holds; throws after `o.timeoutMs` (default 120,000 ms) naming
 * `what`. A node that does not answer (down, restarting, never started) counts as not ok yet.
 */
export async function waitFor(o: StatusPoll, node: string, ok: (s: NodeStatus) => boolean, what: string): Promise<void> {
  const end = Date.now() + (o.timeoutMs ?? 120_000);
  for (;;) {
    const s = await nodeStatus(o.nc, o.cluster, node);
    if (s !== undefined && ok(s)) return;
    if (Date.now() > end) throw new Error(`timed out after ${o.timeoutMs ?? 120_000} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 100));
  }
}

/**
 * The warm step shared by moves and add-node: makes `node` an extra owner of `kind index` (a CAS;
 * nothing when it already is one) and waits until it serves it. When it never does, the extra owner
 * is dropped again — only while other owners remain, so the shard stays served — and the wait's
 * error is rethrown. Returns the map version of the warm step.
 */
export async function warmOwner(o: Omit<MoveOptions, 'kind' | 'index' | 'from' | 'to'>, kind: MovableKind, index: number, node: string): Promise<number> {
  const key = `${kind}:${index}`;
  const owners = (m: ShardMapSnapshot) => ownersOf(m, kind)[index] ?? [];
  const warm = await o.store.update((m) => (owners(m).includes(node) ? null : withExtraOwner(m, kind, index, node)));
  try {
    await waitFor(o, node, (s) => s.mapVersion >= warm.version && s.actors.includes(key), `${node} to serve ${key}`);
  } catch (err) {
    await o.store.update((m) => (owners(m).includes(node) && owners(m).length > 1 ? withoutOwner(m, kind, index, node) : null)).catch(() => undefined);
    throw err;
  }
  return warm.version;
}

/** Moves `kind index` from `from` to `to` without a failed request (see the module comment). */
export async function moveShard(o: MoveOptions): Promise<MoveResult> {
  if (o.from === o.to) throw new TypeError('from and to must be different nodes');
  const key = `${o.kind}:${o.index}`;
  const current = await o.store.read();
  if (current === null) throw new Error(`no shard map for cluster ${o.cluster}`);
  checkIndex(current, o.kind, o.index);
  const owns = (m: ShardMapSnapshot, node: string) => (ownersOf(m, o.kind)[o.index] ?? []).includes(node);
  // A retried move finds its own earlier steps done: each step is skipped when already applied.
  if (!owns(current, o.from) && !owns(current, o.to)) throw new TypeError(`node "${o.from}" does not host ${key}`);
  const t0 = Date.now();
  const warm = { version: await warmOwner(o, o.kind, o.index, o.to) };
  const warmMs = Date.now() - t0;
  const t1 = Date.now();
  const flip = await o.store.update((m) => (owns(m, o.from) ? withoutOwner(m, o.kind, o.index, o.from) : null));
  await waitFor(o, o.from, (s) => s.mapVersion >= flip.version && !s.actors.includes(key), `${o.from} to drain ${key}`);
  return { versions: { warm: warm.version, flip: flip.version }, warmMs, drainMs: Date.now() - t1 };
}

/** The map with `node` marked draining (it keeps serving what it hosts; moves never pick it). */
export function withNodeState(map: ShardMapSnapshot, node: string, state: 'active' | 'draining'): ShardMapSnapshot {
  const info = map.nodes[node];
  if (info === undefined) throw new TypeError(`node "${node}" is not in the shard map of cluster ${map.cluster}`);
  if (info.state === state) return map;
  return { ...map, nodes: { ...map.nodes, [node]: { ...info, state } } };
}

/**
 * Where a shard of `kind` leaving `from` should go: the active node not hosting it that hosts the
 * fewest of that kind (ties: name order), or undefined when every active node hosts it already.
 */
export function pickDestination(map: ShardMapSnapshot, kind: MovableKind, index: number, from: string): string | undefined {
  const owners = ownersOf(map, kind);
  const held = new Map<string, number>();
  for (const o of owners) for (const n of o) held.set(n, (held.get(n) ?? 0) + 1);
  const here = owners[index] ?? [];
  return Object.keys(map.nodes)
    .filter((n) => n !== from && map.nodes[n]?.state === 'active' && !here.includes(n))
    .sort((a, b) => (held.get(a) ?? 0) - (held.get(b) ?? 0) || a.localeCompare(b))[0];
}

/** One step of {@link drainNode}. */
export interface DrainStep {
  readonly kind: MovableKind;
  readonly index: number;
  /** Where it went; undefined when other owners already held it and the node just let go. */
  readonly to: string | undefined;
  readonly ms: number;
}

/**
 * Empties `node` of item shards and user partitions, live: marks it draining, then for each thing
 * it hosts either lets go (another owner already hosts it) or moves it ({@link moveShard}) to
 * {@link pickDestination}'s node, one at a time. Its ranker and coordinator roles stay (they hold no
 * state; take them out of the map or stop the node afterwards). Throws, leaving the node draining,
 * when a shard has nowhere to go or a move fails; running it again continues where it stopped.
 */
export async function drainNode(o: Omit<MoveOptions, 'kind' | 'index' | 'from' | 'to'> & { readonly node: string; readonly log?: (s: DrainStep) => void }): Promise<DrainStep[]> {
  await o.store.update((m) => (m.nodes[o.node]?.state === 'draining' ? null : withNodeState(m, o.node, 'draining')));
  const steps: DrainStep[] = [];
  for (;;) {
    const map = await o.store.read();
    if (map === null) throw new Error(`no shard map for cluster ${o.cluster}`);
    const next = (['item', 'user'] as const)
      .flatMap((kind) => ownersOf(map, kind).flatMap((owners, index) => (owners.includes(o.node) ? [{ kind, index, owners }] : [])))[0];
    if (next === undefined) return steps;
    const t0 = Date.now();
    let to: string | undefined;
    if (next.owners.length > 1) {
      const flip = await o.store.update((m) => ((ownersOf(m, next.kind)[next.index] ?? []).includes(o.node) ? withoutOwner(m, next.kind, next.index, o.node) : null));
      await waitFor(o, o.node, (s) => s.mapVersion >= flip.version && !s.actors.includes(`${next.kind}:${next.index}`), `${o.node} to drain ${next.kind}:${next.index}`);
    } else {
      to = pickDestination(map, next.kind, next.index, o.node);
      if (to === undefined) throw new Error(`${next.kind} ${next.index} has nowhere to go: no other active node`);
      await moveShard({ ...o, kind: next.kind, index: next.index, from: o.node, to });
    }
    const step: DrainStep = { kind: next.kind, index: next.index, to, ms: Date.now() - t0 };
    steps.push(step);
    o.log?.(step);
  }
}
