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

/** The user's and the position's columns of a row at `out[base ..]` (the rest untouched). */
function writeUserColumns(out: Float32Array, base: number, user: UserView, position: number): void {
  out[base + 4] = Math.log1p(user.watches) / 8;
  out[base + 5] = (user.clicks + 1) / (user.impressions + 10);
  out[base + 6] = Math.log1p(user.watches > 0 ? user.watchSeconds / user.watches : 0) / 8;
  out[base + 12] = Math.log1p(Math.max(0, position)) / Math.log(101);
}

/** Sum of the user's category affinities (the denominator of `category_affinity_share`). */
function affinityTotal(user: UserView, spec: FeatureSpec): number {
  let total = 0;
  for (let c = 0; c < spec.numCategories; c++) total += user.categoryAffinity[c] ?? 0;
  return total;
}

/**
 * The candidate's columns of a row at `out[base ..]`, given the user's affinities and their total
 * and how often the item's creator is among the user's `recentCreators` recent creators. Assumes
 * the category and duration one-hot ranges are 0.
 */
function writeItemColumns(
  out: Float32Array,
  base: number,
  item: ItemFeatures,
  retrievalScore: number,
  affinity: Float32Array,
  affTotal: number,
  creatorSeen: number,
  recentCreators: number,
  nowMs: number,
  spec: FeatureSpec,
): void {
  const inRange = item.category >= 0 && item.category < spec.numCategories;
  const aff = inRange ? (affinity[item.category] ?? 0) : 0;
  const ageHours = Math.max(0, (nowMs - item.uploadTsMs) / 3_600_000);
  out[base + 0] = retrievalScore;
  out[base + 1] = affTotal > 0 ? aff / affTotal : 0;
  out[base + 2] = Math.log1p(aff) / 4;
  out[base + 3] = recentCreators > 0 ? creatorSeen / recentCreators : 0;
  out[base + 7] = itemCtrPrior(item);
  out[base + 8] = itemWatchRatioPrior(item);
  out[base + 9] = Math.log1p(item.impressions) / 15;
  out[base + 10] = Math.log1p(Math.max(0, item.durationS)) / 8;
  out[base + 11] = Math.log1p(ageHours) / 10;
  let at = base + RANKER_SCALAR_FEATURES.length;
  if (inRange) out[at + item.category] = 1;
  at += spec.numCategories;
  if (item.durationS > 0) out[at + durationBucket(item.durationS)] = 1;
}

/** Offset of the context one-hots in a row. */
function contextOffset(spec: FeatureSpec): number {
  return RANKER_SCALAR_FEATURES.length + spec.numCategories + DURATION_BUCKETS;
}

/**
 * Writes one (user, candidate, context) ranker row at `out[row * F ..]`. `retrievalScore` is the
 * two-tower inner product; `position` is the logged slot in training and `spec.inferencePosition`
 * when serving; `nowMs` dates the item's age.
 *
 * This function IS the row's definition: specHash covers its source, so a model trained with other
 * row code is refused. {@link RankerRowWriter} is its fast form for many rows of one request, kept
 * bit-identical by test/unit/ranker-row.test.ts (a refactor here changes the hash and forces a
 * retrain; change the writer instead when only speed is at stake).
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

/**
 * Writes ranker rows for many candidates of one (user, context, position, now): the columns that
 * depend only on those (user scalars, the affinity total, the context one-hots: hashing the country
 * and summing the affinities for every row was most of the per-row cost) are written once into a
 * template row, and each {@link write} copies it and adds the candidate's columns. The coordinator
 * writes ~450 rows per request. Same bits as {@link writeRankerRow}, the definition (checked by
 * test/unit/ranker-row.test.ts on random users, items and contexts).
 */
export class RankerRowWriter {
  /** F: floats per row. */
  readonly width: number;
  readonly #spec: FeatureSpec;
  readonly #nowMs: number;
  readonly #template: Float32Array;
  readonly #affinity: Float32Array;
  readonly #affTotal: number;
  readonly #recentCreators: readonly number[];
  readonly #creatorCounts = new Map<number, number>();

  constructor(user: UserView, ctx: RequestContext, position: number, nowMs: number, spec: FeatureSpec) {
    this.#spec = spec;
    this.#nowMs = nowMs;
    this.width = rankerRowWidth(spec);
    this.#affinity = user.categoryAffinity;
    this.#affTotal = affinityTotal(user, spec);
    this.#recentCreators = user.recentCreatorIds;
    for (const c of user.recentCreatorIds) this.#creatorCounts.set(c, (this.#creatorCounts.get(c) ?? 0) + 1);
    this.#template = new Float32Array(this.width);
    writeUserColumns(this.#template, 0, user, position);
    writeContext(this.#template, contextOffset(spec), ctx, spec);
  }

  /** Writes the row of `item` (two-tower score `retrievalScore`) at `out[row * width ..]`. */
  write(out: Float32Array, row: number, item: ItemFeatures, retrievalScore: number): void {
    const base = row * this.width;
    out.set(this.#template, base);
    const seen = this.#creatorCounts.get(item.creatorId) ?? 0;
    writeItemColumns(out, base, item, retrievalScore, this.#affinity, this.#affTotal, seen, this.#recentCreators.length, this.#nowMs, this.#spec);
  }
}
