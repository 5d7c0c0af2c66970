/**
 * Loading a model directory's manifest for serving. A model whose feature-spec hash differs from
 * the running code's is refused: its inputs would mean something else (DESIGN.md §5).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { specHash } from '../../core/features/index.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { StatusCode, UpnextError, failedPrecondition } from '../../core/status.js';

/**
 * Reads and checks `dir/manifest.json`. Throws UpnextError NOT_FOUND when the file is missing,
 * FAILED_PRECONDITION when it is not a manifest or when its featureSpecHash differs from
 * `runningSpecHash` (pass `specHash(spec)` from core/features of the running code).
 */
export async function loadModelManifest(dir: string, runningSpecHash: string): Promise<ModelManifest> {
  const path = join(dir, MODEL_FILES.manifest);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UpnextError(StatusCode.NOT_FOUND, `model manifest ${path} not found: ${err instanceof Error ? err.message : String(err)}`);
  }
  let m: Partial<ModelManifest>;
  try {
    m = JSON.parse(text) as Partial<ModelManifest>;
  } catch (err) {
    throw failedPrecondition(`model manifest ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  for (const key of ['version', 'featureSpecHash'] as const) {
    if (typeof m[key] !== 'string') throw failedPrecondition(`model manifest ${path}: field ${key} must be a string`);
  }
  if (m.featureSpec === undefined || m.tensors === undefined || m.calibration === undefined) {
    throw failedPrecondition(`model manifest ${path}: fields featureSpec, tensors and calibration are required`);
  }
  if (m.featureSpecHash !== runningSpecHash) {
    throw failedPrecondition(
      `model ${m.version} in ${dir} was trained with feature spec ${m.featureSpecHash}, but the running code's feature spec is ${runningSpecHash}: ` +
        `retrain the model with this build (make train) or run the build that trained it`,
    );
  }
  return m as ModelManifest;
}

/**
 * Loads a model directory for serving, when the caller runs whatever spec the model was trained
 * with: the check is then that THIS build's feature code hashes the manifest's spec to the hash
 * the manifest records (the hash covers the transforms' code, so a changed feature definition is
 * refused). NOT_FOUND / FAILED_PRECONDITION as {@link loadModelManifest}.
 */
export async function loadServingManifest(dir: string): Promise<ModelManifest> {
  let spec: FeatureSpec | undefined;
  try {
    spec = (JSON.parse(await readFile(join(dir, MODEL_FILES.manifest), 'utf8')) as Partial<ModelManifest>).featureSpec;
  } catch {
    // loadModelManifest reports the missing or unreadable file with the right code.
  }
  if (spec !== undefined && (typeof spec !== 'object' || spec === null)) {
    throw failedPrecondition(`model manifest in ${dir}: featureSpec must be an object`);
  }
  return loadModelManifest(dir, spec === undefined ? '' : specHash(spec));
}

/** Name in `models/LATEST`, the text file naming the current version. */
export const LATEST_FILE = 'LATEST';

/** The version named by `modelsDir/LATEST` (trimmed), NOT_FOUND when there is none. */
export async function readLatestVersion(modelsDir: string): Promise<string> {
  try {
    const v = (await readFile(join(modelsDir, LATEST_FILE), 'utf8')).trim();
    if (v.length === 0) throw new Error('empty file');
    return v;
  } catch (err) {
    throw new UpnextError(StatusCode.NOT_FOUND, `no current model in ${modelsDir} (${LATEST_FILE}: ${err instanceof Error ? err.message : String(err)}); run make train`);
  }
}
