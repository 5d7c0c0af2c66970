/**
 * Opening one ONNX model file of a model version for serving, shared by the towers (item shard,
 * user state) and the bench: the manifest is checked against this build's feature code first
 * (FAILED_PRECONDITION on a mismatch), then one ONNX Runtime session is created with serving options.
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { failedPrecondition } from '../../core/status.js';
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

/**
 * What both towers (item shard, user state) share: the manifest, its feature spec and embedding
 * width, one serving session, its release, and reading the one vector output of a run.
 */
export abstract class ServingTower {
  readonly manifest: ModelManifest;
  readonly spec: FeatureSpec;
  readonly dim: number;
  protected readonly session: ort.InferenceSession;
  /** "item tower" / "user tower", for error messages. */
  readonly #label: string;

  protected constructor(opened: ServingSession, label: string) {
    this.#label = label;
    this.manifest = opened.manifest;
    this.spec = opened.manifest.featureSpec;
    this.dim = opened.manifest.featureSpec.embeddingDim;
    this.session = opened.session;
  }

  /** Runs the session and returns output `name` (FAILED_PRECONDITION when the model lacks it). */
  protected async runVectors(feeds: ort.InferenceSession.FeedsType, name: string): Promise<Float32Array> {
    const result = await this.session.run(feeds);
    const out = result[name];
    if (out === undefined) throw failedPrecondition(`${this.#label} has no output ${name}`);
    return out.data as Float32Array;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
