/**
 * NATS addressing. One subject per virtual shard / partition; replicas of one shard subscribe with
 * the same queue group so NATS balances across them and fails over when one dies. The cluster name
 * scopes everything, so two clusters (e.g. two integration tests) never collide on one server.
 */

/** NATS subject tokens may not contain '.', '*', '>' or whitespace. */
export function validateClusterName(name: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    throw new TypeError(`cluster name must match [A-Za-z0-9_-]{1,64}, got "${name}"`);
  }
  return name;
}

/**
 * A node name usable as one subject / KV key token (the node's address record `addr.<node>`, its
 * load report, its NATS identity). TypeError otherwise. (shardmap/add-node.ts validateNodeName is
 * stricter: no '='.)
 */
export function validateNodeKeyToken(node: string): string {
  if (!/^[A-Za-z0-9_=-]{1,64}$/.test(node)) throw new TypeError(`node name must match [A-Za-z0-9_=-]{1,64} to be a key token, got "${node}"`);
  return node;
}

export const Subjects = {
  /** ShardSearchRequest → ShardSearchReply, from a requester that states no embedding space. */
  itemSearch: (cluster: string, shard: number) => `upnext.${cluster}.item.${shard}.search`,
  /**
   * ShardSearchRequest → ShardSearchReply in embedding space `space` (16 hex characters,
   * actors/model/embedding-space.ts): only the replicas on that space's towers subscribe, so while two
   * tower pairs serve side by side a search never lands on a replica of the other pair.
   */
  itemSearchInSpace: (cluster: string, shard: number, space: string) => `upnext.${cluster}.item.${shard}.search.${space}`,
  /** ItemAdminRequest → ItemAdminReply (add/remove items: cold start). */
  itemAdmin: (cluster: string, shard: number) => `upnext.${cluster}.item.${shard}.admin`,
  /** UserStateRequest → UserStateReply. */
  userGet: (cluster: string, partition: number) => `upnext.${cluster}.user.${partition}.get`,
  /** Event stream subject of one user partition (JetStream). */
  events: (cluster: string, partition: number) => `upnext.${cluster}.events.${partition}`,
  /** Wildcard covering every partition's events (the stream's subject filter). */
  allEvents: (cluster: string) => `upnext.${cluster}.events.>`,
  /** Popular/trending lists (PopularRequest → CandidateBatch reply). */
  popular: (cluster: string) => `upnext.${cluster}.popular.get`,
  /** A node's status (JSON NodeStatus: map version and running actors), for moves and tools. */
  nodeStatus: (cluster: string, node: string) => `upnext.${cluster}.node.${node}.status`,
  /** Feature log: ServedRows samples of the ranker rows coordinators served (JetStream). */
  served: (cluster: string) => `upnext.${cluster}.served`,
  /** Queue group shared by the replicas of one virtual shard or partition. */
  queueGroup: (cluster: string, kind: 'item' | 'user' | 'popular', index: number) => `${cluster}-${kind}-${index}`,
} as const;

/** JetStream stream holding the interaction events of one cluster. */
export const eventStreamName = (cluster: string) => `UPNEXT_${cluster.replace(/-/g, '_').toUpperCase()}_EVENTS`;
/** JetStream stream holding the feature log (ServedRows) of one cluster. */
export const servedStreamName = (cluster: string) => `UPNEXT_${cluster.replace(/-/g, '_').toUpperCase()}_SERVED`;
/** KV bucket holding the shard map (key "map") and the current model version (key "model"). */
export const clusterKvBucket = (cluster: string) => `upnext_${cluster.replace(/-/g, '_')}_cluster`;
export const KV_KEYS = { shardMap: 'map', model: 'model' } as const;
