/**
 * Publishing a ranker retrained on logged rows as `models/<version>/`: the serving version's
 * user_tower.onnx and item_tower.onnx (and the retrieval queries their user tower produced, when the
 * manifest names them) copied byte for byte (so the live model switch, cluster/
 * node/model.ts checkLiveSwitch, accepts it: item shards and user partitions keep their vectors),
 * the new ranker.onnx, and a manifest with the serving version's feature spec and tensors, the new
 * calibration, the training data and both rankers' metrics. Written to a staging directory and
 * renamed into place, so a reader never sees half a version. `models/LATEST` is not touched:
 * switching is the operator's decision, after reading the metrics.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { StatusCode, UpnextError } from '../../core/status.js';

/** What goes into the new version. */
export interface LoggedVersion {
  /** Directory of the serving version whose towers are copied. */
  readonly fromDir: string;
  /** Models root; the version goes to `<outDir>/<manifest.version>/`. */
  readonly outDir: string;
  readonly manifest: ModelManifest;
  /** The new ranker.onnx. */
  readonly ranker: Uint8Array;
}

/** Writes the version; ALREADY_EXISTS when `<outDir>/<version>` exists (a published version is never overwritten). Returns its absolute directory. */
export async function publishLoggedVersion(v: LoggedVersion): Promise<string> {
  const dir = resolve(v.outDir, v.manifest.version);
  if (existsSync(dir)) throw new UpnextError(StatusCode.ALREADY_EXISTS, `model version ${v.manifest.version} already exists at ${dir}: pick another --version`);
  const staging = `${dir}.staging-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    await copyFile(join(v.fromDir, MODEL_FILES.userTower), join(staging, MODEL_FILES.userTower));
    await copyFile(join(v.fromDir, MODEL_FILES.itemTower), join(staging, MODEL_FILES.itemTower));
    const queries = v.manifest.retrievalQueries;
    // basename: the entry names a file inside the version directory, never a path out of it.
    if (queries !== undefined) await copyFile(join(v.fromDir, basename(queries.file)), join(staging, basename(queries.file)));
    await writeFile(join(staging, MODEL_FILES.ranker), v.ranker);
    await writeFile(join(staging, MODEL_FILES.manifest), JSON.stringify(v.manifest, null, 2) + '\n');
    await rename(staging, dir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  return dir;
}
