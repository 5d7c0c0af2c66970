/**
 * The user-state actor: answers `Subjects.userGet(cluster, p)` (queue group of the partition's
 * replicas) for user partition `p` of `P` (DESIGN §2), and takes events through `applyEvents`
 * (the JetStream consumer, a later issue, calls it and acks after it resolves).
 *
 * Threading (option `thread`, default 'worker'): the partition (profiles, embedding cache, ONNX
 * session) lives in a worker thread and the NATS subscription on the main thread hands it raw request
 * bytes. onnxruntime-node runs `session.run` synchronously on the calling thread, so inline a cache
 * miss blocks the node's event loop for the whole tower run: 0.26–0.6 ms per batch-1 run of a
 * default-size tower (test/actors/bench-actors.ts, 2 vCPU, load average ~10). The worker hop added
 * only ~0.05–0.07 ms to the p50 of a NATS request (hit 0.28 → 0.35 ms, miss 0.41 → 0.46 ms, 10k
 * users), and keeps the loop free for the node's other actors. 'inline' runs the same code on the
 * main thread, for nodes that host nothing else and for measuring the hop.
 *
 * Start-up (option `snapshotDir`): profiles are restored from the partition's snapshot when it
 * matches the world, feature spec and P (snapshot.ts), else rebuilt by replaying the world and the
 * snapshot written. The catalogue the partition needs for new events is shared by every partition
 * of the node (catalogue-cache.ts). Measured on the local 1M-video world: see docs/ in the report.
 */
import { Worker } from 'node:worker_threads';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { StatusCode, UpnextError } from '../../core/status.js';
import type { StatusObject } from '../../core/status.js';
import { Subjects, validateClusterName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { openUserPartition } from './bootstrap.js';
import { acquireCatalogue } from './catalogue-cache.js';
import { handleUserStateRequest, userErrorReply } from './handler.js';
import type { ApplyResult, SequencedEvent, UserPartitionCounters, UserStatePartition } from './partition.js';
import type { FromUserWorker, ToUserWorker, UserPartitionReadyInfo, UserPartitionWorkerConfig } from './protocol.js';
import type { UserTower } from './user-tower.js';

/** Options of {@link startUserPartition}. */
export interface UserPartitionOptions {
  /** Already-connected NATS connection (not closed by stop()). */
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** This partition p, 0 ≤ p < partitionCount. */
  readonly partition: number;
  /** P, the number of user partitions. */
  readonly partitionCount: number;
  /** World to replay at start; omit to start empty (events arrive through applyEvents). */
  readonly worldDir?: string;
  /** Model directory holding user_tower.onnx and manifest.json. */
  readonly modelDir: string;
  /**
   * Folder for profile snapshots (`user-partition-<p>-of-<P>-<world>/`) and the node's catalogue
   * file; omit to replay the world at every start and write nothing.
   */
  readonly snapshotDir?: string;
  /** Cached embeddings (user × context bucket × profile version). Default 100000. */
  readonly embeddingCacheSize?: number;
  /** Where the partition runs: 'worker' (default) or 'inline' on the caller's thread. */
  readonly thread?: 'worker' | 'inline';
  /** Requests queued beyond which new ones get RESOURCE_EXHAUSTED. Default 512. */
  readonly maxInFlight?: number;
}

/** {@link UserPartitionOptions} after defaults and validation. */
export interface ResolvedUserPartitionOptions {
  readonly cluster: string;
  readonly partition: number;
  readonly partitionCount: number;
  readonly worldDir: string | undefined;
  readonly modelDir: string;
  readonly snapshotDir: string | undefined;
  readonly embeddingCacheSize: number;
  readonly thread: 'worker' | 'inline';
  readonly maxInFlight: number;
}

function requireInt(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new TypeError(`option ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/** Defaults, then validation (TypeError naming the option). */
export function resolveUserPartitionOptions(o: Omit<UserPartitionOptions, 'nc'>): ResolvedUserPartitionOptions {
  const partitionCount = requireInt('partitionCount', o.partitionCount, 1);
  const partition = requireInt('partition', o.partition, 0);
  if (partition >= partitionCount) throw new TypeError(`option partition must be < partitionCount (${partitionCount}), got ${partition}`);
  try {
    validateClusterName(o.cluster);
  } catch (err) {
    throw new TypeError(`option cluster: ${(err as Error).message}`);
  }
  if (typeof o.modelDir !== 'string' || o.modelDir.length === 0) throw new TypeError('option modelDir must be a non-empty string');
  if (o.worldDir !== undefined && (typeof o.worldDir !== 'string' || o.worldDir.length === 0)) throw new TypeError('option worldDir must be a non-empty string');
  if (o.snapshotDir !== undefined && (typeof o.snapshotDir !== 'string' || o.snapshotDir.length === 0)) throw new TypeError('option snapshotDir must be a non-empty string');
  const thread = o.thread ?? 'worker';
  if (thread !== 'worker' && thread !== 'inline') throw new TypeError(`option thread must be 'worker' or 'inline', got ${String(thread)}`);
  return {
    cluster: o.cluster,
    partition,
    partitionCount,
    worldDir: o.worldDir,
    modelDir: o.modelDir,
    snapshotDir: o.snapshotDir,
    embeddingCacheSize: requireInt('embeddingCacheSize', o.embeddingCacheSize ?? 100_000, 1),
    thread,
    maxInFlight: requireInt('maxInFlight', o.maxInFlight ?? 512, 1),
  };
}

/** Counters and sizes for /metrics. */
export interface UserPartitionStats extends UserPartitionCounters {
  readonly partition: number;
  readonly dropped: number;
  readonly rejected: number;
  readonly inFlight: number;
  readonly thread: 'worker' | 'inline';
}

/** A running user partition. */
export interface UserPartitionHandle {
  readonly info: UserPartitionReadyInfo;
  /** Applies stream events in order (skipping seq ≤ appliedSeq); ack after it resolves. */
  applyEvents(events: readonly SequencedEvent[]): Promise<ApplyResult>;
  stats(): UserPartitionStats;
  /** Unsubscribes and releases the worker / ONNX session. Idempotent. */
  stop(): Promise<void>;
}

/** Where the partition runs; both hosts answer the same bytes with the same code. */
interface PartitionHost {
  request(bytes: Uint8Array): Promise<Uint8Array | null>;
  apply(events: readonly SequencedEvent[]): Promise<ApplyResult>;
  counters(): UserPartitionCounters;
  close(): Promise<void>;
}

class InlineHost implements PartitionHost {
  readonly #p: UserStatePartition;
  readonly #tower: UserTower;
  constructor(p: UserStatePartition, tower: UserTower) {
    this.#p = p;
    this.#tower = tower;
  }
  request(bytes: Uint8Array): Promise<Uint8Array | null> {
    return handleUserStateRequest(this.#p, bytes);
  }
  async apply(events: readonly SequencedEvent[]): Promise<ApplyResult> {
    return this.#p.applyEvents(events);
  }
  counters(): UserPartitionCounters {
    return this.#p.counters();
  }
  close(): Promise<void> {
    return this.#tower.close();
  }
}

type Waiter = { resolve(v: never): void; reject(e: Error): void };

class WorkerHost implements PartitionHost {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, Waiter>();
  #nextId = 1;
  #counters: UserPartitionCounters;

  constructor(worker: Worker, counters: UserPartitionCounters) {
    this.#worker = worker;
    this.#counters = counters;
    worker.on('message', (m: FromUserWorker) => this.#onMessage(m));
    worker.on('error', (err) => this.#failAll({ code: StatusCode.INTERNAL, message: `user-state worker crashed: ${err.message}` }));
  }

  static async start(config: UserPartitionWorkerConfig): Promise<{ host: WorkerHost; info: UserPartitionReadyInfo }> {
    const worker = new Worker(new URL('./worker.js', import.meta.url));
    try {
      const ready = await new Promise<Extract<FromUserWorker, { type: 'ready' }>>((resolve, reject) => {
        worker.once('error', reject);
        worker.on('message', function onReady(m: FromUserWorker) {
          if (m.type === 'ready') resolve(m);
          else if (m.type === 'initFailed') reject(UpnextError.fromStatus(m.status));
          else return;
          worker.off('message', onReady);
          worker.off('error', reject);
        });
        const init: ToUserWorker = { type: 'init', config };
        worker.postMessage(init);
      });
      return { host: new WorkerHost(worker, ready.counters), info: ready.info };
    } catch (err) {
      await worker.terminate();
      throw err;
    }
  }

  #call<T>(build: (id: number) => ToUserWorker): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: never) => void, reject });
      this.#worker.postMessage(build(id));
    });
  }

  request(bytes: Uint8Array): Promise<Uint8Array | null> {
    return this.#call((id) => ({ type: 'get', id, request: bytes }));
  }

  apply(events: readonly SequencedEvent[]): Promise<ApplyResult> {
    return this.#call((id) => ({ type: 'apply', id, events }));
  }

  counters(): UserPartitionCounters {
    return this.#counters;
  }

  async close(): Promise<void> {
    this.#failAll({ code: StatusCode.UNAVAILABLE, message: 'user partition stopped' });
    await this.#worker.terminate();
  }

  #onMessage(m: FromUserWorker): void {
    if (m.type !== 'reply' && m.type !== 'applied') return;
    this.#counters = m.counters;
    const w = this.#waiting.get(m.id);
    this.#waiting.delete(m.id);
    if (w === undefined) return;
    if (m.type === 'reply') w.resolve(m.reply as never);
    else if (m.result !== null) w.resolve(m.result as never);
    else w.reject(UpnextError.fromStatus(m.status ?? { code: StatusCode.INTERNAL, message: 'apply failed' }));
  }

  #failAll(status: StatusObject): void {
    for (const [id, w] of this.#waiting) {
      this.#waiting.delete(id);
      w.reject(UpnextError.fromStatus(status));
    }
  }
}

/**
 * Opens the partition (restoring its snapshot, or replaying the world and writing one), then
 * subscribes to its subject.
 */
export async function startUserPartition(opts: UserPartitionOptions): Promise<UserPartitionHandle> {
  const o = resolveUserPartitionOptions(opts);
  // The node's partitions share one catalogue (catalogue-cache.ts); released when this one stops.
  const lease = o.worldDir === undefined ? undefined : await acquireCatalogue(o.worldDir, o.snapshotDir);
  const config: UserPartitionWorkerConfig = {
    partition: o.partition,
    partitionCount: o.partitionCount,
    worldDir: o.worldDir,
    modelDir: o.modelDir,
    embeddingCacheSize: o.embeddingCacheSize,
    snapshotDir: o.snapshotDir,
    catalogue: lease?.catalogue.columns,
  };
  let host: PartitionHost;
  let info: UserPartitionReadyInfo;
  try {
    if (o.thread === 'worker') {
      ({ host, info } = await WorkerHost.start(config));
    } else {
      const opened = await openUserPartition(config);
      host = new InlineHost(opened.partition, opened.tower);
      info = opened.info;
    }
  } catch (err) {
    lease?.release();
    throw err;
  }
  return new UserPartitionImpl(opts.nc, o, host, info, () => lease?.release());
}

class UserPartitionImpl implements UserPartitionHandle {
  readonly info: UserPartitionReadyInfo;
  readonly #o: ResolvedUserPartitionOptions;
  readonly #host: PartitionHost;
  readonly #sub: Subscription;
  #inFlight = 0;
  #dropped = 0;
  #rejected = 0;
  #stopped: Promise<void> | undefined;
  readonly #releaseCatalogue: () => void;

  constructor(nc: NatsConnection, o: ResolvedUserPartitionOptions, host: PartitionHost, info: UserPartitionReadyInfo, releaseCatalogue: () => void) {
    this.#o = o;
    this.#releaseCatalogue = releaseCatalogue;
    this.#host = host;
    this.info = info;
    this.#sub = nc.subscribe(Subjects.userGet(o.cluster, o.partition), {
      queue: Subjects.queueGroup(o.cluster, 'user', o.partition),
      callback: (err, msg) => void (err === null && this.#onRequest(msg)),
    });
  }

  #onRequest(msg: Msg): void {
    if (this.#inFlight >= this.#o.maxInFlight) {
      this.#rejected++;
      const status = { code: StatusCode.RESOURCE_EXHAUSTED, message: `user partition ${this.#o.partition} has ${this.#inFlight} requests queued` };
      msg.respond(Codecs.userStateReply.encode(userErrorReply(this.#o.partition, status)));
      return;
    }
    this.#inFlight++;
    this.#host.request(msg.data).then(
      (reply) => {
        this.#inFlight--;
        if (reply === null) this.#dropped++;
        else if (this.#stopped === undefined) msg.respond(reply);
      },
      () => {
        // Only a stopped or crashed worker rejects; the caller's timeout covers it.
        this.#inFlight--;
      },
    );
  }

  applyEvents(events: readonly SequencedEvent[]): Promise<ApplyResult> {
    if (this.#stopped !== undefined) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, 'user partition stopped'));
    return this.#host.apply(events);
  }

  stats(): UserPartitionStats {
    return { ...this.#host.counters(), partition: this.#o.partition, dropped: this.#dropped, rejected: this.#rejected, inFlight: this.#inFlight, thread: this.#o.thread };
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#sub.unsubscribe();
      await this.#host.close();
      this.#releaseCatalogue();
    })();
    return this.#stopped;
  }
}
