/**
 * What a load test runs against. The generator only needs an address; the measurement needs the
 * processes to sample; the node-loss scenario needs a way to kill and restart a node. The local
 * cluster launcher (cluster/local/) is adapted to this interface by {@link clusterTarget}, and any
 * running deployment by {@link staticTarget}.
 */

/** One OS process whose CPU and memory the report shows. */
export interface ProcessRef {
  /** Display name, e.g. "node-1" or "nats-server". */
  readonly name: string;
  readonly pid: number;
}

export interface Target {
  /** gRPC address of the public Recommender service, `host:port`. */
  readonly address: string;
  /** Processes to sample now (asked again after a restart, since pids change). */
  processes(): readonly ProcessRef[];
  /** Kills one node (the node-loss scenario); absent when the target cannot. */
  killNode?(name: string): Promise<void>;
  /** Restarts a node killed by {@link killNode}. */
  restartNode?(name: string): Promise<void>;
  /** Releases what the target started (a local cluster); absent for external targets. */
  stop?(): Promise<void>;
}

/** An already running service at `address`; `processes` are sampled if given (e.g. from `--pid`). */
export function staticTarget(address: string, processes: readonly ProcessRef[] = []): Target {
  return { address, processes: () => processes };
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
  restartNode?(name: string): Promise<void>;
}

/** Adapts a started local cluster to a {@link Target}. */
export function clusterTarget(cluster: LocalClusterHandle): Target {
  const target: Target = {
    address: cluster.grpcAddress,
    processes: () => {
      const nodes = typeof cluster.nodes === 'function' ? cluster.nodes() : cluster.nodes;
      const refs = nodes.map((n) => ({ name: n.name, pid: n.pid }));
      return cluster.natsPid === undefined ? refs : [...refs, { name: 'nats-server', pid: cluster.natsPid }];
    },
    stop: () => cluster.stop(),
  };
  if (cluster.killNode) target.killNode = (name) => cluster.killNode!(name);
  if (cluster.restartNode) target.restartNode = (name) => cluster.restartNode!(name);
  return target;
}

/** Module specifiers tried, in order, for the local launcher (it is written by another team). */
const LOCAL_CLUSTER_MODULES = ['../cluster/local/index.js', '../cluster/local/cluster.js', '../cluster/local/launcher.js'];

/**
 * Starts the local cluster through cluster/local/'s `startLocalCluster(opts)` and adapts it.
 * Throws FAILED_PRECONDITION-style `Error` naming the modules tried when the launcher is missing.
 */
export async function startLocalClusterTarget(opts: Readonly<Record<string, unknown>> = {}): Promise<Target> {
  const tried: string[] = [];
  for (const spec of LOCAL_CLUSTER_MODULES) {
    let mod: { startLocalCluster?: (o: unknown) => Promise<LocalClusterHandle> };
    try {
      mod = (await import(new URL(spec, import.meta.url).href)) as typeof mod;
    } catch (err) {
      tried.push(`${spec} (${(err as Error).message.split('\n')[0]})`);
      continue;
    }
    if (typeof mod.startLocalCluster !== 'function') {
      tried.push(`${spec} (no startLocalCluster export)`);
      continue;
    }
    return clusterTarget(await mod.startLocalCluster(opts));
  }
  throw new Error(`--start-cluster: no local cluster launcher found; tried ${tried.join('; ')}`);
}
