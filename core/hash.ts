/**
 * Stable, process-independent hashing of 64-bit ids (carried as JS numbers ≤ 2^53). Used for the
 * hashing trick in features and for shard/partition assignment. Never use String hashing or Map
 * iteration order for these: results must be identical across runs, processes and machines.
 */

/** murmur3's 32-bit finaliser: a strong avalanche on one 32-bit word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * 32-bit hash of a non-negative integer id (< 2^53) under a seed. The id's low and high 32-bit
 * halves are mixed separately so ids that differ only above bit 32 still spread.
 */
export function hashId(id: number, seed: number): number {
  const lo = id >>> 0;
  const hi = Math.floor(id / 4294967296) >>> 0;
  let h = fmix32((lo ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0);
  h = fmix32((h ^ Math.imul(hi + 0x7f4a7c15, 0x27d4eb2f)) >>> 0);
  return h;
}

/** Bucket in [0, buckets) for the hashing trick. */
export function bucketOf(id: number, buckets: number, seed: number): number {
  return hashId(id, seed) % buckets;
}

/** 32-bit FNV-1a of a string, for hashing feature-spec text and string ids (countries, tags). */
export function hashString(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Seeds that fix which hash family each use draws from; changing one re-shards or re-buckets. */
export const HashSeeds = {
  /** item shard: `hashId(video_id, ITEM_SHARD) mod S`. */
  ITEM_SHARD: 0x5eed0001,
  /** user partition: `hashId(user_id, USER_PARTITION) mod P`. */
  USER_PARTITION: 0x5eed0002,
  USER_ID: 0x5eed0101,
  USER_ID_2: 0x5eed0102,
  VIDEO_ID: 0x5eed0201,
  VIDEO_ID_2: 0x5eed0202,
  CREATOR_ID: 0x5eed0301,
  COUNTRY: 0x5eed0401,
  /** deterministic diversity shuffle and exploration choices in the coordinator. */
  POLICY: 0x5eed0501,
} as const;

/** Virtual item shard owning `videoId` among `shardCount` shards. */
export function itemShardOf(videoId: number, shardCount: number): number {
  return hashId(videoId, HashSeeds.ITEM_SHARD) % shardCount;
}

/** Virtual user partition owning `userId` among `partitionCount` partitions. */
export function userPartitionOf(userId: number, partitionCount: number): number {
  return hashId(userId, HashSeeds.USER_PARTITION) % partitionCount;
}

/** The smallest user id (from `from`) that partition `partition` of `partitionCount` owns: a probe's user. */
export function firstUserOfPartition(partition: number, partitionCount: number, from = 0): number {
  if (!Number.isInteger(partition) || partition < 0 || partition >= partitionCount) throw new RangeError(`partition ${partition} is not in 0..${partitionCount - 1}`);
  let userId = from;
  while (userPartitionOf(userId, partitionCount) !== partition) userId++;
  return userId;
}
