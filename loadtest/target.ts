/**
 * What a load test runs against. The generator only needs an address; the measurement needs the
 * processes to sample; the node-loss scenario needs a way to kill and restart a node. The local
 * cluster launcher (cluster/local/) is adapted to this interface by {@link clusterTarget}, and any
 * running deployment by {@link staticTarget}.
 */
import type { UpnextConfigInput } from '../cluster/config.js';
import type { TlsSection } from '../cluster/tls.js';

/** One OS process whose CPU and memory the report shows. */
export interface ProcessRef {
  /** Display name, e.g. "node-1" or "nats-server". */
  readonly name: string;
  readonly pid: number;
}

export interface Target {
  /** gRPC address of the public Recommender service, `host:port` (the first, when there are several). */
  readonly address: string;
  /**
   * Every coordinator's address (`[address]` when there is one; several for a local cluster with
   * `cluster.coordinators` listing more than one node, or `--target a,b`): the generator spreads its
   * requests evenly over them, as the callers' balancer would. Absent: `[address]`.
   */
  readonly addresses?: readonly string[];
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

/**
 * An already running service at `address` (one `host:port`, or several coordinators, spread over
 * evenly); `processes` are sampled if given (e.g. from `--pid`); `tls` when it requires mutual TLS.
 */
export function staticTarget(address: string | readonly string[], processes: readonly ProcessRef[] = [], tls?: TlsSection): Target {
  const addresses = typeof address === 'string' ? [address] : address;
  if (addresses.length === 0) throw new TypeError('a target needs at least one host:port');
  return { address: addresses[0]!, addresses, processes: () => processes, ...(tls !== undefined ? { tls } : {}) };
}

/** The addresses a generator calls: {@link Target.addresses}, else the one address. */
export function targetAddresses(target: Target): readonly string[] {
  return target.addresses ?? [target.address];
}

/**
 * The shape the local launcher (cluster/local/) is expected to return; declared here rather than
 * imported so loadtest builds before and without it.
 */
export interface LocalClusterHandle {
  readonly grpcAddress: string;
  /** Every coordinator's address (the first is `grpcAddress`). */
  readonly grpcAddresses?: readonly string[];
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
    addresses: cluster.grpcAddresses ?? [cluster.grpcAddress],
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

/** Options of {@link startLocalClusterTarget}. */
export interface LocalClusterTargetOptions {
  /** The cluster's working folder. Default run/loadtest-cluster. */
  readonly runDir?: string;
  /** Node processes. Default config.cluster.nodes (3). */
  readonly nodes?: number;
  /** Config overrides (`--set key=value` already applied), e.g. `cluster.coordinators`. Default: the defaults. */
  readonly config?: UpnextConfigInput;
  /** Size of the world generated (or reused) for it. Default `make run`'s (1M videos, 20k users, 5 days). */
  readonly world?: { readonly videos?: number; readonly users?: number; readonly days?: number };
  readonly log?: (line: string) => void;
}

/**
 * Starts the local cluster the way `make run` does (cluster/local/: `ensureLocalAssets()` for the
 * world and models, cached; then `startLocalCluster({ runDir, worldDir, modelDir })`) and adapts
 * it. Loaded dynamically so loadtest builds and tests without the cluster code.
 */
export async function startLocalClusterTarget(opts: LocalClusterTargetOptions = {}): Promise<Target> {
  type Assets = { worldDir: string; modelDir: string };
  const assets = (await import(new URL('../cluster/local/assets.js', import.meta.url).href)) as { ensureLocalAssets?: (o?: unknown) => Promise<Assets> };
  const launcher = (await import(new URL('../cluster/local/launcher.js', import.meta.url).href)) as { startLocalCluster?: (o: unknown) => Promise<LocalClusterHandle> };
  if (typeof assets.ensureLocalAssets !== 'function' || typeof launcher.startLocalCluster !== 'function') {
    throw new Error('--start-cluster: cluster/local/ lacks ensureLocalAssets or startLocalCluster');
  }
  const { worldDir, modelDir } = await assets.ensureLocalAssets({ ...opts.world, ...(opts.log ? { log: opts.log } : {}) });
  const runDir = opts.runDir ?? new URL('../../run/loadtest-cluster', import.meta.url).pathname;
  const cluster = await launcher.startLocalCluster({
    runDir, worldDir, modelDir,
    ...(opts.nodes ? { nodes: opts.nodes } : {}),
    ...(opts.config !== undefined ? { config: opts.config } : {}),
  });
  return clusterTarget(cluster, worldDir);
}
