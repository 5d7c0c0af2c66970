/**
 * The production {@link ActorLauncher}: starts the real actors from the actor folders with the
 * node's config. One NATS connection per node is shared by every actor it hosts (each actor's
 * subscriptions live on the node's main thread and hand work to its worker threads).
 */
import path from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ModelManifest } from '../../core/model/contract.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
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
   * shards and user partitions keep running. On a failure the ranker is put back on the previous
   * model (best effort) and the error is rethrown: the node keeps what it served.
   */
  switchModel(dir: string, manifest: ModelManifest): Promise<void>;
}

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
  const localItemShards = new Map<number, LocalItemShard>();
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
    switchModel: async (dir, manifest) => {
      const previous = current;
      const ranker = localRanker;
      if (ranker !== undefined) await ranker.reload(dir);
      try {
        await coordinator?.setModel(manifest);
      } catch (err) {
        if (ranker !== undefined) await ranker.reload(previous.dir).catch(() => {});
        throw err;
      }
      current = { dir, manifest };
    },
    itemShard: async (shard, map): Promise<RunningActor> =>
      registered(localItemShards, shard, await startItemShard({
        index: is.index,
        maxInFlight: is.maxInFlight,
        towerBatchRows: is.towerBatchRows,
        latencyWindow: is.latencyWindow,
        snapshotAfterChangesMs: is.snapshotAfterChangesMs,
        searchBatch: is.searchBatch,
        nc: o.nc,
        cluster,
        shard,
        shardCount: map.itemShards,
        worldDir: o.worldDir,
        modelDir: current.dir,
        space: await readEmbeddingSpace(current.dir),
        snapshotDir: path.join(o.runDir, 'snapshots'),
      })),
    userPartition: async (partition, map): Promise<RunningActor> =>
      registered(localUserPartitions, partition, await startUserPartition({
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
      })),
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
    coordinator: async (map, rankerAddresses): Promise<RunningServerActor> => {
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
          ? { localItemShard: (s: number) => localItemShards.get(s), localUserPartition: (p: number) => localUserPartitions.get(p) }
          : {}),
        manifest: current.manifest,
        embeddingSpace: await readEmbeddingSpace(current.dir),
        host,
        port,
        config,
        serverCredentials,
        rankerCredentials,
        driftEventsSource: () => popular !== undefined && po.eventFeed,
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
