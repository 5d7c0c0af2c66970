/**
 * The model the coordinator serves with: version (echoed in responses), feature spec (ranker rows)
 * and P(click) calibration. A manifest whose feature-spec hash does not match this build's feature
 * code for its spec is refused (FAILED_PRECONDITION), as DESIGN.md §5 requires.
 */
import { specHash } from '../../core/features/index.js';
import { validateFeatureSpec } from '../../core/features/spec.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { failedPrecondition } from '../../core/status.js';
import { loadServingManifest } from '../../offline/onnx/load.js';
import type { ServingModel } from './ports.js';

/** Checks a manifest against this build's feature code and extracts what serving needs. */
export function servingModelFromManifest(manifest: ModelManifest): ServingModel {
  let spec: FeatureSpec;
  try {
    spec = validateFeatureSpec(manifest.featureSpec);
  } catch (err) {
    throw failedPrecondition(`model ${String(manifest.version)}: ${(err as Error).message}`);
  }
  const computed = specHash(spec);
  if (computed !== manifest.featureSpecHash) {
    throw failedPrecondition(
      `model ${manifest.version} was trained with feature code ${manifest.featureSpecHash}, this build computes ${computed} for its spec: refusing it`,
    );
  }
  const calibration = manifest.calibration?.click ?? { type: 'identity' as const };
  return Object.freeze({ version: manifest.version, spec, specHash: computed, calibration });
}

/**
 * Reads `modelDir/manifest.json` (NOT_FOUND when missing) and checks it (FAILED_PRECONDITION on a
 * feature-spec mismatch).
 */
export async function loadServingModel(modelDir: string): Promise<ServingModel> {
  return servingModelFromManifest(await loadServingManifest(modelDir));
}
