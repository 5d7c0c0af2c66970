/**
 * The model a node serves: its manifest, checked against the running code's feature definitions
 * before any actor starts, so a node never serves a model whose inputs would mean something else;
 * and the rule for switching a running node to another version live (DESIGN §5: the current version
 * lives in NATS KV, rankers hot-swap on change).
 *
 * A live switch only swaps the ranker and the coordinator's version and calibration: item shards and
 * user partitions keep the vectors their towers computed. So a version is switchable only when its
 * two towers are byte-for-byte the served ones (compared by content hash), its feature spec is the
 * served one, and its ranker takes rows of the same width. Anything else needs the index rebuilt: a
 * rolling restart of the nodes on the new model.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { StatusCode, UpnextError, failedPrecondition, invalidArgument, toStatus } from '../../core/status.js';
import { loadServingManifest } from '../../offline/onnx/load.js';
import type { TowerHashes } from '../../actors/model/embedding-space.js';
import { checkModelVersionName, embeddingSpaceOf, towerHashes } from '../../actors/model/embedding-space.js';

export { checkModelVersionName };

/**
 * Loads `dir/manifest.json` and refuses it (FAILED_PRECONDITION) when its stored featureSpecHash
 * differs from what THIS build's feature code computes for the manifest's feature spec (the code
 * that defines the features changed since training).
 */
export function loadServingModel(dir: string): Promise<ModelManifest> {
  return loadServingManifest(dir);
}

/** A model directory as the switch rule sees it. */
export interface ModelDirInfo {
  /** Absolute path of `models/<version>/`. */
  readonly dir: string;
  readonly manifest: ModelManifest;
  /** sha256 (hex) of user_tower.onnx and item_tower.onnx. */
  readonly towers: TowerHashes;
  /** Embedding space of the towers (actors/model/embedding-space.ts). */
  readonly space: string;
  /** Ranker input width: the manifest's declared `features` width, else rankerRowWidth(spec). */
  readonly rankerWidth: number;
}

/**
 * Reads `<modelsRoot>/<version>/` for a switch: NOT_FOUND when the directory (or its manifest or a
 * tower) is missing, INVALID_ARGUMENT for a bad version name, FAILED_PRECONDITION when this build
 * refuses the manifest (feature-spec hash) or the manifest names another version than its folder
 * (nodes report the manifest's version, so the two must agree).
 */
export async function readModelDir(modelsRoot: string, version: string): Promise<ModelDirInfo> {
  checkModelVersionName(version);
  const dir = path.resolve(modelsRoot, version);
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new UpnextError(StatusCode.NOT_FOUND, `model version ${version} not found: no directory ${dir}`);
  }
  const info = await readModelDirAt(dir);
  if (info.manifest.version !== version) {
    throw failedPrecondition(`model directory ${dir} holds a manifest of version ${info.manifest.version}, not ${version}: fix its "version" field`);
  }
  return info;
}

/** Like {@link readModelDir} for a directory given by path (a node's --models), without the name check. */
export async function readModelDirAt(modelDir: string): Promise<ModelDirInfo> {
  const dir = path.resolve(modelDir);
  const manifest = await loadServingModel(dir);
  const towers = await towerHashes(dir);
  return { dir, manifest, towers, space: embeddingSpaceOf(towers), rankerWidth: rankerInputWidth(manifest) };
}

function rankerInputWidth(m: ModelManifest): number {
  const declared = m.tensors.ranker.inputs.find((i) => i.name === 'features')?.shape[1];
  return typeof declared === 'number' && declared > 0 ? declared : rankerRowWidth(m.featureSpec);
}

/**
 * Throws FAILED_PRECONDITION, naming what differs, unless `next` can replace `served` live (see the
 * module comment). Pure: compares two {@link ModelDirInfo}s.
 */
export function checkLiveSwitch(served: ModelDirInfo, next: ModelDirInfo): void {
  const from = served.manifest.version;
  const to = next.manifest.version;
  for (const [key, file] of [['userTower', MODEL_FILES.userTower], ['itemTower', MODEL_FILES.itemTower]] as const) {
    if (served.towers[key] !== next.towers[key]) {
      throw failedPrecondition(
        `model ${to} has a different ${file} than the served ${from} (sha256 ${next.towers[key].slice(0, 12)}… vs ${served.towers[key].slice(0, 12)}…): ` +
          `a tower change needs the item index and user vectors rebuilt, i.e. a rolling restart of the nodes on the new model; a live switch only swaps the ranker and calibration`,
      );
    }
  }
  if (next.manifest.featureSpecHash !== served.manifest.featureSpecHash) {
    throw failedPrecondition(
      `model ${to} has feature spec ${next.manifest.featureSpecHash}, the served ${from} has ${served.manifest.featureSpecHash}: the running shards and partitions compute the served spec; restart the nodes on the new model`,
    );
  }
  if (next.rankerWidth !== served.rankerWidth) {
    throw failedPrecondition(`model ${to}'s ranker takes ${next.rankerWidth} features per row, the served ${from}'s takes ${served.rankerWidth}: restart the nodes on the new model`);
  }
}

/** The outcome of a node's last attempt to follow the "model" key, for its status and logs. */
export interface ModelRefusal {
  /** The version the key named. */
  readonly version: string;
  /** KV revision of the key value refused. */
  readonly revision: number;
  /** gRPC status code name, e.g. "FAILED_PRECONDITION". */
  readonly code: string;
  readonly message: string;
}

/** The refusal record of a failed switch to `version` (key revision `revision`). */
export function modelRefusal(err: unknown, version: string, revision: number): ModelRefusal {
  const st = toStatus(err);
  return { version, revision, code: StatusCode[st.code] ?? String(st.code), message: st.message };
}

/** `<modelsRoot>/<version>` when it can replace `served` live; else throws why (see {@link checkLiveSwitch}). */
export async function nextLiveModel(served: ModelDirInfo, modelsRoot: string, version: string): Promise<ModelDirInfo> {
  const next = await readModelDir(modelsRoot, version);
  checkLiveSwitch(served, next);
  return next;
}

/** What a node serves at start, after looking at the cluster's "model" key. */
export interface StartModel {
  readonly served: ModelDirInfo;
  /** Revision of the key value acted on (0: no key). */
  readonly keyRevision: number;
  /** Why the key's version was not taken, when it was not. */
  readonly refused?: ModelRefusal;
}

/**
 * A starting node follows the cluster: when the "model" key names another version than its own
 * --models directory and that version passes {@link checkLiveSwitch} against it, the node serves
 * the key's version; otherwise its own, with the refusal (logged as `model_switch_refused`). A
 * version with other towers is refused on purpose: that is how a rolling restart onto new towers
 * proceeds while the key still names the old version.
 */
export async function resolveStartModel(o: {
  readonly own: ModelDirInfo;
  readonly modelsRoot: string;
  /** The key with its revision, or null when it has never been set. */
  readonly key: { readonly revision: number; readonly version: string } | null;
  readonly node: string;
  readonly log: (event: Record<string, unknown>) => void;
}): Promise<StartModel> {
  const { own, key } = o;
  if (key === null || key.version === own.manifest.version) return { served: own, keyRevision: key?.revision ?? 0 };
  try {
    const next = await nextLiveModel(own, o.modelsRoot, key.version);
    o.log({ event: 'model_switched', node: o.node, from: own.manifest.version, to: key.version, keyRevision: key.revision, atStart: true });
    return { served: next, keyRevision: key.revision };
  } catch (err) {
    const refused = modelRefusal(err, key.version, key.revision);
    o.log({ event: 'model_switch_refused', node: o.node, serving: own.manifest.version, version: key.version, keyRevision: key.revision, code: refused.code, message: refused.message, atStart: true });
    return { served: own, keyRevision: key.revision, refused };
  }
}
