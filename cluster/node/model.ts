/**
 * The model a node serves: its manifest, checked against the running code's feature definitions
 * before any actor starts, so a node never serves a model whose inputs would mean something else.
 */
import type { ModelManifest } from '../../core/model/contract.js';
import { loadServingManifest } from '../../offline/onnx/load.js';

/**
 * Loads `dir/manifest.json` and refuses it (FAILED_PRECONDITION) when its stored featureSpecHash
 * differs from what THIS build's feature code computes for the manifest's feature spec (the code
 * that defines the features changed since training).
 */
export function loadServingModel(dir: string): Promise<ModelManifest> {
  return loadServingManifest(dir);
}
