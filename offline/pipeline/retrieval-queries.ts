/**
 * The retrieval queries a model version ships (core/model/contract.ts `RETRIEVAL_QUERIES_FILE`):
 * the user tower's vectors for a uniform sample of the test days' impressions, each from the user's
 * state and the request's context at that moment: the requests the model will answer, weighted as
 * traffic is (an active user asks more often). Item shards calibrate their IVF nprobe on them
 * (actors/item-shard/nprobe-calibration.ts), so recall is measured on the vectors this model's user
 * tower produces for such requests, not assumed from another model's.
 *
 * Two producers: training writes them with the TypeScript user tower it just trained
 * ({@link trainedRetrievalQueries}); `offline/cli.js queries` adds them to a version that has none
 * (trained before they existed, or elsewhere) with its ONNX user tower ({@link onnxRetrievalQueries}).
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sampleIndices } from '../../core/clock.js';
import { MODEL_FILES, RETRIEVAL_QUERIES_FILE } from '../../core/model/contract.js';
import type { ModelManifest, RetrievalQueriesInfo } from '../../core/model/contract.js';
import { replaceFile } from '../../core/replace-file.js';
import { onnxUserVectors } from '../onnx/parity.js';
import type { TwoTowerModel } from '../models/two-tower.js';
import type { ExampleSet } from './examples.js';
import { SplitId, indicesOf, userBatch } from './examples.js';

/** Rows sampled by default: enough that recall at one nprobe is known to ~±0.3%. */
export const DEFAULT_RETRIEVAL_QUERIES = 1024;

/** Vectors and their manifest entry. */
export interface RetrievalQueries {
  readonly vectors: Float32Array;
  readonly info: RetrievalQueriesInfo;
}

/**
 * Up to `count` example rows drawn uniformly without replacement (seeded) from the test days'
 * impressions (every impression when the world has no test days), ascending.
 */
export function sampleQueryRows(set: ExampleSet, count: number, seed: number): Int32Array {
  let pool = indicesOf(set, SplitId.TEST);
  if (pool.length === 0) pool = Int32Array.from({ length: set.count }, (_, i) => i);
  return sampleIndices(pool, Math.max(0, count), seed);
}

function infoFor(set: ExampleSet, rows: number, seed: number, tower: string): RetrievalQueriesInfo {
  const pool = indicesOf(set, SplitId.TEST).length;
  return {
    file: RETRIEVAL_QUERIES_FILE,
    count: rows,
    dim: set.spec.embeddingDim,
    source: `${tower} on ${rows} of ${pool > 0 ? `${pool} test-day` : `${set.count}`} impressions (uniform, seed ${seed}): each user's state and context when it was shown`,
  };
}

/** Queries from the TypeScript user tower just trained; undefined when the world has no impressions. */
export function trainedRetrievalQueries(set: ExampleSet, model: TwoTowerModel, count = DEFAULT_RETRIEVAL_QUERIES, seed = 1): RetrievalQueries | undefined {
  const idx = sampleQueryRows(set, count, seed);
  if (idx.length === 0) return undefined;
  const vectors = model.userVectors(userBatch(set.users, idx, set.spec), idx.length);
  return { vectors, info: infoFor(set, idx.length, seed, 'user tower (TypeScript, at training)') };
}

/** Queries from a version's user_tower.onnx (`bytes`); undefined when the world has no impressions. */
export async function onnxRetrievalQueries(set: ExampleSet, userTowerOnnx: Uint8Array, count = DEFAULT_RETRIEVAL_QUERIES, seed = 1): Promise<RetrievalQueries | undefined> {
  const idx = sampleQueryRows(set, count, seed);
  if (idx.length === 0) return undefined;
  const vectors = await onnxUserVectors(userTowerOnnx, set.users, idx, set.spec);
  return { vectors, info: infoFor(set, idx.length, seed, 'user_tower.onnx') };
}

/**
 * Adds `queries` to the published version in `modelDir` (manifest `manifest`): the file first, then
 * the manifest naming it, each replaced atomically. A version that already names a file gets the new
 * rows under another name (removed after the manifest moved on), so a shard reading in between sees
 * the old entry with the old file or the new entry with the new file, never a mismatch. The towers
 * are untouched (the embedding space stays); item-shard snapshots of the version built without a
 * calibration are rebuilt, and calibrated, at their next start.
 */
export async function attachRetrievalQueries(modelDir: string, manifest: ModelManifest, queries: RetrievalQueries): Promise<ModelManifest> {
  const old = manifest.retrievalQueries?.file;
  const file = old === undefined ? RETRIEVAL_QUERIES_FILE : `retrieval_queries-${Date.now().toString(36)}.f32`;
  const v = queries.vectors;
  await replaceFile(path.join(modelDir, file), new Uint8Array(v.buffer, v.byteOffset, v.byteLength), 0o644);
  const next: ModelManifest = { ...manifest, retrievalQueries: { ...queries.info, file } };
  await replaceFile(path.join(modelDir, MODEL_FILES.manifest), JSON.stringify(next, null, 2) + '\n', 0o644);
  if (old !== undefined && old !== file) await rm(path.join(modelDir, path.basename(old)), { force: true });
  return next;
}

/** Writes `queries`' file into a version directory being staged (training's publish). */
export async function writeRetrievalQueries(dir: string, queries: RetrievalQueries): Promise<void> {
  const v = queries.vectors;
  await writeFile(path.join(dir, queries.info.file), new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}
