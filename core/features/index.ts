/**
 * The one feature definition of upnext. The offline pipeline (training rows, tower inputs) and the
 * online actors (user-state, item-shard, coordinator) import these functions; there is no second
 * implementation anywhere. {@link specHash} covers the spec values and the code of every transform,
 * so a model trained against different feature code is refused at load time.
 */
import { deviceIndex, hourBucket, countryBucket, writeContext } from './context.js';
import { applyEventToItem, itemCtrPrior, itemWatchRatioPrior } from './item.js';
import { writeRankerRow } from './ranker-row.js';
import type { FeatureSpec } from './spec.js';
import { featureSpecHash } from './spec.js';
import { durationBucket, idBuckets, writeItemTowerInputs, writeUserTowerInputs } from './towers.js';
import { applyEventToUser, userFeatureCompleteness } from './user.js';

export * from './context.js';
export * from './item.js';
export * from './ranker-row.js';
export * from './spec.js';
export * from './towers.js';
export * from './user.js';

/** Every transform whose code defines a feature's value. */
const FEATURE_TRANSFORMS = [
  deviceIndex,
  hourBucket,
  countryBucket,
  writeContext,
  applyEventToItem,
  itemCtrPrior,
  itemWatchRatioPrior,
  writeRankerRow,
  durationBucket,
  idBuckets,
  writeItemTowerInputs,
  writeUserTowerInputs,
  applyEventToUser,
  userFeatureCompleteness,
] as const;

/** The feature-spec hash stored in model manifests and checked when serving loads a model. */
export function specHash(spec: FeatureSpec): string {
  return featureSpecHash(spec, FEATURE_TRANSFORMS as unknown as readonly ((...args: never[]) => unknown)[]);
}
