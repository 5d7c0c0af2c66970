/**
 * The model a node serves: its manifest, checked against the running code's feature definitions
 * before any actor starts, so a node never serves a model whose inputs would mean something else.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { specHash } from '../../core/features/index.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { failedPrecondition } from '../../core/status.js';
import { loadModelManifest } from '../../offline/onnx/load.js';

/**
 * Loads `dir/manifest.json` and refuses it (FAILED_PRECONDITION) when its stored featureSpecHash
 * differs from what THIS build's feature code computes for the manifest's feature spec (the code
 * that defines the features changed since training).
 */
export async function loadServingModel(dir: string): Promise<ModelManifest> {
  let spec: unknown;
  try {
    spec = (JSON.parse(await readFile(path.join(dir, MODEL_FILES.manifest), 'utf8')) as { featureSpec?: unknown }).featureSpec;
  } catch {
    spec = undefined; // loadModelManifest reports a missing or broken file with the right code
  }
  const running = spec && typeof spec === 'object' ? specHash(spec as ModelManifest['featureSpec']) : '';
  const manifest = await loadModelManifest(dir, running);
  if (!running) throw failedPrecondition(`model manifest in ${dir} has no featureSpec`);
  return manifest;
}
