import type { RequestContext } from '../events.js';
import { HashSeeds, bucketOf } from '../hash.js';
import { contextWidth, writeContext } from './context.js';
import type { ItemMeta } from './item.js';
import type { FeatureSpec } from './spec.js';

/** The parts of a user's state that features read (a {@link UserProfile} satisfies it). */
export interface UserView {
  readonly userId: number;
  readonly recentVideoIds: readonly number[];
  readonly recentCreatorIds: readonly number[];
  readonly categoryAffinity: Float32Array;
  readonly impressions: number;
  readonly clicks: number;
  readonly watches: number;
  readonly watchSeconds: number;
}

/** Duration bucket edges in seconds: [0,15) [15,30) ... [1200, inf). Unknown (0) gets no bucket. */
export const DURATION_EDGES_S = [15, 30, 60, 120, 300, 600, 1200] as const;
export const DURATION_BUCKETS = DURATION_EDGES_S.length + 1;

export function durationBucket(durationS: number): number {
  let b = 0;
  while (b < DURATION_EDGES_S.length && durationS >= (DURATION_EDGES_S[b] ?? Infinity)) b++;
  return b;
}

/** The two hash buckets of an id (the second equals the first when `twoHashes` is off). */
export function idBuckets(id: number, buckets: number, seed1: number, seed2: number, spec: FeatureSpec): [number, number] {
  const a = bucketOf(id, buckets, seed1);
  return [a, spec.twoHashes ? bucketOf(id, buckets, seed2) : a];
}

/** Width of `user_dense`: context one-hots, normalised category affinity, activity, CTR. */
export function userDenseWidth(spec: FeatureSpec): number {
  return contextWidth(spec) + spec.numCategories + 2;
}

/** Width of `item_dense`: category one-hot, duration bucket one-hot, log duration. */
export function itemDenseWidth(spec: FeatureSpec): number {
  return spec.numCategories + DURATION_BUCKETS + 1;
}

/**
 * Writes one user's user-tower inputs into row `row` of preallocated batch tensors:
 * `userIds` [B,2] (hashed user id, two hashes), `historyIds` [B,H] (hashed recent video ids, most
 * recent first, zero-padded), `historyWeights` [B,H] (1/count on real entries, 0 on padding: the
 * model mean-pools), `userDense` [B, userDenseWidth].
 */
export function writeUserTowerInputs(
  user: UserView,
  ctx: RequestContext,
  spec: FeatureSpec,
  row: number,
  userIds: BigInt64Array,
  historyIds: BigInt64Array,
  historyWeights: Float32Array,
  userDense: Float32Array,
): void {
  const [u1, u2] = idBuckets(user.userId, spec.userIdBuckets, HashSeeds.USER_ID, HashSeeds.USER_ID_2, spec);
  userIds[row * 2] = BigInt(u1);
  userIds[row * 2 + 1] = BigInt(u2);
  const h = spec.historyLength;
  const n = Math.min(h, user.recentVideoIds.length);
  for (let i = 0; i < h; i++) {
    const at = row * h + i;
    if (i < n) {
      const vid = user.recentVideoIds[user.recentVideoIds.length - 1 - i] ?? 0;
      historyIds[at] = BigInt(bucketOf(vid, spec.videoIdBuckets, HashSeeds.VIDEO_ID));
      historyWeights[at] = 1 / n;
    } else {
      historyIds[at] = 0n;
      historyWeights[at] = 0;
    }
  }
  const w = userDenseWidth(spec);
  const base = row * w;
  writeContext(userDense, base, ctx, spec);
  const affBase = base + contextWidth(spec);
  let total = 0;
  for (let c = 0; c < spec.numCategories; c++) total += user.categoryAffinity[c] ?? 0;
  for (let c = 0; c < spec.numCategories; c++) {
    userDense[affBase + c] = total > 0 ? (user.categoryAffinity[c] ?? 0) / total : 0;
  }
  userDense[affBase + spec.numCategories] = Math.log1p(user.watches) / 8;
  userDense[affBase + spec.numCategories + 1] = (user.clicks + 1) / (user.impressions + 10);
}

/**
 * Writes one item's item-tower inputs into row `row`: `itemIds` [B,2] (hashed video id, two
 * hashes), `creatorIds` [B] (hashed creator id), `itemDense` [B, itemDenseWidth].
 */
export function writeItemTowerInputs(
  item: ItemMeta,
  spec: FeatureSpec,
  row: number,
  itemIds: BigInt64Array,
  creatorIds: BigInt64Array,
  itemDense: Float32Array,
): void {
  const [v1, v2] = idBuckets(item.videoId, spec.videoIdBuckets, HashSeeds.VIDEO_ID, HashSeeds.VIDEO_ID_2, spec);
  itemIds[row * 2] = BigInt(v1);
  itemIds[row * 2 + 1] = BigInt(v2);
  creatorIds[row] = BigInt(bucketOf(item.creatorId, spec.creatorIdBuckets, HashSeeds.CREATOR_ID));
  const w = itemDenseWidth(spec);
  const base = row * w;
  itemDense.fill(0, base, base + w);
  if (item.category >= 0 && item.category < spec.numCategories) itemDense[base + item.category] = 1;
  if (item.durationS > 0) itemDense[base + spec.numCategories + durationBucket(item.durationS)] = 1;
  itemDense[base + spec.numCategories + DURATION_BUCKETS] = Math.log1p(Math.max(0, item.durationS)) / 8;
}
