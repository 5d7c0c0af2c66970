/**
 * Loading a model directory's manifest for serving. A model whose feature-spec hash differs from
 * the running code's is refused: its inputs would mean something else (DESIGN.md §5).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
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
