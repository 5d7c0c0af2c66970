import { hashString } from '../hash.js';

/**
 * Parameters of the feature definitions. Offline training and online serving must agree on every
 * value here; the model manifest stores {@link featureSpecHash} and serving refuses a model whose
 * hash differs from the running code's.
 */
export interface FeatureSpec {
  /** Hash buckets for user ids (hashing trick). Default 262144. */
  readonly userIdBuckets: number;
  /** Hash buckets for video ids; shared by the item tower and the user tower's history. Default 262144. */
  readonly videoIdBuckets: number;
  /** Hash buckets for creator ids. Default 16384. */
  readonly creatorIdBuckets: number;
  /** Use two hash functions per id (sum of two embeddings) to cut collisions. Default true. */
  readonly twoHashes: boolean;
  /** Number of content categories (genres); category ids are 0..numCategories-1. Default 32. */
  readonly numCategories: number;
  /** Buckets for hashed country codes. Default 16. */
  readonly countryBuckets: number;
  /** Recent watches fed to the user tower (most recent first). Default 20. */
  readonly historyLength: number;
  /** Two-tower embedding width. Default 64. */
  readonly embeddingDim: number;
  /** Half-life of the user's category affinity, in events. Default 50. */
  readonly affinityHalfLifeEvents: number;
  /** Position encoded at inference (training uses the logged position). Default 0 (top slot). */
  readonly inferencePosition: number;
}

export const DEFAULT_FEATURE_SPEC: FeatureSpec = Object.freeze({
  userIdBuckets: 262_144,
  videoIdBuckets: 262_144,
  creatorIdBuckets: 16_384,
  twoHashes: true,
  numCategories: 32,
  countryBuckets: 16,
  historyLength: 20,
  embeddingDim: 64,
  affinityHalfLifeEvents: 50,
  inferencePosition: 0,
});

/** Validates a spec, throwing a TypeError that names the bad field. */
export function validateFeatureSpec(spec: FeatureSpec): FeatureSpec {
  const positiveInts: (keyof FeatureSpec)[] = [
    'userIdBuckets',
    'videoIdBuckets',
    'creatorIdBuckets',
    'numCategories',
    'countryBuckets',
    'historyLength',
    'embeddingDim',
  ];
  for (const key of positiveInts) {
    const v = spec[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new TypeError(`feature spec ${key} must be a positive integer, got ${String(v)}`);
    }
  }
  if (!(spec.affinityHalfLifeEvents > 0)) {
    throw new TypeError(`feature spec affinityHalfLifeEvents must be > 0, got ${spec.affinityHalfLifeEvents}`);
  }
  if (!Number.isInteger(spec.inferencePosition) || spec.inferencePosition < 0) {
    throw new TypeError(`feature spec inferencePosition must be a non-negative integer`);
  }
  return spec;
}

/**
 * Bump when a transform in core/features changes meaning without changing its width (e.g. a new
 * normalisation constant). {@link featureSpecHash} also covers the code of every transform, so this
 * is a belt to those braces.
 */
export const FEATURE_DEFINITION_REVISION = 1;

/**
 * Hex hash of the spec values, the definition revision and the code of every transform passed
 * (core/features/index.ts passes all of them). Identical across processes running the same build.
 */
export function featureSpecHash(spec: FeatureSpec, transforms: readonly ((...args: never[]) => unknown)[]): string {
  const keys = Object.keys(spec).sort() as (keyof FeatureSpec)[];
  const values = keys.map((k) => `${k}=${String(spec[k])}`).join(';');
  const text = `rev=${FEATURE_DEFINITION_REVISION};${values};${transforms.map((fn) => fn.toString()).join('\n')}`;
  const a = hashString(text, 0x811c9dc5);
  const b = hashString(text, 0x01000193);
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}
