/**
 * One skew measurement (DESIGN §5: "Skew is measured (KL divergence per feature between logged
 * serving rows and training rows)"): the feature log of a cluster against a sample of a world's
 * training rows, under one feature spec, into a {@link SkewReport}.
 *
 * The spec: the model version's (its manifest, checked against this build's feature code by
 * loadServingManifest) when `modelDir` is given, else `spec` or the build's default. Serving rows
 * logged under another spec hash are skipped and named in the report.
 */
import { basename } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { rankerFeatureNames, rankerRowWidth } from '../../core/features/ranker-row.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { specHash } from '../../core/features/index.js';
import { failedPrecondition } from '../../core/status.js';
import { loadServingManifest } from '../onnx/load.js';
import { DEFAULT_SKEW_BINS, DEFAULT_SMOOTHING_EPSILON, rowsSkew } from './metrics.js';
import { readServedRows } from './reader.js';
import type { SkewReport } from './report.js';
import { DEFAULT_KL_THRESHOLD, skewReport } from './report.js';
import { describeMismatch } from './served-rows.js';
import type { SkewSplit } from './training-rows.js';
import { trainingRows } from './training-rows.js';

/** How the report describes the binning (kept beside the numbers it explains). */
const BINNING_DESCRIPTION =
  '0/1 columns: bins {0},{1}; others: de-duplicated training quantiles k/B (right-closed) plus underflow; one bin for non-finite values; ' +
  'shares smoothed (n/N + eps)/(1 + K eps); KL(serving || training) and PSI in nats';

/** Options of {@link measureSkew}. */
export interface MeasureSkewOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** World directory whose examples are the training side. */
  readonly worldDir: string;
  /** Model version directory: its spec, and its towers score retrieval_score. Default none. */
  readonly modelDir?: string;
  /** Spec when no `modelDir`. Default DEFAULT_FEATURE_SPEC. */
  readonly spec?: FeatureSpec;
  /** Training split. Default 'train'. */
  readonly split?: SkewSplit;
  /** Most serving rows. Default reader's DEFAULT_MAX_SERVED_ROWS (50,000). */
  readonly maxServingRows?: number;
  /** Most training rows. Default DEFAULT_MAX_TRAINING_ROWS (20,000). */
  readonly maxTrainingRows?: number;
  /** Serving rows stored at or after this time (epoch ms). Default from the stream's start. */
  readonly startTimeMs?: number;
  /** Default {@link DEFAULT_SKEW_BINS}. */
  readonly bins?: number;
  /** Default {@link DEFAULT_SMOOTHING_EPSILON}. */
  readonly epsilon?: number;
  /** Default {@link DEFAULT_KL_THRESHOLD}. */
  readonly klThreshold?: number;
  /** Seed of the training sample. Default 1. */
  readonly seed?: number;
  /** Wait of the reader's last fetch, ms. Default the reader's (2000). */
  readonly fetchWaitMs?: number;
  /** Progress/warning lines. Default none. */
  readonly log?: (line: string) => void;
}

/**
 * Reads the feature log, samples the training rows, and returns the report. Throws
 * FAILED_PRECONDITION when no serving row of the spec was found (the message names the skipped
 * hashes, if any), NOT_FOUND when the stream does not exist.
 */
export async function measureSkew(o: MeasureSkewOptions): Promise<SkewReport> {
  const klThreshold = o.klThreshold ?? DEFAULT_KL_THRESHOLD;
  if (!(Number.isFinite(klThreshold) && klThreshold >= 0)) throw new TypeError(`option klThreshold must be a number >= 0, got ${String(klThreshold)}`);
  const bins = o.bins ?? DEFAULT_SKEW_BINS;
  const epsilon = o.epsilon ?? DEFAULT_SMOOTHING_EPSILON;
  const manifest = o.modelDir === undefined ? undefined : await loadServingManifest(o.modelDir);
  const spec = manifest?.featureSpec ?? o.spec ?? DEFAULT_FEATURE_SPEC;
  const hash = manifest?.featureSpecHash ?? specHash(spec);
  const width = rankerRowWidth(spec);

  const served = await readServedRows({
    nc: o.nc,
    cluster: o.cluster,
    featureSpecHash: hash,
    width,
    ...(o.maxServingRows !== undefined ? { maxRows: o.maxServingRows } : {}),
    ...(o.startTimeMs !== undefined ? { startTimeMs: o.startTimeMs } : {}),
    ...(o.fetchWaitMs !== undefined ? { fetchWaitMs: o.fetchWaitMs } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
  });
  const skipped = served.mismatches.map((m) => describeMismatch(m, { featureSpecHash: hash, width }));
  if (served.count === 0) {
    throw failedPrecondition(`no served rows of feature spec ${hash} in ${served.stream}${skipped.length > 0 ? `: ${skipped.join('; ')}` : ' (the stream holds no ServedRows in range)'}`);
  }
  o.log?.(`read ${served.count} served rows (${served.messages} messages) from ${served.stream}`);

  const training = await trainingRows(o.worldDir, spec, {
    ...(o.split !== undefined ? { split: o.split } : {}),
    ...(o.maxTrainingRows !== undefined ? { maxRows: o.maxTrainingRows } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.modelDir !== undefined ? { modelDir: o.modelDir } : {}),
  });
  if (training.count === 0) throw failedPrecondition(`world ${o.worldDir} has no ${training.split} rows`);
  o.log?.(`sampled ${training.count} of ${training.available} ${training.split} rows of ${o.worldDir}`);

  const features = rowsSkew(served.rows, served.count, training.rows, training.count, rankerFeatureNames(spec), { bins, epsilon });
  const iso = (ms: number): string | null => (Number.isFinite(ms) ? new Date(ms).toISOString() : null);
  return skewReport(features, {
    cluster: o.cluster,
    stream: served.stream,
    world: basename(o.worldDir),
    split: training.split,
    model_version: manifest?.version ?? null,
    feature_spec_hash: hash,
    serving_rows: served.count,
    serving_messages: served.messages,
    serving_truncated: served.truncated,
    serving_skipped: skipped,
    serving_malformed: served.malformed + served.undecodable,
    serving_model_versions: served.modelVersions,
    served_from: iso(served.firstServedAtMs),
    served_to: iso(served.lastServedAtMs),
    training_rows: training.count,
    training_rows_available: training.available,
    retrieval_scored: training.retrievalScored,
    bins,
    epsilon,
    kl_threshold: klThreshold,
    binning: BINNING_DESCRIPTION,
    generated_at: new Date().toISOString(),
  });
}
