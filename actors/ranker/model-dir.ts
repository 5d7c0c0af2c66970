/**
 * Reads what a ranker replica needs from `models/<version>/`: the ranker.onnx path, the manifest
 * (via offline/onnx/load.ts, the one manifest loader), and the row width F. Refuses
 * (FAILED_PRECONDITION) a model whose feature-spec hash does not match the feature code: the
 * manifest must be self-consistent (specHash(featureSpec) === featureSpecHash, which covers the
 * transforms' code of this build), and, when the running spec is given, its hash must equal the
 * manifest's.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { specHash } from '../../core/features/index.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { validateFeatureSpec } from '../../core/features/spec.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { StatusCode, UpnextError, failedPrecondition } from '../../core/status.js';
import { loadModelManifest, loadServingManifest } from '../../offline/onnx/load.js';

/** A ranker model ready to be loaded by the workers. */
export interface RankerModel {
  /** Absolute path of the model directory. */
  readonly dir: string;
  /** Absolute path of ranker.onnx. */
  readonly onnxPath: string;
  readonly manifest: ModelManifest;
  /** manifest.version, served as the KServe model version. */
  readonly version: string;
  /** Features per row F = rankerRowWidth(manifest.featureSpec). */
  readonly width: number;
}

/** Loads and checks `modelDir`'s manifest. Throws UpnextError NOT_FOUND / FAILED_PRECONDITION. */
export async function readRankerModel(modelDir: string, runningSpec?: FeatureSpec): Promise<RankerModel> {
  const dir = path.resolve(modelDir);
  const onnxPath = path.join(dir, MODEL_FILES.ranker);
  // Without a pinned running spec, the model's own spec is the one to run; this build's code must
  // still hash it to the manifest's hash (the hash covers the transforms' code).
  const manifest =
    runningSpec !== undefined
      ? await loadModelManifest(dir, specHash(checkedSpec(runningSpec, 'running feature spec')))
      : await loadServingManifest(dir);
  const spec = checkedSpec(manifest.featureSpec, `${dir}/${MODEL_FILES.manifest}`);
  const computed = specHash(spec);
  if (computed !== manifest.featureSpecHash) {
    throw failedPrecondition(
      `model ${manifest.version} in ${dir} claims feature-spec hash ${manifest.featureSpecHash}, this build computes ${computed} for its spec: refusing it`,
    );
  }
  try {
    await access(onnxPath);
  } catch (err) {
    throw new UpnextError(StatusCode.NOT_FOUND, `ranker model missing: ${(err as Error).message}`);
  }
  return { dir, onnxPath, manifest, version: manifest.version, width: rankerRowWidth(spec) };
}

function checkedSpec(spec: FeatureSpec, where: string): FeatureSpec {
  try {
    return validateFeatureSpec(spec);
  } catch (err) {
    throw failedPrecondition(`${where}: ${(err as Error).message}`);
  }
}
