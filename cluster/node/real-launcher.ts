/**
 * The production {@link ActorLauncher}: starts the real actors from the actor folders with the
 * node's config. One NATS connection per node is shared by every actor it hosts (each actor's
 * subscriptions live on the node's main thread and hand work to its worker threads).
 */
import path from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ModelManifest } from '../../core/model/contract.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import type { ItemShardHandle } from '../../actors/item-shard/item-shard.js';
import { NatsUserStateSource } from '../../actors/coordinator/nats-ports.js';
import { Deadline } from '../../core/deadline.js';
import { firstUserOfPartition } from '../../core/hash.js';
import { StatusCode, UpnextError, failedPrecondition } from '../../core/status.js';
import { Codecs } from '../../protos/codec.js';
import { Subjects } from '../../core/subjects.js';
import { readEmbeddingSpace } from '../../actors/model/embedding-space.js';
import type { LocalItemShard } from '../../actors/item-shard/item-shard.js';
import type { LocalUserPartition } from '../../actors/user-state/user-state.js';
import { startRanker } from '../../actors/ranker/replica.js';
import type { RankerHandle } from '../../actors/ranker/replica.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import { startPopular } from '../../actors/popular/popular.js';
import type { PopularHandle } from '../../actors/popular/popular.js';
import { servingTimeOffsetMs, startCoordinator } from '../../actors/coordinator/index.js';
import type { CoordinatorHandle } from '../../actors/coordinator/index.js';
import { routingTableOf } from '../../shardmap/routing-table.js';
import { readWorldManifest } from '../../offline/world/reader.js';
import { worldEndMs } from '../../offline/world/format.js';
import type { UpnextConfig } from '../config.js';
import { grpcChannelCredentials, grpcServerCredentials } from '../tls.js';
import type { ActorLauncher, RunningActor, RunningServerActor } from './actor-launcher.js';

/** What the real launcher needs. */
export interface RealLauncherOptions {
  readonly nc: NatsConnection;
  readonly config: UpnextConfig;
  readonly node: string;
  readonly worldDir: string;
  readonly modelDir: string;
  /** Item-shard and user-partition snapshots (and the catalogue file) go to `<runDir>/snapshots`. */
  readonly runDir: string;
  readonly model: ModelManifest;
  readonly log: (event: Record<string, unknown>) => void;
}

/**
 * Keeps `actor.local` in `registry` under `key` while the actor runs, so the coordinator in this
 * process finds it; stop() removes it first, so no new local call reaches a stopping actor.
 */
function registered<L, A extends RunningActor & { readonly local: L }>(registry: Map<number, L>, key: number, actor: A): RunningActor {
  registry.set(key, actor.local);
  return {
    stats: () => actor.stats(),
    stop: () => {
      if (registry.get(key) === actor.local) registry.delete(key);
      return actor.stop();
    },
  };
}

/** The real launcher, plus the live model switch the node drives (cluster/node/node.ts). */
export interface RealLauncher extends ActorLauncher {
  /**
   * Serves the model in `dir` from now on: reloads this node's ranker replica (new workers warmed,
   * then swapped), then sets the coordinator's model (version + calibration for new requests);
   * actors started later load it too. The caller has checked that the towers are unchanged, so item
   * shards and user partitions keep running. On a failure — or when `signal` aborts (a cancel, the
   * node stopping) before the coordinator takes the model — the ranker is put back on the previous
   * model (best effort) and the error is rethrown: the node keeps what it served.
   */
  switchModel(dir: string, manifest: ModelManifest, signal?: AbortSignal): Promise<void>;
  /**
   * Serves the model in `dir`, whose towers (embedding `space`) differ from the served ones, without
   * a restart (DESIGN §5 "shards hot-swap"):
   * 1. admin changes to this node's item shards are paused (answered UNAVAILABLE, retryable);
   * 2. each shard, one at a time, exports its live items to a new instance on the new towers, which
   *    encodes and indexes them in its own worker while the old one serves, then answers searches of
   *    the new space (Subjects.itemSearchInSpace) only;
   * 3. barrier: every shard of the cluster has a replica answering in the new space, and every user
   *    partition answers in it (loading the new user tower: foreign-towers.ts);
   * 4. the ranker reloads and the coordinator flips to the new model and space;
   * 5. the new shards join the shared subjects; each old one leaves them and keeps answering old-space
   *    searches from nodes not yet switched until none comes for {@link RETIRE_IDLE_MS}, then stops.
   * Every request is served in one space throughout (in-process shards are looked up by space). On a
   * failure before the flip — or when `signal` aborts (the node stops, or the key moved on), checked between shards and
   * while waiting at the barrier — the new instances retire, the ranker is put back, admin resumes
   * and the error is rethrown: the node keeps what it served.
   */
  switchTowers(dir: string, manifest: ModelManifest, space: string, signal?: AbortSignal): Promise<void>;
}

/**
 * How long after a node starts its tower switch it waits for the rest of the cluster to answer in the
 * new space (other nodes may have more items to rebuild, or start later), ms. Below the CLI's wait
 * (shardmap/model-switch.ts TOWER_SWITCH_TIMEOUT_MS), so a node refuses before the CLI gives up.
 */
const TOWER_SWITCH_BARRIER_MS = 480_000;

/**
 * Throws when `signal` has fired (the node is stopping, or the model key moved on): its reason when
 * that is an UpnextError (it says which), else ABORTED.
 */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason instanceof UpnextError ? signal.reason : new UpnextError(StatusCode.ABORTED, 'tower switch abandoned');
}

/** One of this node's item shards: the running instance, replaced in place by a tower switch. */
interface ItemShardCell {
  handle: ItemShardHandle;
  readonly shardCount: number;
  /** The instance a tower switch is building on the new towers, until it flips or gives up. */
  preparing?: ItemShardHandle | undefined;
  /** Instances a tower switch replaced (or prepared and gave up), while they still answer searches in their space. */
  readonly retiring: Set<ItemShardHandle>;
}

/** A replaced shard instance stops after this long without a search in its space, ms. */
const RETIRE_IDLE_MS = 5_000;
/** ... or after this long in any case, ms. */
const RETIRE_MAX_MS = 600_000;

export function createRealLauncher(o: RealLauncherOptions): RealLauncher {
  const cluster = o.config.cluster.name;
  const host = o.config.node.host;
  const { itemShard: is, userState: us, popular: po, coordinator: co } = o.config;
  // Built once per node: with `tls` set, mutual TLS on both gRPC servers and on the ranker client.
  const serverCredentials = grpcServerCredentials(o.config.tls);
  const rankerCredentials = grpcChannelCredentials(o.config.tls);
  /** This node's ranker replica while it runs: the coordinator in this process scores on it directly. */
  let localRanker: RankerHandle | undefined;
  /** This node's item shards and user partitions while they run: the coordinator here calls them in-process. */
  /** This node's item shards: the serving instance of each, and during a tower switch the others. */
  const itemShardCells = new Map<number, ItemShardCell>();
  /**
   * The in-process instance of `shard` for a request in `space` ('' = unstated: the serving one):
   * during a tower switch a shard runs on both tower pairs, and each request searches its own.
   */
  const localShardFor = (shard: number, space: string): LocalItemShard | undefined => {
    const cell = itemShardCells.get(shard);
    if (cell === undefined || space === '') return cell?.handle.local;
    for (const h of [cell.handle, cell.preparing, ...cell.retiring]) if (h?.info.space === space) return h.local;
    return undefined;
  };
  /** P and S, learnt when a user partition, item shard or the coordinator starts. */
  let userPartitionCount = 0;
  let itemShardCount = 0;
  /**
   * The barrier of a tower switch: waits until every item shard of the cluster has a replica
   * answering in `space` (Subjects.itemSearchInSpace) and every user partition answers a read in it
   * (over NATS: local and remote replicas alike), so a node flips only when its coordinator can reach
   * every shard and every user in the new space — no shard missed because its owner has not built
   * its copy yet, no read without an embedding because a partition has not loaded the new user tower
   * (actors/user-state/foreign-towers.ts). A shard probe is a search no shard accepts (no vector): any
   * answer proves a responder. With several replicas of a partition the probe reaches one; the others
   * load on their first request. FAILED_PRECONDITION when `deadlineMs` passes (e.g. a node refused,
   * or the version is missing from its models root).
   */
  const awaitClusterInSpace = async (space: string, modelVersion: string, deadlineMs: number, signal?: AbortSignal): Promise<void> => {
    const late = (what: string) => failedPrecondition(`${what} did not answer in embedding space ${space} by the switch's deadline: did a node refuse model ${modelVersion}, or lack it under its models root?`);
    const pause = async () => {
      await new Promise((r) => setTimeout(r, 200));
      throwIfAborted(signal);
    };
    const probe = Codecs.shardSearchRequest.encode({ userVector: [], k: 1, excludeVideoIds: [], deadlineMs: 0, space });
    const users = new NatsUserStateSource(o.nc, cluster, Math.max(1, userPartitionCount));
    const context = { device: 'unknown', country: '', localHour: 12 };
    await Promise.all([
      ...Array.from({ length: itemShardCount }, async (_, s) => {
        while (!(await o.nc.request(Subjects.itemSearchInSpace(cluster, s, space), probe, { timeout: 2000 }).then(() => true, () => false))) {
          if (Date.now() > deadlineMs) throw late(`item shard ${s}`);
          await pause();
        }
      }),
      ...Array.from({ length: userPartitionCount }, async (_, p) => {
        const userId = firstUserOfPartition(p, userPartitionCount);
        while ((await users.get(userId, context, Deadline.after(2000), { space, modelVersion }).catch(() => undefined))?.space !== space) {
          if (Date.now() > deadlineMs) throw late(`user partition ${p}`);
          await pause();
        }
      }),
    ]);
  };
  /** Lets `h` answer its space's searches until they stop coming, then stops it (ItemShardHandle.retire). */
  const retire = (cell: ItemShardCell, h: ItemShardHandle): void => {
    cell.retiring.add(h);
    void h.retire(RETIRE_IDLE_MS, RETIRE_MAX_MS).finally(() => cell.retiring.delete(h));
  };
  const shardOptions = async (shard: number, shardCount: number, modelDir: string) => ({
    index: is.index,
    maxInFlight: is.maxInFlight,
    towerBatchRows: is.towerBatchRows,
    latencyWindow: is.latencyWindow,
    snapshotAfterChangesMs: is.snapshotAfterChangesMs,
    snapshotsKept: is.snapshotsKept,
    searchBatch: is.searchBatch,
    perShardK: co.perShardK,
    nc: o.nc,
    cluster,
    shard,
    shardCount,
    worldDir: o.worldDir,
    modelDir,
    space: await readEmbeddingSpace(modelDir),
    snapshotDir: path.join(o.runDir, 'snapshots'),
  });
  const localUserPartitions = new Map<number, LocalUserPartition>();
  /** The coordinator while it runs, for a model switch and the events of the drift join. */
  let coordinator: CoordinatorHandle | undefined;
  /**
   * The popular actor while it runs: it reads every event of the stream, and hands each batch to the
   * coordinator's prediction-drift monitor (no second consumer of the stream for it).
   */
  let popular: PopularHandle | undefined;
  /** The model served now: actors started from here on load it. */
  let current = { dir: o.modelDir, manifest: o.model };
  return {
    switchModel: async (dir, manifest, signal) => {
      const previous = current;
      const ranker = localRanker;
      throwIfAborted(signal);
      if (ranker !== undefined) await ranker.reload(dir);
      try {
        // A cancel that came during the reload: put the ranker back instead of serving the version.
        throwIfAborted(signal);
        await coordinator?.setModel(manifest);
      } catch (err) {
        if (ranker !== undefined) await ranker.reload(previous.dir).catch(() => {});
        throw err;
      }
      current = { dir, manifest };
    },
    switchTowers: async (dir, manifest, space, signal) => {
      const cells = [...itemShardCells.entries()];
      const previous = current;
      const ranker = localRanker;
      let rankerReloaded = false;
      const prepared: { readonly cell: ItemShardCell; readonly next: ItemShardHandle }[] = [];
      for (const [, cell] of cells) cell.handle.freezeAdmin(`item admin paused: this node is switching to model ${manifest.version} (new towers); retry shortly`);
      const t0 = Date.now();
      try {
        // One shard at a time, to bound the CPU taken from serving; the copies are kept until the
        // flip, so the node holds its item index twice meanwhile (docs/operations.md).
        for (const [shard, cell] of cells) {
          throwIfAborted(signal);
          const seed = await cell.handle.exportItems();
          const next = await startItemShard({ ...(await shardOptions(shard, cell.shardCount, dir)), subscribe: 'space', seed });
          prepared.push({ cell, next });
          cell.preparing = next;
        }
        // The barrier: flip only when every shard and partition answers in the new space.
        await awaitClusterInSpace(space, manifest.version, t0 + TOWER_SWITCH_BARRIER_MS, signal);
        throwIfAborted(signal);
        if (ranker !== undefined) {
          await ranker.reload(dir);
          rankerReloaded = true;
        }
        await coordinator?.setModel(manifest, space);
      } catch (err) {
        for (const p of prepared) {
          p.cell.preparing = undefined;
          // Retired, not stopped: a node that flipped already (its barrier passed on this copy) may
          // search it until the key goes back and it switches back.
          retire(p.cell, p.next);
        }
        if (rankerReloaded && ranker !== undefined) await ranker.reload(previous.dir).catch(() => {});
        for (const [, cell] of cells) cell.handle.freezeAdmin(undefined);
        throw err;
      }
      // Flipped: new requests here are in the new space (their shards are found above); the old
      // instances finish what they took and go. Actors started from now on load the new model.
      current = { dir, manifest };
      for (const p of prepared) {
        const was = p.cell.handle;
        p.cell.handle = p.next;
        p.cell.preparing = undefined;
        p.next.subscribe();
        // Coordinators of nodes not yet switched still search the old space: the old instance answers
        // them until they stop coming, then goes (in the background: this node has switched).
        retire(p.cell, was);
        // The versions before the one just replaced are superseded now (itemShard.snapshotsKept).
        void p.next.pruneSnapshots(was.info.modelVersion);
      }
      o.log({ event: 'towers_switched', node: o.node, to: manifest.version, space, itemShards: prepared.length, ms: Date.now() - t0 });
    },
    itemShard: async (shard, map): Promise<RunningActor> => {
      itemShardCount = map.itemShards;
      const cell: ItemShardCell = { handle: await startItemShard(await shardOptions(shard, map.itemShards, current.dir)), shardCount: map.itemShards, retiring: new Set() };
      itemShardCells.set(shard, cell);
      // Garbage only (unfinished writes of dead processes): which older versions to keep is decided at a switch.
      void cell.handle.pruneSnapshots();
      return {
        stats: () => cell.handle.stats(),
        stop: async () => {
          // Out of the registry first, so no new local call reaches a stopping instance.
          if (itemShardCells.get(shard) === cell) itemShardCells.delete(shard);
          await Promise.all([cell.handle.stop(), ...[...cell.retiring].map((r) => r.stop())]);
        },
      };
    },
    userPartition: async (partition, map): Promise<RunningActor> => {
      userPartitionCount = map.userPartitions;
      return registered(localUserPartitions, partition, await startUserPartition({
        nc: o.nc,
        cluster,
        partition,
        partitionCount: map.userPartitions,
        worldDir: o.worldDir,
        modelDir: current.dir,
        space: await readEmbeddingSpace(current.dir),
        embeddingCacheSize: us.embeddingCacheSize,
        thread: us.thread,
        maxInFlight: us.maxInFlight,
        eventFeed: us.eventFeed,
        snapshotIntervalMs: us.snapshotIntervalMs,
        streamMaxAgeMs: o.config.eventStream.maxAgeMs,
        snapshotDir: path.join(o.runDir, 'snapshots'),
      }));
    },
    popular: async (): Promise<RunningActor> => {
      const h = await startPopular({
        nc: o.nc,
        cluster,
        worldDir: o.worldDir,
        lists: po.lists,
        refreshIntervalMs: po.refreshIntervalMs,
        timeBase: po.timeBase,
        eventFeed: po.eventFeed,
        streamMaxAgeMs: o.config.eventStream.maxAgeMs,
        snapshotDir: path.join(o.runDir, 'snapshots'),
        // Read per batch: the coordinator may start after this actor, or restart under it.
        onEvents: (events) => coordinator?.noteEvents(events),
      });
      popular = h;
      return {
        stats: () => h.stats(),
        stop: () => {
          if (popular === h) popular = undefined;
          return h.stop();
        },
      };
    },
    ranker: async (): Promise<RunningServerActor> => {
      const r = o.config.ranker;
      const h = await startRanker({
        modelDir: current.dir,
        host,
        port: r.port,
        workers: r.workers,
        intraOpNumThreads: r.intraOpNumThreads,
        executionProvider: r.executionProvider,
        batching: r.batching,
        serverCredentials,
      });
      o.log({ event: 'ranker_execution_provider', node: o.node, executionProvider: h.executionProvider });
      localRanker = h;
      return {
        address: h.address,
        stats: () => h.stats(),
        stop: () => {
          if (localRanker === h) localRanker = undefined;
          return h.stop();
        },
      };
    },
    coordinator: async (map, rankerAddresses, currentMap): Promise<RunningServerActor> => {
      itemShardCount = map.itemShards;
      userPartitionCount = map.userPartitions;
      const { port, localRanker: localMode, localShards, timeBase, ...config } = co;
      const world = await readWorldManifest(o.worldDir);
      const servingTimeOffset = servingTimeOffsetMs(timeBase, worldEndMs(world), Date.now());
      if (servingTimeOffset > 0) o.log({ event: 'serving_time', node: o.node, timeBase, offsetDays: Math.round(servingTimeOffset / 86_400_000), note: 'replayed world: its history ends now' });
      const c = await startCoordinator({
        servingTimeOffsetMs: servingTimeOffset,
        eventStreamMaxAgeMs: o.config.eventStream.maxAgeMs,
        nc: o.nc,
        cluster,
        itemShards: map.itemShards,
        userPartitions: map.userPartitions,
        rankerAddresses,
        ...(localMode === 'prefer' ? { localRanker: () => localRanker?.local } : {}),
        ...(localShards === 'prefer'
          ? { localItemShard: localShardFor, localUserPartition: (p: number) => localUserPartitions.get(p) }
          : {}),
        manifest: current.manifest,
        embeddingSpace: await readEmbeddingSpace(current.dir),
        host,
        port,
        config,
        serverCredentials,
        rankerCredentials,
        driftEventsSource: () => popular !== undefined && po.eventFeed,
        ...(currentMap !== undefined
          ? {
              routing: () => {
                const m = currentMap();
                return m === undefined ? undefined : routingTableOf(m);
              },
            }
          : {}),
      });
      coordinator = c;
      return {
        address: c.address,
        stats: () => c.stats(),
        stop: () => {
          if (coordinator === c) coordinator = undefined;
          return c.stop();
        },
      };
    },
  };
}
