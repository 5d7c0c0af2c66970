/**
 * Opening one ONNX model file of a model version for serving, shared by the towers (item shard,
 * user state) and the bench: the manifest is checked against this build's feature code first
 * (FAILED_PRECONDITION on a mismatch), then one ONNX Runtime session is created with serving options.
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelManifest } from '../../core/model/contract.js';
import { loadServingManifest } from '../../offline/onnx/load.js';

/** Session options for serving: one intra-op thread (actors scale by workers, not ORT threads). */
export const SERVING_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

export interface ServingSession {
  readonly manifest: ModelManifest;
  readonly session: ort.InferenceSession;
}

/** Checks `modelDir`'s manifest, then opens `modelDir/file` (e.g. MODEL_FILES.itemTower). */
export async function openServingSession(modelDir: string, file: string): Promise<ServingSession> {
  const manifest = await loadServingManifest(modelDir);
  const session = await ort.InferenceSession.create(path.join(modelDir, file), SERVING_SESSION_OPTIONS);
  return { manifest, session };
}
