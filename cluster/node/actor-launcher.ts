/**
 * The contract between a node and the actors it hosts. The node (cluster/node/node.ts) decides
 * WHAT runs from the shard map; an {@link ActorLauncher} knows HOW to start each kind. The real
 * launcher (cluster/node/real-launcher.ts) calls the actor folders' `start…` functions; unit tests
 * plug in fakes, so the node's reconciliation is tested without faiss or ONNX Runtime.
 */
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';

/** A started actor, as the node sees it. */
export interface RunningActor {
  /** Idempotent; releases workers, subscriptions and servers. */
  stop(): Promise<void>;
  /** Sizes, memory and counters for /metrics (plain data; shape owned by the actor). */
  stats(): unknown;
}

/** An actor that serves on a TCP port (ranker, coordinator). */
export interface RunningServerActor extends RunningActor {
  /** host:port it listens on, advertised in the shard map. */
  readonly address: string;
}

/** Starts the actors of one node. Every method resolves once the actor is serving. */
export interface ActorLauncher {
  itemShard(shard: number, map: ShardMapSnapshot): Promise<RunningActor>;
  userPartition(partition: number, map: ShardMapSnapshot): Promise<RunningActor>;
  popular(map: ShardMapSnapshot): Promise<RunningActor>;
  ranker(map: ShardMapSnapshot): Promise<RunningServerActor>;
  /** `rankerAddresses` follows the live map (replicas come and go). */
  /** `currentMap`: the node's map as it changes (addresses included), for the coordinator's GetRouting. */
  coordinator(map: ShardMapSnapshot, rankerAddresses: () => string[], currentMap?: () => ShardMapSnapshot | undefined): Promise<RunningServerActor>;
}

/** Key of one actor instance in a node: "item:3", "user:12", "popular", "ranker", "coordinator". */
export type ActorKey = `item:${number}` | `user:${number}` | 'popular' | 'ranker' | 'coordinator';

/** Metric kind and index of an actor key. */
export function describeActorKey(key: ActorKey): { kind: string; index?: number } {
  if (key.startsWith('item:')) return { kind: 'item_shard', index: Number(key.slice(5)) };
  if (key.startsWith('user:')) return { kind: 'user_partition', index: Number(key.slice(5)) };
  return { kind: key };
}
