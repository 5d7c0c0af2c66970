/**
 * The NATS KV adapter of the shard map: the snapshot lives under key {@link KV_KEYS.shardMap} of
 * bucket `clusterKvBucket(cluster)`, as JSON (a cold path: read at start, on change and by the
 * CLI). The KV revision is the snapshot's version; every change is a compare-and-set on it, so
 * concurrent writers (nodes registering their addresses, an operator moving a shard) never lose
 * each other's updates and a retried write is safe.
 */
import { Kvm, KvWatchInclude } from '@nats-io/kv';
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { clusterKvBucket, KV_KEYS, validateClusterName } from '../core/subjects.js';
import { isStreamNotFound } from '../actors/event-stream/stream.js';
import { StatusCode, UpnextError } from '../core/status.js';
import type { ShardMapSnapshot } from './snapshot.js';
import type { NodeLoad } from './format.js';
import { validateShardMap } from './route.js';

/** JetStream API error "wrong last sequence": another writer got there first. */
const WRONG_LAST_SEQUENCE = 10071;
/** KV key prefix of the per-node load reports. */
const LOAD_PREFIX = 'load.';

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
  if (typeof v !== 'object' || v === null || typeof v.version !== 'string' || typeof v.requestedAt !== 'string' || (v.by !== undefined && typeof v.by !== 'string')) {
    throw new UpnextError(StatusCode.FAILED_PRECONDITION, 'model key must be {"version": string, "requestedAt": string, "by"?: string}');
  }
  return { version: v.version, requestedAt: v.requestedAt, ...(typeof v.by === 'string' ? { by: v.by } : {}) };
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

  /** The current snapshot (version = KV revision), or null when none was stored yet. */
  async read(): Promise<ShardMapSnapshot | null> {
    const entry = await this.#kv.get(KV_KEYS.shardMap);
    if (!entry || entry.operation !== 'PUT') return null;
    return decode(entry, this.cluster);
  }

  /**
   * Stores `map` unconditionally (a cluster being (re)created from scratch). Returns it with its new
   * version. Use {@link update} for every change to a live cluster.
   */
  async put(map: ShardMapSnapshot): Promise<ShardMapSnapshot> {
    this.#checkCluster(map);
    const revision = await this.#kv.put(KV_KEYS.shardMap, encode(map));
    return { ...map, version: revision };
  }

  /** Stores `map` only when no map exists yet; otherwise returns the stored one untouched. */
  async createIfAbsent(map: ShardMapSnapshot): Promise<{ snapshot: ShardMapSnapshot; created: boolean }> {
    this.#checkCluster(map);
    for (;;) {
      try {
        const revision = await this.#kv.create(KV_KEYS.shardMap, encode(map));
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
   * Compare-and-set update: reads the current map, applies `change` (pure; return null to leave the
   * map as it is), writes it only if nobody wrote in between, and retries on a conflict. Resolves to
   * the stored snapshot. FAILED_PRECONDITION when no map exists; ABORTED after `maxAttempts`
   * conflicts in a row (default 16).
   */
  async update(
    change: (current: ShardMapSnapshot) => ShardMapSnapshot | null,
    opts: { maxAttempts?: number } = {},
  ): Promise<ShardMapSnapshot> {
    const maxAttempts = opts.maxAttempts ?? 16;
    for (let attempt = 1; ; attempt++) {
      const current = await this.read();
      if (!current) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cluster ${this.cluster} has no shard map yet`);
      const next = change(current);
      if (next === null) return current;
      this.#checkCluster(next);
      try {
        const revision = await this.#kv.update(KV_KEYS.shardMap, encode(next), current.version);
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
   * Calls `onSnapshot` with the current map (if any) and then every new one, in revision order.
   * Deletions are ignored (a cluster never runs without a map). A value that fails validation is
   * reported to `onError` and skipped, so a bad write cannot take the fleet down.
   */
  async watch(
    onSnapshot: (map: ShardMapSnapshot) => void,
    onError: (err: unknown) => void = () => {},
  ): Promise<ShardMapWatch> {
    return this.#watchKey(KV_KEYS.shardMap, (entry) => decode(entry, this.cluster), onSnapshot, onError);
  }

  /**
   * Calls `onValue` with `key`'s current value (if any) and then every new one, in revision order.
   * Deletions are ignored; a value `parse` refuses goes to `onError` and is skipped, so a bad write
   * cannot take the fleet down.
   */
  async #watchKey<T>(key: string, parse: (entry: KvEntry) => T, onValue: (value: T) => void, onError: (err: unknown) => void): Promise<ShardMapWatch> {
    const iter = await this.#kv.watch({ key, include: KvWatchInclude.LastValue });
    const done = (async () => {
      for await (const entry of iter) {
        if (entry.operation !== 'PUT') continue;
        let value: T;
        try {
          value = parse(entry);
        } catch (err) {
          onError(err);
          continue;
        }
        onValue(value);
      }
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
