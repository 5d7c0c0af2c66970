/**
 * One upnext node: reads and watches the shard map in NATS KV, runs exactly the actors the map
 * assigns it (starting new ones, stopping ones it no longer owns), advertises its ranker and
 * Recommend addresses in its own KV key (`addr.<node>`; the map key is admin-only), serves /metrics,
 * and drains on stop (withdrawing its addresses).
 *
 * Reconciliation is serialised (one pass at a time, always against the newest map seen), so a burst
 * of map changes never starts an actor twice. When given {@link NodeOptions.model}, the node also
 * follows the cluster's "model" key: a new version passes the live-switch rule (cluster/node/model.ts)
 * and is applied (ranker reload, then the coordinator's model) in the same serial chain, so a switch
 * never overlaps an actor start; a refused one is logged and reported in the node status. The map itself is an immutable snapshot: a request in
 * flight keeps the snapshot it started with.
 */
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { httpsServerOptions, watchHttpsServer } from '../tls.js';
import type { AddressInfo } from 'node:net';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import type { NodeAddresses } from '../../shardmap/snapshot.js';
import { addressesOf, assignmentOf, rankerAddresses, sameAddresses } from '../../shardmap/snapshot.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import type { ModelKeyEntry, ShardMapWatch } from '../../shardmap/kv-store.js';
import type { NodeLoad } from '../../shardmap/format.js';
import { StatusCode, UpnextError, toStatus } from '../../core/status.js';
import type { UpnextConfig } from '../config.js';
import type { ActorKey, ActorLauncher, RunningActor, RunningServerActor } from './actor-launcher.js';
import { describeActorKey } from './actor-launcher.js';
import { Subjects } from '../../core/subjects.js';
import type { NodeModelStatus, NodeStatus } from '../../shardmap/move.js';
import { liveSwitchKind, modelRefusal as refusalOf, readModelDir } from './model.js';
import type { ModelDirInfo, ModelRefusal } from './model.js';
import { renderMetrics } from './metrics.js';
import { StallWatch } from './stall-watch.js';
import type { ActorStatsEntry, ProcessSample } from './metrics.js';

/** Options of {@link startNode}. */
export interface NodeOptions {
  /** Node name as it appears in the shard map. */
  readonly name: string;
  /** Already-connected NATS connection; the node does not close it (the caller owns it). */
  readonly nc: NatsConnection;
  readonly config: UpnextConfig;
  readonly launcher: ActorLauncher;
  /** Model version served, for /metrics. Default "". */
  readonly modelVersion?: string;
  /** Structured log sink (one object per event). Default: JSON lines on stderr. */
  readonly log?: (event: Record<string, unknown>) => void;
  /** How long to wait for the first shard map to appear in KV, ms. Default 30000. */
  readonly mapWaitMs?: number;
  /** Follow the cluster's "model" key (live switch). Absent: the node serves `modelVersion` for good. */
  readonly model?: NodeModelOptions;
}

/** What a node needs to follow the cluster's "model" key. */
export interface NodeModelOptions {
  /** Folder holding the `<version>/` model directories (the parent of the node's --models). */
  readonly modelsRoot: string;
  /** The model the node starts with (main.ts has already resolved the key at start). */
  readonly served: ModelDirInfo;
  /** Revision of the "model" key already acted on at start; 0 (default) when none. */
  readonly keyRevision?: number;
  /** A start-up refusal of the key's version, reported in the status until the key changes. */
  readonly refused?: ModelRefusal;
  /**
   * Swaps the running actors to `next` and makes actors started later use it: `kind` 'ranker' reloads
   * the ranker then sets the coordinator's model; 'towers' first rebuilds the node's item shards on
   * the new towers beside the serving ones (cluster/node/model.ts `liveSwitchKind`). Rejecting refuses
   * the switch: the node keeps serving what it served. `signal` aborts, its reason an ABORTED
   * UpnextError saying why, when the node stops or when the key moves to another version before the
   * switch is done (a cancel): a tower switch then gives up at its next step (after the shard being
   * built, or at once at the barrier), as if it had failed.
   */
  readonly apply: (next: ModelDirInfo, kind: 'ranker' | 'towers', signal: AbortSignal) => Promise<void>;
}

/** A running node. */
export interface NodeHandle {
  readonly name: string;
  /** host:port of /metrics. */
  readonly metricsAddress: string;
  /** Resolves when every actor of the first map the node saw is serving; rejects if one fails to start. */
  readonly ready: Promise<ReadySummary>;
  /** The map version the node last reconciled to. */
  mapVersion(): number;
  /** The model version served now (follows the "model" key when {@link NodeOptions.model} is set). */
  modelVersion(): string;
  /** Keys of the actors running now, e.g. ["coordinator", "item:0", "ranker", "user:3"]. */
  actors(): ActorKey[];
  /** Addresses of the servers this node runs. */
  addresses(): { ranker?: string; recommend?: string };
  /** The Prometheus text of /metrics. */
  metrics(): string;
  /** Graceful: stop accepting (coordinator first), finish in flight, stop actors, deregister. Idempotent. */
  stop(): Promise<void>;
}

/** What the ready line reports. */
export interface ReadySummary {
  readonly node: string;
  readonly mapVersion: number;
  readonly actors: ActorKey[];
  readonly recommendAddress?: string;
  readonly rankerAddress?: string;
  readonly metricsAddress: string;
  readonly startMs: number;
}

const defaultLog = (event: Record<string, unknown>) => process.stderr.write(`${JSON.stringify(event)}\n`);

/** Which actors `node` should run under `map`, in start order (ranker before the coordinator that calls it). */
export function desiredActors(map: ShardMapSnapshot, node: string, popularOn: 'coordinators' | 'all'): ActorKey[] {
  if (!map.nodes[node]) return [];
  const a = assignmentOf(map, node);
  const keys: ActorKey[] = [];
  if (a.ranker) keys.push('ranker');
  for (const s of a.itemShards) keys.push(`item:${s}`);
  for (const p of a.userPartitions) keys.push(`user:${p}`);
  if (popularOn === 'all' || a.coordinator) keys.push('popular');
  if (a.coordinator) keys.push('coordinator');
  return keys;
}

function processSampler(stalls: () => StallWatch | undefined): () => ProcessSample {
  return () => {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const watch = stalls();
    const snapshot = watch?.snapshot();
    return {
      cpuSecondsTotal: (cpu.user + cpu.system) / 1e6,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      eventLoopDelayP99Ms: watch?.takeLoopDelayP99Ms() ?? 0,
      uptimeSeconds: process.uptime(),
      ...(snapshot !== undefined ? { stalls: snapshot } : {}),
    };
  };
}

function numberAt(v: unknown, key: string): number {
  if (typeof v !== 'object' || v === null) return 0;
  const x = (v as Record<string, unknown>)[key];
  return typeof x === 'number' ? x : 0;
}

/** Starts a node. Resolves once its /metrics server listens; `handle.ready` tells when actors are up. */
export async function startNode(opts: NodeOptions): Promise<NodeHandle> {
  const { name, nc, config, launcher } = opts;
  const log = opts.log ?? defaultLog;
  const startMs = Date.now();
  const store = await ShardMapStore.open(nc, config.cluster.name);
  const running = new Map<ActorKey, RunningActor>();
  let map: ShardMapSnapshot | undefined;
  let appliedVersion = 0;
  let stopping = false;
  // Started once nothing below can fail the start (a failed start returns no stop() to end it).
  let stallWatch: StallWatch | undefined;
  const sample = processSampler(() => stallWatch);
  let served = opts.model?.served;
  let modelKeyRevision = opts.model?.keyRevision ?? 0;
  let modelRefusal = opts.model?.refused;
  let pendingModelKey: ModelKeyEntry | undefined;
  /**
   * The switch being applied, if any: a key value naming another version (an operator's
   * `shardmap model --cancel`, or a newer switch) makes it give up at its next step instead of
   * finishing a rebuild that the key no longer asks for (minutes at 10M items).
   */
  let applying: { readonly version: string; readonly abort: AbortController } | undefined;
  const servedVersion = () => served?.manifest.version ?? opts.modelVersion ?? '';

  const actorStats = (): ActorStatsEntry[] =>
    [...running].map(([key, actor]) => {
      let stats: unknown;
      try {
        stats = actor.stats();
      } catch (err) {
        stats = { statsError: toStatus(err).message };
      }
      return { ...describeActorKey(key), stats };
    });
  const metricsText = () =>
    renderMetrics({
      node: name,
      cluster: config.cluster.name,
      mapVersion: appliedVersion,
      modelVersion: servedVersion(),
      process: sample(),
      actors: actorStats(),
    });

  // Status for moves and tools (shardmap/move.ts): the map version reconciled to and the actors running.
  const statusSub = nc.subscribe(Subjects.nodeStatus(config.cluster.name, name), {
    callback: (err, msg) => {
      if (err !== null) return;
      const model: NodeModelStatus | undefined =
        served === undefined
          ? undefined
          : {
              version: served.manifest.version,
              space: served.space,
              keyRevision: modelKeyRevision,
              ...(modelRefusal !== undefined && modelRefusal.revision === modelKeyRevision
                ? { refused: { version: modelRefusal.version, code: modelRefusal.code, message: modelRefusal.message } }
                : {}),
            };
      const status: NodeStatus = { node: name, mapVersion: appliedVersion, actors: [...running.keys()].sort(), ...(model ? { model } : {}) };
      msg.respond(JSON.stringify(status));
    },
  });

  // With `tls` set: HTTPS, and /metrics only for clients with a certificate signed by tls.caFile
  // (the same mutual TLS as the gRPC ports); /healthz stays open to probes without one.
  const httpsOptions = httpsServerOptions(config.tls);
  const handler: http.RequestListener = (req, res) => {
    if (req.url === '/metrics') {
      if (httpsOptions !== undefined && !(req.socket as TLSSocket).authorized) {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('a client certificate signed by the cluster CA (tls.caFile) is required for /metrics\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(metricsText());
    } else if (req.url === '/healthz') {
      res.writeHead(readyDone && !stopping ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(readyDone && !stopping ? 'ok\n' : 'not ready\n');
    } else {
      res.writeHead(404);
      res.end();
    }
  };
  const server = httpsOptions !== undefined ? https.createServer(httpsOptions, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.node.metricsPort, config.node.host, () => resolve());
  });
  // A rotated certificate is served from the next handshake on (cluster/tls-watch.ts).
  const unwatchTls = server instanceof https.Server ? watchHttpsServer(server, config.tls) : () => {};
  const metricsAddress = `${config.node.host}:${(server.address() as AddressInfo).port}`;

  const serverAddress = (key: 'ranker' | 'coordinator') => (running.get(key) as RunningServerActor | undefined)?.address;

  /**
   * Advertise (or withdraw) this node's addresses in its own KV key when they differ from what
   * readers see: its record, or without one the map's entry for it (a map written by an older build
   * may still carry addresses). Never writes the map key: that is admin-only (cluster/nats/auth.ts).
   */
  const register = async () => {
    const ranker = serverAddress('ranker');
    const recommend = serverAddress('coordinator');
    const want: NodeAddresses = { ...(ranker ? { rankerAddress: ranker } : {}), ...(recommend ? { recommendAddress: recommend } : {}) };
    const advertised = (await store.readAddresses(name)) ?? addressesOf(map?.nodes[name]);
    if (sameAddresses(advertised, want)) return;
    await store.putAddresses(name, want);
  };

  const startActor = async (key: ActorKey, m: ShardMapSnapshot): Promise<RunningActor> => {
    if (key === 'ranker') return launcher.ranker(m);
    if (key === 'coordinator') return launcher.coordinator(m, () => (map ? rankerAddresses(map) : []), () => map);
    if (key === 'popular') return launcher.popular(m);
    const { index } = describeActorKey(key);
    return key.startsWith('item:') ? launcher.itemShard(index!, m) : launcher.userPartition(index!, m);
  };

  /** One pass: bring the running set in line with the newest map. */
  const reconcile = async (): Promise<void> => {
    const target = map;
    if (!target || stopping || target.version === appliedVersion) return;
    const desired = desiredActors(target, name, config.node.popularOn);
    const toStop = [...running.keys()].filter((k) => !desired.includes(k));
    // The coordinator stops first so it stops accepting before what it calls goes away.
    toStop.sort((a, b) => (a === 'coordinator' ? -1 : b === 'coordinator' ? 1 : 0));
    for (const key of toStop) {
      const actor = running.get(key)!;
      running.delete(key);
      log({ event: 'actor_stopping', node: name, actor: key, mapVersion: target.version });
      await actor.stop();
    }
    const start = async (key: ActorKey) => {
      if (running.has(key) || stopping) return;
      const t0 = Date.now();
      log({ event: 'actor_starting', node: name, actor: key, mapVersion: target.version });
      const actor = await startActor(key, target);
      if (stopping) return void (await actor.stop());
      running.set(key, actor);
      log({ event: 'actor_started', node: name, actor: key, ms: Date.now() - t0 });
    };
    // Ranker first and coordinator last (it calls the others); shards and partitions in between,
    // `startConcurrency` at a time: each builds in its own worker thread, so starts overlap.
    const middle = desired.filter((k) => k !== 'ranker' && k !== 'coordinator');
    if (desired.includes('ranker')) await start('ranker');
    let next = 0;
    let failure: unknown;
    const lane = async () => {
      while (next < middle.length && failure === undefined) {
        const key = middle[next++]!;
        try {
          await start(key);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(config.node.startConcurrency, middle.length) }, lane));
    if (failure !== undefined) throw failure;
    if (desired.includes('coordinator')) await start('coordinator');
    if (stopping) return;
    appliedVersion = target.version;
    await register();
  };

  let chain: Promise<void> = Promise.resolve();
  let readyDone = false;
  let resolveReady!: (s: ReadySummary) => void;
  let rejectReady!: (e: unknown) => void;
  const ready = new Promise<ReadySummary>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => {}); // the caller observes it; never an unhandled rejection here
  const schedule = () => {
    chain = chain
      .then(reconcile)
      .then(() => {
        if (!readyDone && appliedVersion > 0) {
          readyDone = true;
          const recommendAddress = serverAddress('coordinator');
          const rankerAddress = serverAddress('ranker');
          resolveReady({
            node: name,
            mapVersion: appliedVersion,
            actors: [...running.keys()].sort(),
            ...(recommendAddress ? { recommendAddress } : {}),
            ...(rankerAddress ? { rankerAddress } : {}),
            metricsAddress,
            startMs: Date.now() - startMs,
          });
        }
      })
      .catch((err: unknown) => {
        const status = toStatus(err);
        log({ event: 'reconcile_failed', node: name, code: status.code, message: status.message });
        if (!readyDone) rejectReady(err);
      });
  };

  /** One pass: act on the newest "model" key value not acted on yet. Never throws (a refusal is a state). */
  const followModelKey = async (): Promise<void> => {
    const entry = pendingModelKey;
    const m = opts.model;
    if (entry === undefined || m === undefined || served === undefined || stopping || entry.revision <= modelKeyRevision) return;
    const { version } = entry.value;
    const from = served.manifest.version;
    if (version !== from) {
      const t0 = Date.now();
      // Aborted by stop() (the switch must not hold the stop) or by a key value naming another version.
      const abort = new AbortController();
      applying = { version, abort };
      try {
        const next = await readModelDir(m.modelsRoot, version);
        const kind = liveSwitchKind(served, next);
        abort.signal.throwIfAborted(); // cancelled while the directory was read
        await m.apply(next, kind, abort.signal);
        served = next;
        modelRefusal = undefined;
        log({ event: 'model_switched', node: name, from, to: version, kind, keyRevision: entry.revision, ms: Date.now() - t0 });
      } catch (err) {
        modelRefusal = refusalOf(err, version, entry.revision);
        // Abandoned only when the abort is what ended it, not a failure that came at the same time.
        const event = abort.signal.aborted && err === abort.signal.reason ? 'model_switch_abandoned' : 'model_switch_refused';
        log({ event, node: name, serving: from, version, keyRevision: entry.revision, code: modelRefusal.code, message: modelRefusal.message });
      } finally {
        applying = undefined;
      }
    } else {
      modelRefusal = undefined;
    }
    modelKeyRevision = entry.revision;
  };
  const scheduleModel = () => {
    chain = chain.then(followModelKey).catch((err: unknown) => log({ event: 'model_switch_failed', node: name, message: toStatus(err).message }));
  };

  // Wait for the first map (the launcher writes it before starting nodes; an operator may be later).
  const mapWaitMs = opts.mapWaitMs ?? 30_000;
  let firstMap: () => void = () => {};
  const gotFirst = new Promise<void>((r) => (firstMap = r));
  const watch: ShardMapWatch = await store.watch(
    (m) => {
      if (map && m.version < map.version) return;
      // Same version: only advertised addresses changed. Keep the new snapshot (the coordinator's
      // ranker list reads `map` on every call) but do not reconcile: assignments are unchanged.
      const assignmentChanged = map === undefined || m.version > map.version;
      map = m;
      if (!assignmentChanged) return;
      firstMap();
      schedule();
    },
    (err) => log({ event: 'shard_map_invalid', node: name, message: toStatus(err).message }),
  );
  const modelWatch: ShardMapWatch | undefined =
    opts.model === undefined
      ? undefined
      : await store.watchModelKey(
          (entry) => {
            if (pendingModelKey === undefined || entry.revision > pendingModelKey.revision) pendingModelKey = entry;
            if (applying !== undefined && entry.value.version !== applying.version && !applying.abort.signal.aborted) {
              applying.abort.abort(new UpnextError(StatusCode.ABORTED, `switch to ${applying.version} abandoned: the model key moved to ${entry.value.version} (revision ${entry.revision})${entry.value.by !== undefined ? ` by ${entry.value.by}` : ''}`));
            }
            scheduleModel();
          },
          (err) => log({ event: 'model_key_invalid', node: name, message: toStatus(err).message }),
        );
  stallWatch = new StallWatch({ node: name, logOverMs: config.node.stallLogMs, log });
  let mapTimer: NodeJS.Timeout | undefined;
  void Promise.race([
    gotFirst,
    new Promise<void>((_, rej) => {
      mapTimer = setTimeout(() => rej(new Error(`no shard map for cluster ${config.cluster.name} after ${mapWaitMs} ms`)), mapWaitMs);
    }),
  ]).then(
    () => clearTimeout(mapTimer),
    (err: unknown) => rejectReady(err),
  );

  // Optional load report for `shardmap show`.
  let lastCpu = process.cpuUsage();
  let lastAt = Date.now();
  const loadTimer =
    config.node.loadReportIntervalMs > 0
      ? setInterval(() => {
          const cpu = process.cpuUsage();
          const now = Date.now();
          const stats = actorStats();
          const load: NodeLoad = {
            atMs: now,
            cpuCores: (cpu.user + cpu.system - lastCpu.user - lastCpu.system) / 1000 / Math.max(1, now - lastAt),
            rssBytes: process.memoryUsage().rss,
            items: stats.filter((s) => s.kind === 'item_shard').reduce((n, s) => n + numberAt(s.stats, 'items'), 0),
            recommends: stats
              .filter((s) => s.kind === 'coordinator')
              .reduce((n, s) => {
                const r = (s.stats as { requests?: Record<string, unknown> } | null)?.requests ?? {};
                return n + ['ok', 'degraded', 'fallback', 'shed'].reduce((a, k) => a + numberAt(r, k), 0);
              }, 0),
          };
          lastCpu = cpu;
          lastAt = now;
          store.putLoad(name, load).catch(() => {});
        }, config.node.loadReportIntervalMs)
      : undefined;
  loadTimer?.unref();

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      stopping = true;
      if (applying !== undefined && !applying.abort.signal.aborted) applying.abort.abort(new UpnextError(StatusCode.ABORTED, 'the node is stopping: model switch abandoned'));
      clearTimeout(mapTimer);
      if (loadTimer) clearInterval(loadTimer);
      await watch.stop();
      await modelWatch?.stop();
      statusSub.unsubscribe();
      await chain; // let a pass in progress finish (it sees `stopping` and starts nothing more)
      const order = [...running.keys()].sort((a, b) => (a === 'coordinator' ? -1 : b === 'coordinator' ? 1 : 0));
      const coordinator = running.get('coordinator');
      if (coordinator && order[0] === 'coordinator') {
        running.delete('coordinator');
        await coordinator.stop();
      }
      await Promise.all(
        [...running].map(async ([key, actor]) => {
          running.delete(key);
          await actor.stop();
        }),
      );
      // Withdraw our addresses so clients stop picking us (best effort: NATS may be gone).
      await register().catch(() => {});
      unwatchTls();
      stallWatch?.stop();
      await new Promise<void>((r) => server.close(() => r()));
      if (!readyDone) rejectReady(new Error('node stopped before it was ready'));
    })();
    return stopped;
  };

  return {
    name,
    metricsAddress,
    ready,
    mapVersion: () => appliedVersion,
    modelVersion: servedVersion,
    actors: () => [...running.keys()].sort(),
    addresses: () => {
      const ranker = serverAddress('ranker');
      const recommend = serverAddress('coordinator');
      return { ...(ranker ? { ranker } : {}), ...(recommend ? { recommend } : {}) };
    },
    metrics: metricsText,
    stop,
  };
}
