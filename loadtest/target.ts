/**
 * What a load test runs against. The generator only needs an address; the measurement needs the
 * processes to sample; the node-loss scenario needs a way to kill and restart a node. The local
 * cluster launcher (cluster/local/) is adapted to this interface by {@link clusterTarget}, and any
 * running deployment by {@link staticTarget}.
 */
import type { TlsSection } from '../cluster/tls.js';

/** One OS process whose CPU and memory the report shows. */
export interface ProcessRef {
  /** Display name, e.g. "node-1" or "nats-server". */
  readonly name: string;
  readonly pid: number;
}

export interface Target {
  /** gRPC address of the public Recommender service, `host:port`. */
  readonly address: string;
  /** TLS files when the service requires mutual TLS (cli.ts --tls-*); default plaintext. */
  readonly tls?: TlsSection;
  /** Processes to sample now (asked again after a restart, since pids change). */
  processes(): readonly ProcessRef[];
  /** Kills one node (the node-loss scenario); absent when the target cannot. */
  killNode?(name: string): Promise<void>;
  /** Restarts a node killed by {@link killNode}. */
  restartNode?(name: string): Promise<void>;
  /** Moves a user partition or item shard live (the shard-move scenario); resolves with a description. */
  moveShard?(kind: 'item' | 'user', index: number, to?: string): Promise<string>;
  /** The world the target serves (data/worlds/<name>/), so generated ids exist there; optional. */
  readonly worldDir?: string;
  /** Releases what the target started (a local cluster); absent for external targets. */
  stop?(): Promise<void>;
}

/** An already running service at `address`; `processes` are sampled if given (e.g. from `--pid`); `tls` when it requires mutual TLS. */
export function staticTarget(address: string, processes: readonly ProcessRef[] = [], tls?: TlsSection): Target {
  return { address, processes: () => processes, ...(tls !== undefined ? { tls } : {}) };
}

/**
 * The shape the local launcher (cluster/local/) is expected to return; declared here rather than
 * imported so loadtest builds before and without it.
 */
export interface LocalClusterHandle {
  readonly grpcAddress: string;
  readonly nodes: readonly ProcessRef[] | (() => readonly ProcessRef[]);
  readonly natsPid?: number;
  stop(): Promise<void>;
  killNode?(name: string): Promise<void>;
  restartNode?(name: string): Promise<unknown>;
  moveShard?(kind: 'item' | 'user', index: number, from?: string, to?: string): Promise<{ readonly from: string; readonly to: string; readonly result: { readonly warmMs: number; readonly drainMs: number } }>;
}

/** Adapts a started local cluster to a {@link Target}. */
export function clusterTarget(cluster: LocalClusterHandle, worldDir?: string): Target {
  const target: Target = {
    ...(worldDir !== undefined ? { worldDir } : {}),
    address: cluster.grpcAddress,
    processes: () => {
      const nodes = typeof cluster.nodes === 'function' ? cluster.nodes() : cluster.nodes;
      const refs = nodes.map((n) => ({ name: n.name, pid: n.pid }));
      return cluster.natsPid === undefined ? refs : [...refs, { name: 'nats-server', pid: cluster.natsPid }];
    },
    stop: () => cluster.stop(),
  };
  if (cluster.killNode) target.killNode = (name) => cluster.killNode!(name);
  if (cluster.restartNode) target.restartNode = async (name) => void (await cluster.restartNode!(name));
  if (cluster.moveShard) {
    target.moveShard = async (kind, index, to) => {
      const m = await cluster.moveShard!(kind, index, undefined, to);
      return `${kind} ${index} ${m.from} → ${m.to}: new owner serving after ${m.result.warmMs} ms, old owner drained ${m.result.drainMs} ms after the flip`;
    };
  }
  return target;
}

/**
 * Starts the local cluster the way `make run` does (cluster/local/: `ensureLocalAssets()` for the
 * default world and models, cached; then `startLocalCluster({ runDir, worldDir, modelDir })`) and
 * adapts it. Loaded dynamically so loadtest builds and tests without the cluster code.
 * `runDir` defaults to run/loadtest-cluster.
 */
export async function startLocalClusterTarget(opts: { readonly runDir?: string; readonly nodes?: number; readonly log?: (line: string) => void } = {}): Promise<Target> {
  type Assets = { worldDir: string; modelDir: string };
  const assets = (await import(new URL('../cluster/local/assets.js', import.meta.url).href)) as { ensureLocalAssets?: (o?: unknown) => Promise<Assets> };
  const launcher = (await import(new URL('../cluster/local/launcher.js', import.meta.url).href)) as { startLocalCluster?: (o: unknown) => Promise<LocalClusterHandle> };
  if (typeof assets.ensureLocalAssets !== 'function' || typeof launcher.startLocalCluster !== 'function') {
    throw new Error('--start-cluster: cluster/local/ lacks ensureLocalAssets or startLocalCluster');
  }
  const { worldDir, modelDir } = await assets.ensureLocalAssets(opts.log ? { log: opts.log } : {});
  const runDir = opts.runDir ?? new URL('../../run/loadtest-cluster', import.meta.url).pathname;
  return clusterTarget(await launcher.startLocalCluster({ runDir, worldDir, modelDir, ...(opts.nodes ? { nodes: opts.nodes } : {}) }), worldDir);
}
