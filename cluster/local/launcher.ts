/**
 * A whole upnext cluster on one machine, as real processes: one nats-server (JetStream) and N node
 * processes (`cluster/node/main.ts`), wired through the shard map in NATS KV. Used by `make run`
 * (cluster/local/main.ts), the end-to-end tests and the load tests (`loadtest/` plugs it in as a
 * Target: address, processes, killNode, restartNode).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { isStreamNotFound } from '../../actors/event-stream/stream.js';
import { eventStreamName } from '../../core/subjects.js';
import { renderNatsTlsBlock, startNatsServer } from '../nats/server.js';
import { replaceFile } from '../../core/replace-file.js';
import type { NatsServerHandle } from '../nats/server.js';
import { applyOverrides, itemReplicasCount, resolveConfig } from '../config.js';
import { natsTlsOptions, tlsEnabled } from '../tls.js';
import { natsAuthOptions, writeNatsCredentials } from '../nats/auth.js';
import type { NatsCredentialFiles } from '../nats/auth.js';
import type { ItemReplicasSetting, UpnextConfig, UpnextConfigInput } from '../config.js';
import { createShardMap } from '../../shardmap/assign.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import { moveShard } from '../../shardmap/move.js';
import type { MovableKind, MoveResult } from '../../shardmap/move.js';
import { addNode, validateNodeName } from '../../shardmap/add-node.js';
import type { AddNodeResult } from '../../shardmap/add-node.js';
import { StatusCode, UpnextError } from '../../core/status.js';

/** Options of {@link startLocalCluster}. */
export interface LocalClusterOptions {
  /** Working directory: nats data, node logs, item-shard snapshots, the config file. Created if missing. */
  readonly runDir: string;
  /** World directory (offline/world format). */
  readonly worldDir: string;
  /** Model directory `models/<version>/`. */
  readonly modelDir: string;
  /** Config overrides (cluster shape, actor knobs); see cluster/config.ts. Default: the defaults. */
  readonly config?: UpnextConfigInput;
  /** Convenience overrides of `config`: */
  /** Node processes. Default config.cluster.nodes (3). */
  readonly nodes?: number;
  /** S. Default config.cluster.itemShards (2). */
  readonly itemShards?: number;
  /** P. Default config.cluster.userPartitions (16). */
  readonly userPartitions?: number;
  /** R (user partitions). Default config.cluster.replicas (1). */
  readonly replicas?: number;
  /** R_items (item shards): a count or "all" (every node). Default config.cluster.itemReplicas ("all"). */
  readonly itemReplicas?: ItemReplicasSetting;
  /** Port of the first coordinator's public gRPC server; 0 = free port. Default config.coordinator.port (50051). */
  readonly grpcPort?: number;
  /** How long to wait for every node's ready line, ms. Default 600000 (a first start builds indexes). */
  readonly readyTimeoutMs?: number;
  /** Called with every line a node writes on stderr (its structured log), e.g. for progress. Default: none. */
  readonly onNodeLog?: (node: string, line: string) => void;
  /** Extra Node.js flags for node processes (e.g. ['--max-old-space-size=8192']). Default none. */
  readonly nodeArgs?: readonly string[];
}

/** One node process of the cluster. */
export interface LocalNodeInfo {
  readonly name: string;
  readonly pid: number;
  /** host:port of its /metrics, from its ready line. */
  readonly metricsAddress: string;
  /** The actors it reported in its ready line. */
  readonly actors: readonly string[];
  /** Time from spawn to its ready line, ms. */
  readonly readyMs: number;
}

/** A running local cluster. */
export interface LocalClusterHandle {
  /** host:port of the (first) coordinator's public gRPC server. */
  readonly grpcAddress: string;
  /** host:port of every coordinator's public gRPC server, in `cluster.coordinators` order (the first is {@link grpcAddress}). */
  readonly grpcAddresses: readonly string[];
  readonly natsUrl: string;
  readonly natsPid: number;
  /**
   * With `nats.auth` on: the per-role NKey seed files (admin, node, reader) and the server config
   * under `<runDir>/nats-auth/`; a client of this cluster's NATS must connect with one of them
   * (cluster/nats/auth.ts natsAuthOptions). Undefined when auth is off.
   */
  readonly natsCredentials?: NatsCredentialFiles;
  readonly cluster: string;
  readonly config: UpnextConfig;
  /** The nodes as they are now (pids change on restart). */
  readonly nodes: readonly LocalNodeInfo[];
  /** The shard map as written at start (addresses are registered by the nodes afterwards). */
  readonly initialMap: ShardMapSnapshot;
  /** SIGKILL a node (a crash: no drain). Resolves when the process is gone. */
  killNode(name: string): Promise<void>;
  /**
   * Starts a killed or stopped node again (stopping it first, with a drain, when it runs) and waits
   * for its ready line. `modelDir` restarts it on another model version (a rolling restart onto new
   * towers, docs/operations.md); default: the cluster's model.
   */
  restartNode(name: string, restartOpts?: { readonly modelDir?: string }): Promise<LocalNodeInfo>;
  /**
   * Moves `kind index` live (shardmap/move.ts) from `from` (default: its first owner) to `to`
   * (default: the first active node, by name, that does not host it). Resolves with what it did.
   */
  moveShard(kind: MovableKind, index: number, from?: string, to?: string): Promise<{ readonly from: string; readonly to: string; readonly result: MoveResult }>;
  /**
   * Spawns one more node process, named `name` (not yet in the map), and waits for its ready line:
   * it runs no actor until the map assigns it some (see {@link LocalClusterHandle.addNode}).
   */
  startExtraNode(name: string): Promise<LocalNodeInfo>;
  /**
   * Brings node `name` into the cluster: spawns its process unless it runs already
   * ({@link LocalClusterHandle.startExtraNode}), then gives it its share live
   * (shardmap/add-node.ts `addNode`). Idempotent.
   */
  addNode(name: string, opts?: { readonly timeoutMs?: number }): Promise<{ readonly node: LocalNodeInfo; readonly result: AddNodeResult }>;
  /** Graceful stop of every node (SIGTERM, drain), then nats-server. Idempotent. */
  stop(): Promise<void>;
}

interface NodeProc {
  name: string;
  child: ChildProcess;
  info: LocalNodeInfo;
  exited: Promise<void>;
}

const NODE_MAIN = fileURLToPath(new URL('../node/main.js', import.meta.url));

/**
 * Deletes the cluster's event stream when it exists (JetStream keeps it in run/<dir>/nats across
 * runs); the first node to need it creates it again. Deleted, not purged: a new stream has a new
 * identity and starts at sequence 1, so the user partitions' live snapshots of the last run (their
 * profiles with that run's events) are not restored with their sequence; they fall back to the
 * bootstrap snapshot (the world only), as a new cluster should. A purge keeps the identity and the
 * sequence counter, so those snapshots would carry the last run's events into this one.
 */
async function resetEventStream(nc: NatsConnection, cluster: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.delete(eventStreamName(cluster));
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
  }
}

/** Node names of a cluster of `n` nodes: n1, n2, … */
export function nodeNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `n${i + 1}`);
}

function listOrAll(value: string, all: readonly string[]): string[] {
  return value === 'all' ? [...all] : value.split(',').filter(Boolean);
}

/** Starts nats-server, writes the shard map, spawns the nodes and waits until all are ready. */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalClusterHandle> {
  const shape = {
    ...opts.config?.cluster,
    ...(opts.nodes !== undefined ? { nodes: opts.nodes } : {}),
    ...(opts.itemShards !== undefined ? { itemShards: opts.itemShards } : {}),
    ...(opts.userPartitions !== undefined ? { userPartitions: opts.userPartitions } : {}),
    ...(opts.replicas !== undefined ? { replicas: opts.replicas } : {}),
    ...(opts.itemReplicas !== undefined ? { itemReplicas: opts.itemReplicas } : {}),
  };
  const input: UpnextConfigInput = {
    ...opts.config,
    cluster: shape,
    ...(opts.grpcPort !== undefined ? { coordinator: { ...opts.config?.coordinator, port: opts.grpcPort } } : {}),
  };
  const config = resolveConfig(input);
  const names = nodeNames(config.cluster.nodes);
  const map = createShardMap({
    cluster: config.cluster.name,
    itemShards: config.cluster.itemShards,
    userPartitions: config.cluster.userPartitions,
    replicas: config.cluster.replicas,
    itemReplicas: itemReplicasCount(config.cluster),
    nodes: names,
    rankers: listOrAll(config.cluster.rankers, names),
    coordinators: listOrAll(config.cluster.coordinators, names),
  });
  const runDir = path.resolve(opts.runDir);
  await mkdir(path.join(runDir, 'logs'), { recursive: true });
  const configFile = path.join(runDir, 'config.json');
  await writeFile(configFile, `${JSON.stringify(input, null, 2)}\n`);

  // With `tls` set, the local nats-server serves TLS with the same certificate and CA as the nodes
  // (it verifies their client certificates), so the whole local cluster runs encrypted.
  // With `nats.auth` on, fresh per-role NKeys (a restart rotates them): the server gets the
  // public keys and permissions, the launcher signs in as admin (it writes the map and deletes the
  // event stream), the nodes as node.
  // Each node the launcher starts gets its own identity (it may write only its own address and load
  // records); the shared node key stays for nodes started by hand (add-node).
  // The server's TLS goes into its config file too, so a reload (a key rotation) keeps it.
  const credentials = config.nats.auth ? await writeNatsCredentials(path.join(runDir, 'nats-auth'), config.cluster.name, names, tlsEnabled(config.tls) ? config.tls : undefined) : undefined;
  // Without credentials, TLS still goes into a config file: `nats-server --signal reload` then picks
  // up rotated certificate files (a server started with TLS flags only cannot reload).
  let serverConfig = credentials?.serverConfig;
  if (serverConfig === undefined && tlsEnabled(config.tls)) {
    serverConfig = path.join(runDir, 'nats-server.conf');
    await replaceFile(serverConfig, `# upnext: the local nats-server's TLS (cluster/local/launcher.ts)\n${renderNatsTlsBlock(config.tls)}`);
  }
  // The server's log (permission and authorization violations show there).
  const natsLog = createWriteStream(path.join(runDir, 'logs', 'nats-server.log'), { flags: 'a' });
  // A full disk or a removed run directory must not take the launcher down for a log line.
  natsLog.on('error', (err) => console.error(`nats-server.log: ${err.message}`));
  let nats: NatsServerHandle;
  try {
    nats = await startNatsServer({
      dataDir: path.join(runDir, 'nats'),
      ...(tlsEnabled(config.tls) ? { tls: config.tls } : {}),
      ...(serverConfig !== undefined ? { configFile: serverConfig } : {}),
      // For `rotate-nats-key`, which reloads the server's config with a SIGHUP.
      pidFile: path.join(runDir, 'nats-server.pid'),
      // The server's last lines can arrive after its 'exit' (stdio drains later) and so after
      // stopNats() or a failed start ended the file: drop those rather than write after end.
      onLog: (line) => {
        if (!natsLog.writableEnded) natsLog.write(`${line}\n`);
      },
    });
  } catch (err) {
    natsLog.end();
    throw err;
  }
  const stopNats = async () => {
    await nats.stop();
    await new Promise<void>((resolve) => natsLog.end(resolve));
  };
  const procs = new Map<string, NodeProc>();
  let stopped: Promise<void> | undefined;
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: nats.url, name: 'local-launcher', ...natsTlsOptions(config.tls), ...natsAuthOptions(credentials?.creds.admin ?? config.nats.credsFile) });
  } catch (err) {
    await stopNats();
    throw err;
  }
  let initialMap: ShardMapSnapshot;
  try {
    const store = await ShardMapStore.open(nc, config.cluster.name);
    // A local start is a new cluster: replace whatever map a previous run left in run/nats, and
    // start a new event stream (a stream left by an earlier run would be replayed into this one's
    // state and lists; see resetEventStream for why delete, not purge).
    initialMap = await store.put(map);
    await resetEventStream(nc, config.cluster.name);
  } catch (err) {
    await nc.close().catch(() => {});
    await stopNats();
    throw err;
  }

  const readyTimeoutMs = opts.readyTimeoutMs ?? 600_000;
  const firstCoordinator = map.coordinators[0];

  const spawnNode = (name: string, modelDir: string = opts.modelDir): Promise<NodeProc> => {
    const args = [
      ...(opts.nodeArgs ?? []),
      NODE_MAIN,
      '--name', name,
      '--nats', nats.url,
      '--cluster', config.cluster.name,
      '--world', path.resolve(opts.worldDir),
      '--models', path.resolve(modelDir),
      '--run-dir', runDir,
      '--config', configFile,
      // Only the first coordinator gets the fixed public port; others on this host take a free one.
      ...(name === firstCoordinator ? [] : ['--set', 'coordinator.port=0']),
      // The path of the node role's seed file, never the seed itself (command lines are world-readable).
      ...(credentials !== undefined ? ['--set', `nats.credsFile=${credentials.nodes[name] ?? credentials.creds.node}`] : []),
    ];
    const t0 = Date.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const logFile = createWriteStream(path.join(runDir, 'logs', `${name}.log`), { flags: 'a' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    createInterface({ input: child.stderr! }).on('line', (line) => {
      logFile.write(`${line}\n`);
      opts.onNodeLog?.(name, line);
    });
    void exited.then(() => logFile.end());
    return new Promise<NodeProc>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new UpnextError(StatusCode.DEADLINE_EXCEEDED, `node ${name} not ready after ${readyTimeoutMs} ms (see ${runDir}/logs/${name}.log)`));
      }, readyTimeoutMs);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: { event?: string; metricsAddress?: string; actors?: string[] };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (msg.event !== 'ready') return;
        clearTimeout(timer);
        const proc: NodeProc = {
          name,
          child,
          exited,
          info: { name, pid: child.pid ?? -1, metricsAddress: msg.metricsAddress ?? '', actors: msg.actors ?? [], readyMs: Date.now() - t0 },
        };
        procs.set(name, proc);
        resolve(proc);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new UpnextError(StatusCode.UNAVAILABLE, `node ${name} exited with ${child.exitCode ?? child.signalCode} before it was ready (see ${runDir}/logs/${name}.log)`));
      });
    });
  };

  const stopNodeProc = async (p: NodeProc, signal: NodeJS.Signals) => {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill(signal);
      // a node that does not drain in time is killed (its own drain timeout is shorter)
      const force = setTimeout(() => p.child.kill('SIGKILL'), config.node.drainTimeoutMs + 5000);
      await p.exited;
      clearTimeout(force);
    }
  };

  const stop = () => {
    stopped ??= (async () => {
      await Promise.all([...procs.values()].map((p) => stopNodeProc(p, 'SIGTERM')));
      await nc.close().catch(() => {});
      await stopNats();
    })();
    return stopped;
  };

  let grpcAddresses: string[] = [];
  try {
    const started = await Promise.allSettled(names.map((n) => spawnNode(n)));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    // The recommend address is registered in the map by its node before it reports ready.
    const store = await ShardMapStore.open(nc, config.cluster.name);
    const current = await store.read();
    grpcAddresses = map.coordinators.map((n) => current?.nodes[n]?.recommendAddress ?? '');
    const missing = map.coordinators.filter((_, i) => !grpcAddresses[i]);
    if (grpcAddresses.length === 0) throw new UpnextError(StatusCode.INTERNAL, 'no coordinator registered a Recommend address');
    if (missing.length > 0) throw new UpnextError(StatusCode.INTERNAL, `coordinator(s) ${missing.join(', ')} registered no Recommend address`);
  } catch (err) {
    await stop();
    throw err;
  }

  const startExtraNode = async (name: string): Promise<LocalNodeInfo> => {
    validateNodeName(name);
    if (names.includes(name)) throw new TypeError(`node ${name} is already part of this cluster`);
    names.push(name);
    return (await spawnNode(name)).info;
  };

  return {
    grpcAddress: grpcAddresses[0]!,
    grpcAddresses,
    natsUrl: nats.url,
    natsPid: nats.pid,
    ...(credentials !== undefined ? { natsCredentials: credentials } : {}),
    cluster: config.cluster.name,
    config,
    initialMap,
    get nodes() {
      return names.flatMap((n) => {
        const p = procs.get(n);
        return p ? [p.info] : [];
      });
    },
    moveShard: async (kind, index, from, to) => {
      const store = await ShardMapStore.open(nc, config.cluster.name);
      const map = await store.read();
      if (map === null) throw new UpnextError(StatusCode.FAILED_PRECONDITION, 'the cluster has no shard map');
      const owners = (kind === 'item' ? map.itemShardOwners : map.partitionOwners)[index] ?? [];
      const src = from ?? owners[0];
      const dst = to ?? Object.keys(map.nodes).sort().find((n) => map.nodes[n]?.state === 'active' && !owners.includes(n));
      if (src === undefined || dst === undefined) throw new TypeError(`no node to move ${kind} ${index} ${src === undefined ? 'from' : 'to'} (owners: ${owners.join(', ') || 'none'})`);
      return { from: src, to: dst, result: await moveShard({ nc, store, cluster: config.cluster.name, kind, index, from: src, to: dst }) };
    },
    killNode: async (name) => {
      const p = procs.get(name);
      if (!p) throw new TypeError(`no running node named ${name}`);
      procs.delete(name);
      await stopNodeProc(p, 'SIGKILL');
    },
    startExtraNode,
    addNode: async (name, addOpts) => {
      const running = procs.get(name);
      const info = running ? running.info : names.includes(name) ? (await spawnNode(name)).info : await startExtraNode(name);
      const store = await ShardMapStore.open(nc, config.cluster.name);
      const result = await addNode({ nc, store, cluster: config.cluster.name, node: name, ...(addOpts?.timeoutMs !== undefined ? { timeoutMs: addOpts.timeoutMs } : {}) });
      return { node: info, result };
    },
    restartNode: async (name, restartOpts) => {
      if (!names.includes(name)) throw new TypeError(`no node named ${name} in this cluster`);
      const old = procs.get(name);
      if (old) {
        procs.delete(name);
        await stopNodeProc(old, 'SIGTERM');
      }
      return (await spawnNode(name, restartOpts?.modelDir)).info;
    },
    stop,
  };
}
