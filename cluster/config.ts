/**
 * THE config of an upnext node and of a local cluster: defaults, then validation (a TypeError
 * naming the bad option), then a resolved type with every field present. It composes the actors'
 * own option types (each actor folder owns its knobs and their resolver; this module only nests
 * them and adds the node's and the cluster's). Loaded from a JSON file and/or `--set key=value`
 * flags; nothing reads the environment.
 *
 * Every knob is listed by {@link describeConfig} (key, default, unit, doc) — the README's knob
 * table is generated from it, and a unit test checks that no resolved knob is missing from it.
 */
import { readFile } from 'node:fs/promises';
import { validateClusterName } from '../core/subjects.js';
import { DEFAULT_COORDINATOR_CONFIG, resolveCoordinatorConfig } from '../actors/coordinator/config.js';
import type { CoordinatorConfig, ResolvedCoordinatorConfig } from '../actors/coordinator/config.js';
import type { ServingTimeBase } from '../actors/coordinator/index.js';
import { DEFAULT_BATCHING, EXECUTION_PROVIDER_CHOICES, resolveBatchingOptions } from '../actors/ranker/options.js';
import type { BatchingOptions, ExecutionProviderChoice, ResolvedBatchingOptions } from '../actors/ranker/options.js';
import { resolveItemShardOptions } from '../actors/item-shard/item-shard.js';
import type { ItemShardOptions } from '../actors/item-shard/item-shard.js';
import type { ResolvedIndexOptions } from '../actors/item-shard/index-options.js';
import type { ResolvedSearchBatchOptions } from '../actors/item-shard/protocol.js';
import { checkSnapshotIntervalWithinRetention, resolveUserPartitionOptions } from '../actors/user-state/user-state.js';
import { DEFAULT_EVENT_MAX_AGE_MS, validateEventMaxAgeMs } from '../actors/event-stream/stream.js';
import type { UserPartitionOptions, UserStateThreadMode } from '../actors/user-state/user-state.js';
import { resolvePopularIndexOptions } from '../actors/popular/popular-index.js';
import type { PopularIndexOptions, ResolvedPopularIndexOptions } from '../actors/popular/popular-index.js';
import { resolveTlsSection } from './tls.js';
import type { TlsSection } from './tls.js';
import { resolveNatsSection } from './nats/auth.js';
import type { NatsSection } from './nats/auth.js';

export type { TlsFiles, TlsSection } from './tls.js';
export type { NatsSection } from './nats/auth.js';

/** Shape of the cluster the local launcher creates (the shard map's fixed parameters). */
export interface ClusterShapeConfig {
  /** Cluster name: scopes NATS subjects and the KV bucket. Default "local". */
  readonly name: string;
  /** Node processes the local launcher starts. Default 3. */
  readonly nodes: number;
  /** S: virtual item shards. Default 2. */
  readonly itemShards: number;
  /** P: virtual user partitions. Default 16. */
  readonly userPartitions: number;
  /** R: replicas of each user partition (item shards use `itemReplicas`). Default 1. */
  readonly replicas: number;
  /**
   * R_items: replicas of each item shard, 1..nodes, or "all" = every node. Default "all": every
   * Recommend searches every item shard, so item shards are replicated for throughput (and a
   * coordinator then finds them in its own process), while user partitions keep R. Turn it into a
   * count with {@link itemReplicasCount}.
   */
  readonly itemReplicas: ItemReplicasSetting;
  /** Nodes hosting a ranker replica: "all" or a comma-separated list of node names. Default "all". */
  readonly rankers: string;
  /** Nodes hosting a coordinator: comma-separated node names. Default "n1". */
  readonly coordinators: string;
}

/** cluster.itemReplicas: a replica count, or "all" (= cluster.nodes). */
export type ItemReplicasSetting = number | 'all';

/** R_items as a number: "all" is the node count. */
export function itemReplicasCount(cluster: Pick<ClusterShapeConfig, 'nodes' | 'itemReplicas'>): number {
  return cluster.itemReplicas === 'all' ? cluster.nodes : cluster.itemReplicas;
}

/** The node process's own knobs. */
export interface NodeProcessConfig {
  /** Host the node's servers bind to and advertise in the shard map. Default "127.0.0.1". */
  readonly host: string;
  /** Port of the Prometheus /metrics server; 0 picks a free one. Default 0. */
  readonly metricsPort: number;
  /** How often the node writes its load report to KV (for `shardmap show`), ms; 0 = never. Default 5000. */
  readonly loadReportIntervalMs: number;
  /** How long a graceful stop (SIGTERM) lets in-flight work finish before forcing, ms. Default 5000. */
  readonly drainTimeoutMs: number;
  /** Where the popular/trending actor runs: on nodes hosting a coordinator, or on every node. Default "coordinators". */
  readonly popularOn: 'coordinators' | 'all';
  /** Item shards / user partitions a node builds at once when it starts (each in its own worker). Default 2. */
  readonly startConcurrency: number;
  /**
   * Log a main-thread GC pause, or a second whose worst event-loop lateness is, at or over this, ms
   * (`gc_pause` / `event_loop_stall` lines; /metrics has the histograms either way); 0 = never.
   * Default 50: a pause that long alone breaks a 50 ms p99 for the requests in flight.
   */
  readonly stallLogMs: number;
}

/** Public Recommend server of a coordinator, plus the coordinator's pipeline knobs. */
export interface CoordinatorSection extends ResolvedCoordinatorConfig {
  /** Port of the public gRPC server; 0 picks a free one. Default 50051. */
  readonly port: number;
  /**
   * 'prefer': rank on the node's own ranker replica in-process (no gRPC) when the node runs one,
   * falling back to the other replicas over gRPC when it is overloaded or failing
   * (actors/ranker/local-first.ts); 'off': always over gRPC. Default 'prefer'.
   */
  readonly localRanker: LocalRankerMode;
  /**
   * 'prefer': search item shards and read user partitions hosted by the coordinator's own node
   * in-process (no NATS), over NATS for the rest and when the local one is overloaded or stopped;
   * 'off': always over NATS. Default 'prefer'.
   */
  readonly localShards: LocalShardsMode;
  /**
   * What "now" is for items' ages and LogEvents' times: 'clock' (wall time: live data), 'world'
   * (a replayed world's history ends when the node starts), 'auto' ('world' when the served world's
   * history ended more than a day ago, else 'clock'). Deadlines always use wall time. Default 'auto'.
   */
  readonly timeBase: ServingTimeBase;
}

/** How a coordinator uses a ranker replica in its own process (see CoordinatorSection.localRanker). */
export type LocalRankerMode = 'prefer' | 'off';

/** How a coordinator uses item shards and user partitions in its own process (see CoordinatorSection.localShards). */
export type LocalShardsMode = 'prefer' | 'off';

/** Ranker replica knobs (see actors/ranker/options.ts). */
export interface RankerSection {
  /** Worker threads, each with its own ONNX Runtime session. Default 1. */
  readonly workers: number;
  /** ONNX Runtime intra-op threads per session. Default 1. */
  readonly intraOpNumThreads: number;
  /** "auto" picks CUDA when present, else CPU. Default "auto". */
  readonly executionProvider: ExecutionProviderChoice;
  /** Port of the KServe v2 gRPC server; 0 picks a free one. Default 0. */
  readonly port: number;
  readonly batching: ResolvedBatchingOptions;
}

/** Item-shard knobs (see actors/item-shard/item-shard.ts and index-options.ts). */
export interface ItemShardSection {
  readonly index: ResolvedIndexOptions;
  readonly maxInFlight: number;
  readonly towerBatchRows: number;
  readonly latencyWindow: number;
  /** Snapshot within this many ms after an admin change; 0 = never. Default 30000 ms. */
  readonly snapshotAfterChangesMs: number;
  /** Model versions whose shard snapshots a tower switch keeps: 2 = served + replaced, 1 = served, 0 = all. Default 2. */
  readonly snapshotsKept: number;
  /** Searches answered by one faiss call (only those already queued). Default `{ maxQueries: 16 }`. */
  readonly searchBatch: ResolvedSearchBatchOptions;
}

/** User-partition knobs (see actors/user-state/user-state.ts). */
export interface UserStateSection {
  readonly embeddingCacheSize: number;
  readonly thread: UserStateThreadMode;
  readonly maxInFlight: number;
  /** Apply LogEvents' events from the JetStream stream (actors/event-stream/feed.ts). Default true. */
  readonly eventFeed: boolean;
  /** Period of each partition's live snapshot (profiles + stream sequence), ms; 0 = bootstrap snapshot only. Default 60000. */
  readonly snapshotIntervalMs: number;
}

/** The JetStream event stream (see actors/event-stream/stream.ts). */
export interface EventStreamSection {
  /** Retention (the stream's max_age), ms; 0 = unlimited. Default 604800000 (7 days). */
  readonly maxAgeMs: number;
}

/** Popular/trending knobs (see actors/popular/). */
export interface PopularSection {
  readonly lists: ResolvedPopularIndexOptions;
  /** How often lists are recomputed, ms. Default 5000. */
  readonly refreshIntervalMs: number;
  /** What "now" is when lists are computed: the newest event's time, or the wall clock. Default "events". */
  readonly timeBase: 'events' | 'clock';
  /** Count the events LogEvents accepts, read from the JetStream stream. Default true. */
  readonly eventFeed: boolean;
}

/** The whole resolved config. */
export interface UpnextConfig {
  readonly cluster: ClusterShapeConfig;
  readonly node: NodeProcessConfig;
  readonly coordinator: CoordinatorSection;
  readonly ranker: RankerSection;
  readonly itemShard: ItemShardSection;
  readonly userState: UserStateSection;
  readonly popular: PopularSection;
  readonly eventStream: EventStreamSection;
  /** Unset ({}) by default: plaintext gRPC and NATS. */
  readonly tls: TlsSection;
  /** NATS credentials (cluster/nats/auth.ts). Default `{ auth: false }`: no credentials. */
  readonly nats: NatsSection;
}

/** What a config file or flags may set: every field optional, nested. */
export interface UpnextConfigInput {
  readonly cluster?: Partial<ClusterShapeConfig>;
  readonly node?: Partial<NodeProcessConfig>;
  readonly coordinator?: CoordinatorConfig & {
    readonly port?: number;
    readonly localRanker?: LocalRankerMode;
    readonly localShards?: LocalShardsMode;
    readonly timeBase?: ServingTimeBase;
  };
  readonly ranker?: Partial<Omit<RankerSection, 'batching'>> & { readonly batching?: BatchingOptions };
  readonly itemShard?: Pick<ItemShardOptions, 'index' | 'maxInFlight' | 'towerBatchRows' | 'latencyWindow' | 'snapshotAfterChangesMs' | 'snapshotsKept' | 'searchBatch'>;
  readonly userState?: Pick<UserPartitionOptions, 'embeddingCacheSize' | 'thread' | 'maxInFlight' | 'eventFeed' | 'snapshotIntervalMs'>;
  readonly eventStream?: Partial<EventStreamSection>;
  readonly popular?: { readonly lists?: PopularIndexOptions; readonly refreshIntervalMs?: number; readonly timeBase?: 'events' | 'clock'; readonly eventFeed?: boolean };
  readonly tls?: TlsSection;
  readonly nats?: Partial<NatsSection>;
}

export const DEFAULT_CLUSTER_SHAPE: ClusterShapeConfig = Object.freeze({
  name: 'local',
  nodes: 3,
  itemShards: 2,
  userPartitions: 16,
  replicas: 1,
  itemReplicas: 'all',
  rankers: 'all',
  coordinators: 'n1',
});

export const DEFAULT_NODE_PROCESS: NodeProcessConfig = Object.freeze({
  host: '127.0.0.1',
  metricsPort: 0,
  loadReportIntervalMs: 5000,
  drainTimeoutMs: 5000,
  popularOn: 'coordinators',
  startConcurrency: 2,
  stallLogMs: 50,
});

const SECTIONS = ['cluster', 'node', 'coordinator', 'ranker', 'itemShard', 'userState', 'popular', 'eventStream', 'tls', 'nats'] as const;

function int(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TypeError(`config ${key} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function intOrAll(key: string, v: unknown, min: number, max: number): number | 'all' {
  if (v === 'all') return v;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TypeError(`config ${key} must be "all" or an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function str(key: string, v: unknown, re?: RegExp): string {
  if (typeof v !== 'string' || v.length === 0 || (re && !re.test(v))) {
    throw new TypeError(`config ${key} must be a non-empty string${re ? ` matching ${re}` : ''}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function bool(key: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`config ${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(key: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new TypeError(`config ${key} must be one of ${allowed.join('|')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

function section(key: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError(`config ${key} must be an object`);
  return v as Record<string, unknown>;
}

function noUnknownKeys(key: string, input: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(input)) {
    if (!known.includes(k)) throw new TypeError(`config ${key ? `${key}.` : ''}${k} is not a known option`);
  }
}

/**
 * Merges `input` over the defaults and validates every knob. Throws a TypeError naming the bad
 * option (`config cluster.itemShards must be …`). Unknown top-level or cluster/node keys are errors
 * (a typo must not silently fall back to a default).
 */
export function resolveConfig(input: UpnextConfigInput = {}): UpnextConfig {
  const root = section('', input);
  noUnknownKeys('', root, SECTIONS);

  const c = section('cluster', root.cluster);
  noUnknownKeys('cluster', c, Object.keys(DEFAULT_CLUSTER_SHAPE));
  const cm = { ...DEFAULT_CLUSTER_SHAPE, ...c };
  const name = str('cluster.name', cm.name);
  try {
    validateClusterName(name);
  } catch {
    throw new TypeError(`config cluster.name must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(name)}`);
  }
  const nodes = int('cluster.nodes', cm.nodes, 1, 64);
  const cluster: ClusterShapeConfig = Object.freeze({
    name,
    nodes,
    itemShards: int('cluster.itemShards', cm.itemShards, 1, 1024),
    userPartitions: int('cluster.userPartitions', cm.userPartitions, 1, 65_536),
    replicas: int('cluster.replicas', cm.replicas, 1, nodes),
    itemReplicas: intOrAll('cluster.itemReplicas', cm.itemReplicas, 1, nodes),
    rankers: str('cluster.rankers', cm.rankers, /^(all|[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*)$/),
    coordinators: str('cluster.coordinators', cm.coordinators, /^[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*$/),
  });

  const n = section('node', root.node);
  noUnknownKeys('node', n, Object.keys(DEFAULT_NODE_PROCESS));
  const nm = { ...DEFAULT_NODE_PROCESS, ...n };
  const node: NodeProcessConfig = Object.freeze({
    host: str('node.host', nm.host),
    metricsPort: int('node.metricsPort', nm.metricsPort, 0, 65_535),
    loadReportIntervalMs: int('node.loadReportIntervalMs', nm.loadReportIntervalMs, 0, 3_600_000),
    drainTimeoutMs: int('node.drainTimeoutMs', nm.drainTimeoutMs, 0, 600_000),
    popularOn: oneOf('node.popularOn', nm.popularOn, ['coordinators', 'all'] as const),
    startConcurrency: int('node.startConcurrency', nm.startConcurrency, 1, 64),
    stallLogMs: int('node.stallLogMs', nm.stallLogMs, 0, 60_000),
  });

  const co = section('coordinator', root.coordinator);
  const { port: coPort, localRanker: coLocalRanker, localShards: coLocalShards, timeBase: coTimeBase, ...coRest } = co;
  let coordinatorCfg: ResolvedCoordinatorConfig;
  try {
    coordinatorCfg = resolveCoordinatorConfig(coRest as CoordinatorConfig);
  } catch (err) {
    // The coordinator names the option relative to itself; name it from the root.
    throw new TypeError(String((err as Error).message).replace(/^coordinator option /, 'config coordinator.'));
  }
  const coordinator: CoordinatorSection = Object.freeze({
    ...coordinatorCfg,
    port: int('coordinator.port', coPort ?? 50051, 0, 65_535),
    localRanker: oneOf('coordinator.localRanker', coLocalRanker ?? 'prefer', ['prefer', 'off'] as const),
    localShards: oneOf('coordinator.localShards', coLocalShards ?? 'prefer', ['prefer', 'off'] as const),
    timeBase: oneOf('coordinator.timeBase', coTimeBase ?? 'auto', ['auto', 'clock', 'world'] as const),
  });

  const r = section('ranker', root.ranker);
  noUnknownKeys('ranker', r, ['workers', 'intraOpNumThreads', 'executionProvider', 'port', 'batching']);
  let batching: ResolvedBatchingOptions;
  try {
    batching = resolveBatchingOptions(section('ranker.batching', r.batching) as BatchingOptions);
  } catch (err) {
    throw new TypeError(String((err as Error).message).replace(/^options\.batching\./, 'config ranker.batching.'));
  }
  const ranker: RankerSection = Object.freeze({
    workers: int('ranker.workers', r.workers ?? 1, 1, 64),
    intraOpNumThreads: int('ranker.intraOpNumThreads', r.intraOpNumThreads ?? 1, 1, 64),
    executionProvider: oneOf('ranker.executionProvider', r.executionProvider ?? 'auto', EXECUTION_PROVIDER_CHOICES),
    port: int('ranker.port', r.port ?? 0, 0, 65_535),
    batching,
  });

  // The actor folders validate their own knobs; the placeholders fill the per-instance fields.
  const renamed = (err: unknown, key: string) =>
    new TypeError(String((err as Error).message).replace(/^option /, `config ${key}.`));
  const is = section('itemShard', root.itemShard);
  noUnknownKeys('itemShard', is, ['index', 'maxInFlight', 'towerBatchRows', 'latencyWindow', 'snapshotAfterChangesMs', 'snapshotsKept', 'searchBatch']);
  let itemShard: ItemShardSection;
  try {
    const r = resolveItemShardOptions({ ...(is as Partial<ItemShardOptions>), cluster: 'x', shard: 0, shardCount: 1, worldDir: '.', modelDir: '.' });
    itemShard = Object.freeze({
      index: r.index,
      maxInFlight: r.maxInFlight,
      towerBatchRows: r.towerBatchRows,
      latencyWindow: r.latencyWindow,
      snapshotAfterChangesMs: r.snapshotAfterChangesMs,
      snapshotsKept: r.snapshotsKept,
      searchBatch: Object.freeze({ ...r.searchBatch }),
    });
  } catch (err) {
    throw renamed(err, 'itemShard');
  }
  const us = section('userState', root.userState);
  noUnknownKeys('userState', us, ['embeddingCacheSize', 'thread', 'maxInFlight', 'eventFeed', 'snapshotIntervalMs']);
  let userState: UserStateSection;
  try {
    const r = resolveUserPartitionOptions({ ...(us as Partial<UserPartitionOptions>), cluster: 'x', partition: 0, partitionCount: 1, modelDir: '.' });
    userState = Object.freeze({ embeddingCacheSize: r.embeddingCacheSize, thread: r.thread, maxInFlight: r.maxInFlight, eventFeed: r.eventFeed, snapshotIntervalMs: r.snapshotIntervalMs });
  } catch (err) {
    throw renamed(err, 'userState');
  }
  const es = section('eventStream', root.eventStream);
  noUnknownKeys('eventStream', es, ['maxAgeMs']);
  const eventStream: EventStreamSection = Object.freeze({ maxAgeMs: validateEventMaxAgeMs('config eventStream.maxAgeMs', es.maxAgeMs ?? DEFAULT_EVENT_MAX_AGE_MS) });
  checkSnapshotIntervalWithinRetention(userState.snapshotIntervalMs, eventStream.maxAgeMs, 'config userState.snapshotIntervalMs', 'eventStream.maxAgeMs');
  const po = section('popular', root.popular);
  noUnknownKeys('popular', po, ['lists', 'refreshIntervalMs', 'timeBase', 'eventFeed']);
  let lists: ResolvedPopularIndexOptions;
  try {
    lists = resolvePopularIndexOptions(section('popular.lists', po.lists) as PopularIndexOptions);
  } catch (err) {
    throw new TypeError(String((err as Error).message).replace(/^(option |options\.)?/, 'config popular.lists.'));
  }
  const popular: PopularSection = Object.freeze({
    lists,
    refreshIntervalMs: int('popular.refreshIntervalMs', po.refreshIntervalMs ?? 5000, 1, 3_600_000),
    timeBase: oneOf('popular.timeBase', po.timeBase ?? 'events', ['events', 'clock'] as const),
    eventFeed: bool('popular.eventFeed', po.eventFeed ?? true),
  });

  const tls = resolveTlsSection(section('tls', root.tls));
  const nats = resolveNatsSection(section('nats', root.nats));

  return Object.freeze({ cluster, node, coordinator, ranker, itemShard, userState, popular, eventStream, tls, nats });
}

/**
 * Applies `key=value` overrides (dotted keys, e.g. `coordinator.budgets.rankingMs=25`) to a config
 * input. Values parse as JSON when they can (numbers, booleans, objects), else stay strings.
 */
export function applyOverrides(input: UpnextConfigInput, overrides: readonly string[]): UpnextConfigInput {
  const out = structuredClone(input) as Record<string, unknown>;
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new TypeError(`config override must be key=value, got ${JSON.stringify(o)}`);
    const path = o.slice(0, eq).split('.');
    const raw = o.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    let obj = out;
    for (const p of path.slice(0, -1)) {
      if (p === '__proto__' || p === 'constructor') throw new TypeError(`config override key ${JSON.stringify(o)} is not allowed`);
      const next = obj[p];
      if (next === undefined) obj[p] = {};
      else if (typeof next !== 'object' || next === null) throw new TypeError(`config ${path.join('.')}: ${p} is not an object`);
      obj = obj[p] as Record<string, unknown>;
    }
    obj[path[path.length - 1]!] = value;
  }
  return out as UpnextConfigInput;
}

/** Reads a JSON config file (no defaults applied: pass the result to {@link resolveConfig}). */
export async function readConfigFile(file: string): Promise<UpnextConfigInput> {
  const text = await readFile(file, 'utf8');
  try {
    return JSON.parse(text) as UpnextConfigInput;
  } catch (err) {
    throw new TypeError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** One documented knob. */
export interface KnobDescription {
  /** Dotted key, as used in the config file and in `--set key=value`. */
  readonly key: string;
  /** Default value, JSON-encoded. */
  readonly default: string;
  /** Unit ("ms", "count", "bytes", "s", "" for names and enums). */
  readonly unit: string;
  readonly doc: string;
}

/** key → [unit, doc]; defaults are read from the resolved default config so they never drift. */
const KNOB_DOCS: Readonly<Record<string, readonly [string, string]>> = {
  'cluster.name': ['', 'Cluster name: scopes NATS subjects and the KV bucket.'],
  'cluster.nodes': ['count', 'Node processes the local launcher starts.'],
  'cluster.itemShards': ['count', 'S: virtual item shards (fixed at creation; every request touches all of them, so keep it small).'],
  'cluster.userPartitions': ['count', 'P: virtual user partitions (fixed at creation; fine-grained for moves and fast replay).'],
  'cluster.replicas': ['count', 'R: replicas of each user partition (≤ nodes); item shards take theirs from cluster.itemReplicas.'],
  'cluster.itemReplicas': ['count', 'R_items: replicas of each item shard; "all" = every node (default). User partitions use cluster.replicas.'],
  'cluster.rankers': ['', 'Nodes hosting a ranker replica: "all" or comma-separated node names.'],
  'cluster.coordinators': ['', 'Nodes hosting a coordinator (public Recommend endpoint): "all", or node names comma-separated.'],
  'node.host': ['', 'Address the node binds its servers to and advertises in the shard map.'],
  'node.metricsPort': ['port', 'Prometheus /metrics port; 0 picks a free one (printed in the ready line). With `tls` set it serves HTTPS and /metrics needs a client certificate from the cluster CA; /healthz does not.'],
  'node.loadReportIntervalMs': ['ms', 'How often the node writes its load report to KV for `shardmap show`; 0 = never.'],
  'node.drainTimeoutMs': ['ms', 'Graceful stop: how long in-flight work may finish before the node forces shutdown.'],
  'node.popularOn': ['', 'Where the popular/trending actor runs: "coordinators" (nodes with a coordinator) or "all".'],
  'node.stallLogMs': ['ms', 'Log a main-thread GC pause (`gc_pause`) or a second whose worst event-loop lateness (`event_loop_stall`) is at or over this; 0 = never. /metrics has `nodejs_gc_pause_seconds{kind}` and `nodejs_eventloop_window_max_delay_seconds` either way.'],
  'node.startConcurrency': ['count', 'Item shards / user partitions a node builds at once at start (item shards each in their own worker thread; "shared" user partitions share the node\'s one user-state worker).'],
  'coordinator.port': ['port', 'Public gRPC (Recommend, LogEvents, health, reflection) port of the coordinator; 0 = free port.'],
  'coordinator.localRanker': ['', '"prefer" (rank on the node\'s own ranker replica in-process, no gRPC; other replicas over gRPC when it is overloaded, failing or absent) or "off" (always over gRPC).'],
  'coordinator.timeBase': ['', '"auto" ("world" when the served world\'s history ended over a day ago, else "clock"), "clock" (wall time: live data) or "world" (the replayed world\'s history ends when the node starts): what "now" is for items\' ages in the ranker rows and LogEvents\' times.'],
  'coordinator.localShards': ['', '"prefer" (search item shards and read user partitions hosted by the coordinator\'s own node in-process, no NATS; NATS for the rest and when the local one is overloaded or stopped) or "off" (always NATS).'],
  'coordinator.defaultDeadlineMs': ['ms', 'Overall Recommend deadline when the client sets none.'],
  'coordinator.budgets.userStateMs': ['ms', 'User-state lookup budget (one NATS request); missed → treated as a new user.'],
  'coordinator.budgets.retrievalMs': ['ms', 'Scatter/gather budget over every item shard; missed shards lower coverage.'],
  'coordinator.budgets.rankingMs': ['ms', 'Ranker call budget; missed → retrieval order (degraded).'],
  'coordinator.budgets.policyMs': ['ms', 'Policy stage budget (blend, exploration, diversity).'],
  'coordinator.budgets.fallbackMs': ['ms', 'How long a fallback answer may wait for the popular list (cold cache only).'],
  'coordinator.perShardK': ['count', "Candidates asked from each item shard (k')."],
  'coordinator.mergeLimit': ['count', 'Candidates kept after merging the shard lists.'],
  'coordinator.trendingCandidates': ['count', 'Trending candidates added for exploration / cold start.'],
  'coordinator.surfaces.default.click': ['weight', 'Weight of calibrated P(click) for surfaces without their own weights.'],
  'coordinator.surfaces.default.watch': ['weight', 'Weight of normalised E[watch] for surfaces without their own weights.'],
  'coordinator.surfaces.home.click': ['weight', 'Weight of P(click) on the "home" surface.'],
  'coordinator.surfaces.home.watch': ['weight', 'Weight of normalised E[watch] on the "home" surface.'],
  'coordinator.surfaces.up_next.click': ['weight', 'Weight of P(click) on the "up_next" surface.'],
  'coordinator.surfaces.up_next.watch': ['weight', 'Weight of normalised E[watch] on the "up_next" surface.'],
  'coordinator.surfaces.default.completion': ['weight', 'Weight of the expected share watched, E[watch]/duration capped at 1, for surfaces without their own weights (0 = off: seconds alone favour long videos few finish; see docs/loadtest.md, online evaluation).'],
  'coordinator.surfaces.home.completion': ['weight', 'Weight of the expected share watched on the "home" surface.'],
  'coordinator.surfaces.up_next.completion': ['weight', 'Weight of the expected share watched on the "up_next" surface.'],
  'coordinator.watchNormS': ['s', 'Expected watch time that maps to 1 in the blend: f(w) = min(1, log1p(w)/log1p(watchNormS)).'],
  'coordinator.exploration.epsilon': ['share', 'Probability an eligible slot is an exploration slot.'],
  'coordinator.exploration.protectedTopSlots': ['count', 'Leading slots never used for exploration.'],
  'coordinator.diversity.window': ['count', 'Head of the list where the per-category cap applies.'],
  'coordinator.diversity.maxPerCategory': ['count', 'Most items of one category inside the diversity window.'],
  'coordinator.admission.maxConcurrent': ['count', 'Requests running the pipeline at once.'],
  'coordinator.admission.maxQueue': ['count', 'Requests waiting for a slot; beyond it requests are shed to the popular list.'],
  'coordinator.admission.maxQueueWaitMs': ['ms', 'Longest wait for a slot before a request is shed.'],
  'coordinator.auth.token': ['', 'When set, callers must send `authorization: Bearer <token>`. Default unset.'],
  'coordinator.maxReceiveMessageBytes': ['bytes', 'Largest request message the public server accepts.'],
  'coordinator.publishAckTimeoutMs': ['ms', 'Timeout of one JetStream publish ack in LogEvents.'],
  'coordinator.featureLog.sampleRate': ['share', 'Share of ranked requests whose served ranker rows are published to the feature-log stream (UPNEXT_<CLUSTER>_SERVED) for training joins and skew (`make skew`); 0 = off. Sampled by request id.'],
  'coordinator.featureLog.maxAgeMs': ['ms', 'Retention of the feature-log stream; 0 = unlimited.'],
  'coordinator.featureLog.maxBytes': ['bytes', 'Size cap of the feature-log stream; the oldest samples are dropped first.'],
  'coordinator.drift.sampleRate': ['share', 'Share of Recommend requests whose ranked items\' served P(click) is joined with the IMPRESSION/CLICK events logged for them (prediction drift on /metrics, `upnext_coordinator_prediction_drift_*`); 0 = off. Sampled by request id with the feature log\'s hash (samples at two rates nest: the smaller lies inside the larger).'],
  'coordinator.drift.maxTracked': ['count', 'Sampled requests a coordinator remembers for the join; when full, new sampled requests go untracked (`…_prediction_drift_dropped_requests`), so every tracked one keeps its whole join window.'],
  'coordinator.drift.joinWindowMs': ['ms', 'Events arriving longer than this after their request was served are not joined (`…_prediction_drift_late_events`).'],
  'coordinator.drift.windowMs': ['ms', 'Sliding window of the drift figures (15 buckets of windowMs/15).'],
  'coordinator.drift.alertAbove': ['ratio', '`…_prediction_drift_alert` is 1 when the top slots\' drift (mean predicted CTR / observed CTR − 1), pooled or on any one surface (`…_prediction_drift_surfaces_*{surface}`), is above this or below minus this by more than two standard errors of the estimate.'],
  'coordinator.drift.minImpressions': ['count', 'Matched top-slot impressions in the window below which the drift alert stays 0 (noise); a surface\'s own alert needs this many on that surface.'],
  'coordinator.drift.topPositions': ['count', 'Slots 0..topPositions-1 give the `…_prediction_drift_top_*` figures the alert reads: the ranker predicts every item at slot 0, so lower slots show a drift by position alone (docs/operations.md); 1000 = every slot.'],
  'coordinator.localOverloadedAt': ['count', 'Requests already queued on the node\'s own item shard or user partition from which a call goes over NATS instead (to a twin replica, or the same actor).'],
  'ranker.workers': ['count', 'Ranker worker threads per node, each with its own ONNX Runtime session.'],
  'ranker.intraOpNumThreads': ['count', 'ONNX Runtime intra-op threads per session.'],
  'ranker.executionProvider': ['', '"auto" (CUDA when present, else CPU), "cpu", "cuda" or "webgpu" (opt-in GPU via Vulkan; pays from ~4k rows per run, so raise batching.maxDelayMs with it).'],
  'ranker.port': ['port', 'KServe v2 gRPC port of the ranker replica; 0 = free port (advertised in the shard map).'],
  'ranker.batching.maxBatchRows': ['rows', 'Most rows merged into one ONNX Runtime run.'],
  'ranker.batching.maxDelayMs': ['ms', 'How long the oldest request may wait for others to join its batch; 0 = at once.'],
  'ranker.batching.maxQueueRows': ['rows', 'Rows allowed to wait; beyond it a request fails RESOURCE_EXHAUSTED (the coordinator degrades).'],
  'ranker.batching.batchesPerWorker': ['count', 'Batches in flight per worker.'],
  'itemShard.index.factory': ['', "faiss factory string, or 'auto' (IDMap,Flat up to flatMaxItems; above it IVF{≈2√n},PQ{dim}x4fs,RFlat on the AVX2 faiss build, IVF{≈4√n},Flat on Debian's)."],
  'itemShard.index.nprobe': ['lists', "IVF lists probed per query, or 'auto': the smallest nprobe that reaches recallTarget on the model's retrieval queries, measured at each index build (a model without them: nlist/8, for re-rank indexes min(3·nlist/16, 6·√nlist)); raised for large k."],
  'itemShard.index.recallTarget': ['ratio', "Recall the 'auto' nprobe is calibrated to: a shard of S checks that its exact top-⌈100/S⌉ is found in its top-perShardK for the model's retrieval queries, at 2 standard errors below the mean."],
  'itemShard.index.calibrationQueries': ['count', "Most of the model's retrieval queries an 'auto' calibration searches (at least 32); 0 = off (the fixed rule)."],
  'itemShard.index.efSearch': ['count', 'HNSW search breadth (HNSW factories only).'],
  'itemShard.index.efConstruction': ['count', 'HNSW build breadth (HNSW factories only).'],
  'itemShard.index.flatMaxItems': ['items', "Largest shard that 'auto' indexes exactly (flat)."],
  'itemShard.index.trainPerList': ['vectors', 'IVF training vectors per list.'],
  'itemShard.index.refineFactor': ['×k', 'Candidates re-scored exactly per result wanted, for indexes with a re-rank stage (`...,RFlat`, e.g. the AVX2 build\'s auto fast-scan index); ignored by others.'],
  'itemShard.maxInFlight': ['count', 'Searches queued to the shard worker; beyond it RESOURCE_EXHAUSTED.'],
  'itemShard.towerBatchRows': ['rows', 'Items per item-tower ONNX run while building a shard.'],
  'itemShard.latencyWindow': ['count', 'Searches kept for the p50 in stats().'],
  'itemShard.snapshotAfterChangesMs': ['ms', 'After an admin upsert/removal, write a fresh shard snapshot within this time (one write per burst; also at a graceful stop); 0 = never (changes since the last snapshot are lost on a restart).'],
  'itemShard.snapshotsKept': ['0..2', 'Model versions whose item-shard snapshots stay on disk after a tower switch: 2 = the served one and the one it replaced (a restart on the previous model restores instead of rebuilding), 1 = the served one only, 0 = keep every version. Older versions are removed at the switch; unfinished writes of dead processes at every shard start.'],
  'itemShard.searchBatch.maxQueries': ['count', 'Most searches one faiss call answers (1..256; 1 = one call per search): searches already queued when the shard worker gets free share a call, which costs less per query; nothing waits for a batch to fill.'],
  'userState.embeddingCacheSize': ['entries', 'Cached user embeddings (user × context bucket × profile version) per partition.'],
  'userState.thread': ['', '"shared" (one worker thread and user-tower session for all the node\'s partitions), "worker" (a worker thread per partition) or "inline" (the node\'s main thread).'],
  'userState.maxInFlight': ['count', 'Requests queued per partition; beyond it RESOURCE_EXHAUSTED.'],
  'userState.eventFeed': ['', 'true: each partition applies the events LogEvents accepted, read from the JetStream stream from its snapshot\'s sequence (a click shows in the next request); false: no feed.'],
  'userState.snapshotIntervalMs': ['ms', 'Period of each partition\'s live snapshot (profiles + the stream sequence applied), written when it applied an event since the last one, so a restart replays only the events after it; 0 = only the bootstrap snapshot (every restart replays the whole stream). At most 1/10 of eventStream.maxAgeMs.'],
  'eventStream.maxAgeMs': ['ms', 'Retention of the JetStream event stream (max_age, set when the stream is created or a partition finds it differs); 0 = unlimited. A replica whose next events were removed starts anyway and counts the gap (upnext_user_partition_replay_gap_seqs).'],
  'popular.lists.popularHalfLifeMs': ['ms', 'Half-life of the popular (all-time) counter.'],
  'popular.lists.trendingHalfLifeMs': ['ms', 'Half-life of the trending (recent) counter.'],
  'popular.lists.freshnessMs': ['ms', 'Age scale of the new-video boost in trending.'],
  'popular.lists.listSize': ['count', 'Entries kept per (country, device) list.'],
  'popular.lists.minTrendingCount': ['count', 'Smallest recent count for a video to be trending.'],
  'popular.refreshIntervalMs': ['ms', 'How often the popular/trending lists are recomputed.'],
  'popular.timeBase': ['', '"events" (now = newest event time, for replayed worlds) or "clock" (wall clock).'],
  'popular.eventFeed': ['', 'true: the lists count the events LogEvents accepts, read from the JetStream stream (at each start, after the world, the stream is replayed from 10 × popular.lists.popularHalfLifeMs ago); false: world history only.'],
  'tls.certFile': ['', 'PEM certificate (chain) of this process: served by the public Recommend and KServe gRPC servers and presented as the client certificate to other replicas and to NATS. With tls.keyFile and tls.caFile it turns on mutual TLS for gRPC and TLS for NATS; unset = plaintext. Checked at load (readable, parses, matches the key); watched after (a stat every 10 s): replaced files are used from the next handshake, no restart (docs/operations.md).'],
  'tls.keyFile': ['', 'PEM private key of tls.certFile.'],
  'tls.caFile': ['', 'PEM CA bundle: servers and clients (gRPC callers, ranker replicas, the NATS server) must present a certificate signed by it; plaintext and certificate-less clients are refused.'],
  'tls.serverName': ['', 'Name a gRPC client checks in the server certificate instead of the dialled host (shard-map addresses are host:port, usually an IP); unset = the certificate must carry the host as an IP or DNS SAN.'],
  'nats.auth': ['', 'Local launcher only: generate an NKey per role (node, admin, reader) and one per node in nats-auth/ of the run directory (seed files mode 0600), start nats-server with per-role subject permissions (a node\'s own key writes only its own address and load records), connect as admin and start each node with its own key; unauthenticated clients are refused. New keys at every start. See docs/operations.md.'],
  'nats.credsFile': ['', 'NKey seed file (one SU… line) this process connects to NATS with; unset = no credentials. The launcher sets it for its nodes when nats.auth is on. Checked at load.'],
};

function leaves(prefix: string, v: unknown, out: Map<string, unknown>): void {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) leaves(prefix ? `${prefix}.${k}` : k, x, out);
  } else if (!(typeof v === 'object' && v !== null && Object.keys(v).length === 0)) {
    out.set(prefix, v);
  }
}

/** The resolved default config as dotted key → value (objects flattened). */
export function flattenConfig(config: UpnextConfig): Map<string, unknown> {
  const out = new Map<string, unknown>();
  leaves('', config, out);
  return out;
}

/** Every knob with its default, unit and doc, in a stable order. */
export function describeConfig(): KnobDescription[] {
  const defaults = flattenConfig(resolveConfig());
  return Object.entries(KNOB_DOCS).map(([key, [unit, doc]]) => ({
    key,
    default: defaults.has(key) ? JSON.stringify(defaults.get(key)) : 'unset',
    unit,
    doc,
  }));
}

/** The default coordinator knobs, re-exported so the launcher and docs need only this module. */
export const COORDINATOR_DEFAULTS = DEFAULT_COORDINATOR_CONFIG;
/** The default ranker batching knobs. */
export const RANKER_BATCHING_DEFAULTS = DEFAULT_BATCHING;
