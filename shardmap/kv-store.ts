/**
 * The NATS KV adapter of the shard map. Bucket `clusterKvBucket(cluster)` holds, as JSON (a cold
 * path: read at start, on change and by the CLI):
 * - {@link KV_KEYS.shardMap}: the assignments, written only by admin operations (init, move, drain,
 *   add-node). Its KV revision is the snapshot's version; every change is a compare-and-set on it,
 *   so concurrent operators never lose each other's updates and a retried write is safe.
 * - `addr.<node>` ({@link nodeAddressKey}): where each node serves, written by the node itself
 *   (last write wins; `{}` withdraws). Kept out of the map key so the `node` NATS role needs no
 *   write access to the assignments (cluster/nats/auth.ts).
 * - `load.<node>`: each node's load report; `model`: the model pointer.
 *
 * {@link ShardMapStore.read} and {@link ShardMapStore.watch} hand out the map with each node's
 * address record merged in (shardmap/snapshot.ts `withAdvertisedAddresses`), so readers see one
 * snapshot as before; its version stays the map key's revision.
 */
import { Kvm, KvWatchInclude } from '@nats-io/kv';
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { clusterKvBucket, KV_KEYS, validateClusterName, validateNodeKeyToken } from '../core/subjects.js';
import { isStreamNotFound } from '../actors/event-stream/stream.js';
import { StatusCode, UpnextError } from '../core/status.js';
import type { NodeAddresses, ShardMapSnapshot } from './snapshot.js';
import { addressesOf, sameAddresses, validateNodeAddresses, withAdvertisedAddresses, withoutAddresses } from './snapshot.js';
import type { NodeLoad } from './format.js';
import { validateShardMap } from './route.js';

/** JetStream API error "wrong last sequence": another writer got there first. */
const WRONG_LAST_SEQUENCE = 10071;
/** KV key prefix of the per-node load reports. */
const LOAD_PREFIX = 'load.';
/**
 * KV key prefix of the per-node address records (cluster/nats/auth.ts grants a node's own identity
 * `addr.<node>`, the shared node key `addr.*`).
 */
const ADDRESS_PREFIX = 'addr.';

/** KV key of `node`'s address record, e.g. "addr.n1". TypeError when the name cannot be a key token. */
export function nodeAddressKey(node: string): string {
  return `${ADDRESS_PREFIX}${validateNodeKeyToken(node)}`;
}

/** Options of {@link ShardMapStore.open}. */
export interface ShardMapStoreOptions {
  /** Revisions of each key kept in the bucket (audit trail of map changes). Default 16. */
  readonly history?: number;
  /** KV request timeout in ms. Default 5000. */
  readonly timeoutMs?: number;
  /**
   * Create the bucket when it is missing. Default true (a new cluster). Tools acting on a live
   * cluster pass false, so a mistyped cluster name is a NOT_FOUND error instead of a new empty bucket.
   */
  readonly create?: boolean;
}


/** A running watch; `stop()` is idempotent. */
export interface ShardMapWatch {
  stop(): Promise<void>;
}

function isCasConflict(err: unknown): boolean {
  // Structural: the JetStream client throws JetStreamApiError with a numeric `code`.
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE;
}

/**
 * One node's address record as read: its KV revision, and its addresses, or undefined when the key
 * was deleted or holds an invalid value (then the map's own addresses for the node, if any, apply).
 */
interface AddressEntry {
  readonly revision: number;
  readonly addresses: NodeAddresses | undefined;
}

function decodeAddresses(entry: KvEntry): NodeAddresses | undefined {
  if (entry.operation !== 'PUT') return undefined;
  return validateNodeAddresses(JSON.parse(new TextDecoder().decode(entry.value)));
}

/** The records that decide their node's addresses (deleted and invalid ones do not). */
function liveRecords(entries: ReadonlyMap<string, AddressEntry>): Map<string, NodeAddresses> {
  const out = new Map<string, NodeAddresses>();
  for (const [node, e] of entries) if (e.addresses !== undefined) out.set(node, e.addresses);
  return out;
}

/** Whether two snapshots of the same version advertise the same addresses for every node. */
function sameAdvertised(a: ShardMapSnapshot, b: ShardMapSnapshot): boolean {
  return Object.keys(b.nodes).every((n) => sameAddresses(addressesOf(a.nodes[n]), addressesOf(b.nodes[n])));
}

function decode(entry: KvEntry, cluster: string): ShardMapSnapshot {
  const raw: unknown = JSON.parse(new TextDecoder().decode(entry.value));
  const map = validateShardMap({ ...(raw as object), version: entry.revision });
  if (map.cluster !== cluster) {
    throw new UpnextError(StatusCode.FAILED_PRECONDITION, `shard map in bucket of cluster ${cluster} names cluster ${map.cluster}`);
  }
  return map;
}

function encode(map: ShardMapSnapshot): Uint8Array {
  // The version is the KV revision, not part of the stored value.
  const { version: _version, ...rest } = map;
  return new TextEncoder().encode(JSON.stringify(rest));
}

/**
 * Value of the cluster's "model" key ({@link KV_KEYS.model}): the model version every node should
 * serve, as JSON. Written by `shardmap model` (compare-and-set on the key's revision), followed by
 * every node (cluster/node/node.ts).
 */
export interface ModelKeyValue {
  /** A directory name under the nodes' models root, e.g. "20240601-a". */
  readonly version: string;
  /** ISO-8601 time of the request. */
  readonly requestedAt: string;
  /** Who asked (operator or tool), for the audit trail. */
  readonly by?: string;
  /**
   * Set when this value undoes a switch (a rollback after a refusal, or `shardmap model --cancel`):
   * the version it goes back from. A cancel refuses to act on such a value, which would restart
   * the switch that was undone.
   */
  readonly revertOf?: string;
}

/** A "model" key value with its KV revision. */
export interface ModelKeyEntry {
  readonly revision: number;
  readonly value: ModelKeyValue;
}

/** Parses a stored "model" value; FAILED_PRECONDITION naming what is wrong. */
function parseModelKeyValue(bytes: Uint8Array): ModelKeyValue {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new UpnextError(StatusCode.FAILED_PRECONDITION, `model key is not JSON: ${(err as Error).message}`);
  }
  const v = raw as Partial<Record<keyof ModelKeyValue, unknown>> | null;
  const optionalString = (x: unknown) => x === undefined || typeof x === 'string';
  if (typeof v !== 'object' || v === null || typeof v.version !== 'string' || typeof v.requestedAt !== 'string' || !optionalString(v.by) || !optionalString(v.revertOf)) {
    throw new UpnextError(StatusCode.FAILED_PRECONDITION, 'model key must be {"version": string, "requestedAt": string, "by"?: string, "revertOf"?: string}');
  }
  return {
    version: v.version,
    requestedAt: v.requestedAt,
    ...(typeof v.by === 'string' ? { by: v.by } : {}),
    ...(typeof v.revertOf === 'string' ? { revertOf: v.revertOf } : {}),
  };
}

/** Reads, writes (CAS) and watches one cluster's shard map in NATS KV. */
export class ShardMapStore {
  readonly cluster: string;
  readonly #kv: KV;

  private constructor(cluster: string, kv: KV) {
    this.cluster = cluster;
    this.#kv = kv;
  }

  /**
   * Opens the cluster's KV bucket on an already-connected NatsConnection, creating it when missing
   * unless `opts.create` is false (then NOT_FOUND).
   */
  static async open(nc: NatsConnection, cluster: string, opts: ShardMapStoreOptions = {}): Promise<ShardMapStore> {
    validateClusterName(cluster);
    const history = opts.history ?? 16;
    if (!Number.isInteger(history) || history < 1 || history > 64) throw new TypeError(`history must be an integer in 1..64, got ${history}`);
    const kvm = new Kvm(nc);
    if (opts.create === false) {
      const kv = await kvm.open(clusterKvBucket(cluster), { timeout: opts.timeoutMs ?? 5000 });
      try {
        await kv.status();
      } catch (err) {
        if (isStreamNotFound(err)) {
          throw new UpnextError(StatusCode.NOT_FOUND, `cluster ${cluster} has no shard-map bucket (${clusterKvBucket(cluster)}) on this NATS server`);
        }
        throw err;
      }
      return new ShardMapStore(cluster, kv);
    }
    const kv = await kvm.create(clusterKvBucket(cluster), { history, timeout: opts.timeoutMs ?? 5000 });
    return new ShardMapStore(cluster, kv);
  }

  /**
   * The current snapshot (version = the map key's KV revision) with every node's address record
   * merged in, or null when no map was stored yet.
   */
  async read(): Promise<ShardMapSnapshot | null> {
    return (await this.#readMerged())?.map ?? null;
  }

  /** The stored map key, decoded (addresses as stored: none, or an older build's), or null. */
  async #readMapKey(): Promise<ShardMapSnapshot | null> {
    const entry = await this.#kv.get(KV_KEYS.shardMap);
    if (!entry || entry.operation !== 'PUT') return null;
    return decode(entry, this.cluster);
  }

  /** The address records of `nodes` that exist (an invalid one reads as absent: the map's addresses apply). */
  async #readAddressEntries(nodes: readonly string[]): Promise<Map<string, AddressEntry>> {
    const out = new Map<string, AddressEntry>();
    await Promise.all(
      nodes.map(async (node) => {
        let key: string;
        try {
          key = nodeAddressKey(node);
        } catch {
          return; // a name that cannot be a key token has no record
        }
        const entry = await this.#kv.get(key);
        if (!entry) return;
        let addresses: NodeAddresses | undefined;
        try {
          addresses = decodeAddresses(entry);
        } catch {
          addresses = undefined;
        }
        out.set(node, { revision: entry.revision, addresses });
      }),
    );
    return out;
  }

  /** The merged map and the nodes whose address record decides their addresses. */
  async #readMerged(): Promise<{ map: ShardMapSnapshot; recorded: Set<string> } | null> {
    const raw = await this.#readMapKey();
    if (raw === null) return null;
    const records = liveRecords(await this.#readAddressEntries(Object.keys(raw.nodes)));
    return { map: withAdvertisedAddresses(raw, records), recorded: new Set(records.keys()) };
  }

  /**
   * What goes under the map key for `map`: without the addresses of nodes that have their own
   * address record (those decide; a copy in the map would only go stale). Addresses of nodes
   * without one (written by an older build, or by an operator) are kept. Synchronous when `map`
   * holds no address (nothing to look up), so the write is issued at once.
   */
  #encodeForWrite(map: ShardMapSnapshot): Uint8Array | Promise<Uint8Array> {
    const advertising = Object.keys(map.nodes).filter((n) => !sameAddresses(addressesOf(map.nodes[n]), {}));
    if (advertising.length === 0) return encode(map);
    return this.#readAddressEntries(advertising).then((entries) => encode(withoutAddresses(map, new Set(liveRecords(entries).keys()))));
  }

  /**
   * Stores `map` unconditionally (a cluster being (re)created from scratch). Returns it with its new
   * version. Use {@link update} for every change to a live cluster.
   */
  async put(map: ShardMapSnapshot): Promise<ShardMapSnapshot> {
    this.#checkCluster(map);
    const bytes = this.#encodeForWrite(map);
    const revision = await this.#kv.put(KV_KEYS.shardMap, bytes instanceof Uint8Array ? bytes : await bytes);
    return { ...map, version: revision };
  }

  /** Stores `map` only when no map exists yet; otherwise returns the stored one untouched. */
  async createIfAbsent(map: ShardMapSnapshot): Promise<{ snapshot: ShardMapSnapshot; created: boolean }> {
    this.#checkCluster(map);
    for (;;) {
      try {
        const bytes = this.#encodeForWrite(map);
        const revision = await this.#kv.create(KV_KEYS.shardMap, bytes instanceof Uint8Array ? bytes : await bytes);
        return { snapshot: { ...map, version: revision }, created: true };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        const current = await this.read();
        if (current) return { snapshot: current, created: false };
        // deleted between our create and read: try again
      }
    }
  }

  /**
   * Compare-and-set update of the map key: reads the current map (addresses merged in, as
   * {@link read}), applies `change` (pure; return null to leave the map as it is), writes it only if
   * nobody wrote the map key in between, and retries on a conflict. Address records are not part
   * of the CAS: a node re-registering never makes an operator's update retry. Resolves to the
   * stored snapshot. FAILED_PRECONDITION when no map exists; ABORTED after `maxAttempts` conflicts
   * in a row (default 16).
   */
  async update(
    change: (current: ShardMapSnapshot) => ShardMapSnapshot | null,
    opts: { maxAttempts?: number } = {},
  ): Promise<ShardMapSnapshot> {
    const maxAttempts = opts.maxAttempts ?? 16;
    for (let attempt = 1; ; attempt++) {
      const read = await this.#readMerged();
      if (!read) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cluster ${this.cluster} has no shard map yet`);
      const current = read.map;
      const next = change(current);
      if (next === null) return current;
      this.#checkCluster(next);
      try {
        const revision = await this.#kv.update(KV_KEYS.shardMap, encode(withoutAddresses(next, read.recorded)), current.version);
        return { ...next, version: revision };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        if (attempt >= maxAttempts) {
          throw new UpnextError(StatusCode.ABORTED, `shard map update lost ${attempt} compare-and-set races in a row`);
        }
      }
    }
  }

  /**
   * Advertises where `node` serves (its own key {@link nodeAddressKey}; last write wins, no CAS: only
   * the node writes it). `{}` withdraws both addresses. Resolves to the KV revision.
   */
  async putAddresses(node: string, addresses: NodeAddresses): Promise<number> {
    const record = validateNodeAddresses(addresses);
    return this.#kv.put(nodeAddressKey(node), new TextEncoder().encode(JSON.stringify(record)));
  }

  /**
   * `node`'s address record, or null when it has none (never registered, deleted, or invalid): its
   * addresses are then whatever the map key holds for it.
   */
  async readAddresses(node: string): Promise<NodeAddresses | null> {
    return (await this.#readAddressEntries([node])).get(node)?.addresses ?? null;
  }

  /**
   * Calls `onSnapshot` with the current map (if any) and then every new one: a new map key revision,
   * or a change of a map node's advertised addresses (same version: not an assignment change).
   * Addresses are merged as in {@link read}. Map versions never go backwards. Deletions of the map
   * are ignored (a cluster never runs without a map); a deleted address record falls back to the
   * map's addresses. A value that fails validation is reported to `onError` and skipped (an invalid
   * address record reads as absent), so a bad write cannot take the fleet down.
   */
  async watch(
    onSnapshot: (map: ShardMapSnapshot) => void,
    onError: (err: unknown) => void = () => {},
  ): Promise<ShardMapWatch> {
    // One consistent first snapshot (map + the records of its nodes), then two watches feeding the
    // same state; an entry is applied only when newer than what the state holds, so the watches'
    // replay of current values changes nothing. nats-server 2.9 has no multi-filter consumers.
    let raw = await this.#readMapKey().catch((err: unknown) => {
      onError(err);
      return null;
    });
    const records = raw === null ? new Map<string, AddressEntry>() : await this.#readAddressEntries(Object.keys(raw.nodes));
    let last: ShardMapSnapshot | undefined;
    const emit = () => {
      if (raw === null) return;
      const merged = withAdvertisedAddresses(raw, liveRecords(records));
      if (last !== undefined && last.version === merged.version && sameAdvertised(last, merged)) return;
      last = merged;
      onSnapshot(merged);
    };
    emit();
    const addressWatch = await this.#watchEntries(
      `${ADDRESS_PREFIX}*`,
      (entry) => {
        const node = entry.key.slice(ADDRESS_PREFIX.length);
        if ((records.get(node)?.revision ?? 0) >= entry.revision) return;
        let addresses: NodeAddresses | undefined;
        try {
          addresses = decodeAddresses(entry);
        } catch (err) {
          onError(new TypeError(`address record of node ${node} (revision ${entry.revision}): ${(err as Error).message}`));
          addresses = undefined;
        }
        records.set(node, { revision: entry.revision, addresses });
        emit();
      },
      onError,
    );
    const mapWatch = await this.#watchEntries(
      KV_KEYS.shardMap,
      (entry) => {
        if (entry.operation !== 'PUT' || (raw !== null && raw.version >= entry.revision)) return;
        try {
          raw = decode(entry, this.cluster);
        } catch (err) {
          onError(err);
          return;
        }
        emit();
      },
      onError,
    );
    let stopped: Promise<void> | undefined;
    return {
      stop: () => {
        stopped ??= Promise.all([mapWatch.stop(), addressWatch.stop()]).then(() => {});
        return stopped;
      },
    };
  }

  /**
   * Calls `onValue` with `key`'s current value (if any) and then every new one, in revision order.
   * Deletions are ignored; a value `parse` refuses goes to `onError` and is skipped, so a bad write
   * cannot take the fleet down.
   */
  async #watchKey<T>(key: string, parse: (entry: KvEntry) => T, onValue: (value: T) => void, onError: (err: unknown) => void): Promise<ShardMapWatch> {
    return this.#watchEntries(
      key,
      (entry) => {
        if (entry.operation !== 'PUT') return;
        let value: T;
        try {
          value = parse(entry);
        } catch (err) {
          onError(err);
          return;
        }
        onValue(value);
      },
      onError,
    );
  }

  /** Calls `onEntry` with the current entry of each key matching `key` (deletions included), then every new one. */
  async #watchEntries(key: string, onEntry: (entry: KvEntry) => void, onError: (err: unknown) => void): Promise<ShardMapWatch> {
    const iter = await this.#kv.watch({ key, include: KvWatchInclude.LastValue });
    const done = (async () => {
      for await (const entry of iter) onEntry(entry);
    })().catch(onError);
    let stopped: Promise<void> | undefined;
    return {
      stop: () => {
        stopped ??= (async () => {
          iter.stop();
          await done;
        })();
        return stopped;
      },
    };
  }

  /** The "model" key with its revision, or null when no version was ever set (or it was deleted). */
  async readModelKey(): Promise<ModelKeyEntry | null> {
    const entry = await this.#kv.get(KV_KEYS.model);
    if (!entry || entry.operation !== 'PUT') return null;
    return { revision: entry.revision, value: parseModelKeyValue(entry.value) };
  }

  /**
   * Writes the "model" key only if it is still at `expectedRevision` (null: only if it has no value
   * yet). Resolves to the new revision; ABORTED when another writer got there first.
   */
  async writeModelKey(value: ModelKeyValue, expectedRevision: number | null): Promise<number> {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    try {
      return expectedRevision === null ? await this.#kv.create(KV_KEYS.model, bytes) : await this.#kv.update(KV_KEYS.model, bytes, expectedRevision);
    } catch (err) {
      if (isCasConflict(err)) throw new UpnextError(StatusCode.ABORTED, `the model key changed while this switch was being prepared (expected revision ${expectedRevision ?? 'none'}): look at it and retry`);
      throw err;
    }
  }

  /**
   * The "model" key's kept values, oldest first (the bucket keeps the last `history` writes, 16 by
   * default); deletions and values that do not parse are left out. For `shardmap model --cancel`,
   * which goes back to the version before the current one.
   */
  async readModelKeyHistory(): Promise<ModelKeyEntry[]> {
    const out: ModelKeyEntry[] = [];
    const iter = await this.#kv.history({ key: KV_KEYS.model });
    for await (const entry of iter) {
      if (entry.operation !== 'PUT') continue;
      try {
        out.push({ revision: entry.revision, value: parseModelKeyValue(entry.value) });
      } catch {
        // A value no build could have followed: not a version to go back to.
      }
    }
    return out.sort((a, b) => a.revision - b.revision);
  }

  /**
   * Calls `onValue` with the current "model" value (if any) and then every new one, in revision
   * order. Deletions are ignored; a value that fails to parse goes to `onError` and is skipped.
   */
  async watchModelKey(onValue: (entry: ModelKeyEntry) => void, onError: (err: unknown) => void = () => {}): Promise<ShardMapWatch> {
    return this.#watchKey(KV_KEYS.model, (entry) => ({ revision: entry.revision, value: parseModelKeyValue(entry.value) }), onValue, onError);
  }

  /**
   * Publishes one node's load report under key `load.<node>` of the same bucket (optional: the CLI
   * shows it when present). Last write wins; no CAS needed.
   */
  async putLoad(node: string, load: NodeLoad): Promise<void> {
    await this.#kv.put(`${LOAD_PREFIX}${node}`, new TextEncoder().encode(JSON.stringify(load)));
  }

  /** Every node's last load report, by node name. */
  async readLoads(nodes: readonly string[]): Promise<Map<string, NodeLoad>> {
    const out = new Map<string, NodeLoad>();
    for (const node of nodes) {
      const entry = await this.#kv.get(`${LOAD_PREFIX}${node}`);
      if (entry && entry.operation === 'PUT') out.set(node, entry.json<NodeLoad>());
    }
    return out;
  }

  #checkCluster(map: ShardMapSnapshot): void {
    if (map.cluster !== this.cluster) throw new TypeError(`map is for cluster ${map.cluster}, store is for ${this.cluster}`);
    validateShardMap(map);
  }
}
