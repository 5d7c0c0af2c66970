import type { RequestContext } from '../events.js';
import { contextWidth, writeContext } from './context.js';
import type { ItemFeatures } from './item.js';
import { itemCtrPrior, itemWatchRatioPrior } from './item.js';
import type { FeatureSpec } from './spec.js';
import type { UserView } from './towers.js';
import { DURATION_BUCKETS, durationBucket } from './towers.js';

/** Scalar features at the head of every ranker row, in order. */
export const RANKER_SCALAR_FEATURES = [
  'retrieval_score',
  'category_affinity_share',
  'category_affinity_log',
  'creator_seen_share',
  'user_activity',
  'user_ctr',
  'user_mean_watch',
  'item_ctr_prior',
  'item_watch_ratio_prior',
  'item_popularity',
  'item_duration_log',
  'item_age_log',
  'position',
] as const;

/** Index of the position feature (set to `spec.inferencePosition` when serving). */
export const POSITION_FEATURE_INDEX = RANKER_SCALAR_FEATURES.indexOf('position');

/** Width F of one ranker row: scalars, category one-hot, duration one-hot, context one-hots. */
export function rankerRowWidth(spec: FeatureSpec): number {
  return RANKER_SCALAR_FEATURES.length + spec.numCategories + DURATION_BUCKETS + contextWidth(spec);
}

/** Human-readable names of every column of a ranker row (for skew reports and docs). */
export function rankerFeatureNames(spec: FeatureSpec): string[] {
  const names: string[] = [...RANKER_SCALAR_FEATURES];
  for (let c = 0; c < spec.numCategories; c++) names.push(`category_${c}`);
  for (let b = 0; b < DURATION_BUCKETS; b++) names.push(`duration_bucket_${b}`);
  for (let i = 0; i < contextWidth(spec); i++) names.push(`context_${i}`);
  return names;
}

/**
 * Writes one (user, candidate, context) ranker row at `out[row * F ..]`. `retrievalScore` is the
 * two-tower inner product; `position` is the logged slot in training and `spec.inferencePosition`
 * when serving; `nowMs` dates the item's age.
 */
export function writeRankerRow(
  out: Float32Array,
  row: number,
  user: UserView,
  item: ItemFeatures,
  retrievalScore: number,
  ctx: RequestContext,
  position: number,
  nowMs: number,
  spec: FeatureSpec,
): void {
  const f = rankerRowWidth(spec);
  const base = row * f;
  out.fill(0, base, base + f);
  let affTotal = 0;
  for (let c = 0; c < spec.numCategories; c++) affTotal += user.categoryAffinity[c] ?? 0;
  const aff = item.category >= 0 && item.category < spec.numCategories ? (user.categoryAffinity[item.category] ?? 0) : 0;
  let creatorSeen = 0;
  for (const c of user.recentCreatorIds) if (c === item.creatorId) creatorSeen++;
  const ageHours = Math.max(0, (nowMs - item.uploadTsMs) / 3_600_000);

  out[base + 0] = retrievalScore;
  out[base + 1] = affTotal > 0 ? aff / affTotal : 0;
  out[base + 2] = Math.log1p(aff) / 4;
  out[base + 3] = user.recentCreatorIds.length > 0 ? creatorSeen / user.recentCreatorIds.length : 0;
  out[base + 4] = Math.log1p(user.watches) / 8;
  out[base + 5] = (user.clicks + 1) / (user.impressions + 10);
  out[base + 6] = Math.log1p(user.watches > 0 ? user.watchSeconds / user.watches : 0) / 8;
  out[base + 7] = itemCtrPrior(item);
  out[base + 8] = itemWatchRatioPrior(item);
  out[base + 9] = Math.log1p(item.impressions) / 15;
  out[base + 10] = Math.log1p(Math.max(0, item.durationS)) / 8;
  out[base + 11] = Math.log1p(ageHours) / 10;
  out[base + 12] = Math.log1p(Math.max(0, position)) / Math.log(101);
  let at = base + RANKER_SCALAR_FEATURES.length;
  if (item.category >= 0 && item.category < spec.numCategories) out[at + item.category] = 1;
  at += spec.numCategories;
  if (item.durationS > 0) out[at + durationBucket(item.durationS)] = 1;
  at += DURATION_BUCKETS;
  writeContext(out, at, ctx, spec);
}
