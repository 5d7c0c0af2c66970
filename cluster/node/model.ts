/**
 * The model a node serves: its manifest, checked against the running code's feature definitions
 * before any actor starts, so a node never serves a model whose inputs would mean something else;
 * and the rules for switching a running node to another version live (DESIGN §5: the current version
 * lives in NATS KV, rankers and shards hot-swap on change).
 *
 * A running node switches live when the new version has the served feature spec and ranker width:
 * with the same two towers (compared by content hash) only the ranker and the coordinator's version
 * and calibration change; with other towers the node also rebuilds its item shards on the new towers
 * beside the serving ones and then flips ({@link liveSwitchKind}). A starting node serves the key's
 * version whenever the key is set (its towers may differ: it builds or restores its shards for them),
 * else its own --models ({@link resolveStartModel}); so with a key set, a restart onto another
 * --models stays on the key's version: change towers with `shardmap model`.
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
import { readRetrievalQueries } from '../../actors/model/retrieval-queries.js';

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
  // A declared retrieval-queries file that does not match its entry fails here, before a node
  // starts or switches to the version, not in each item shard's build.
  await readRetrievalQueries(dir, manifest);
  const towers = await towerHashes(dir);
  return { dir, manifest, towers, space: embeddingSpaceOf(towers), rankerWidth: rankerInputWidth(manifest) };
}

function rankerInputWidth(m: ModelManifest): number {
  const declared = m.tensors.ranker.inputs.find((i) => i.name === 'features')?.shape[1];
  return typeof declared === 'number' && declared > 0 ? declared : rankerRowWidth(m.featureSpec);
}

/**
 * How `next` can replace `served` in a running node: 'ranker' when both towers are byte-for-byte
 * the served ones (the ranker and calibration are swapped, shards and partitions keep running),
 * 'towers' when a tower differs (each item shard is rebuilt beside the serving one on the new towers,
 * then the node flips: cluster/node/real-launcher.ts `switchModel`). Throws FAILED_PRECONDITION,
 * naming what differs, when neither can: another feature spec (the partitions' profiles and the
 * shards' item features are the spec's) or another ranker input width. Pure.
 */
export function liveSwitchKind(served: ModelDirInfo, next: ModelDirInfo): 'ranker' | 'towers' {
  const from = served.manifest.version;
  const to = next.manifest.version;
  if (next.manifest.featureSpecHash !== served.manifest.featureSpecHash) {
    throw failedPrecondition(
      `model ${to} has feature spec ${next.manifest.featureSpecHash}, the served ${from} has ${served.manifest.featureSpecHash}: the running shards and partitions compute the served spec; restart the nodes on the new model`,
    );
  }
  if (next.rankerWidth !== served.rankerWidth) {
    throw failedPrecondition(`model ${to}'s ranker takes ${next.rankerWidth} features per row, the served ${from}'s takes ${served.rankerWidth}: restart the nodes on the new model`);
  }
  return next.towers.userTower === served.towers.userTower && next.towers.itemTower === served.towers.itemTower ? 'ranker' : 'towers';
}

/**
 * Throws FAILED_PRECONDITION unless `next` can replace `served` with a ranker-only switch (same
 * towers; see {@link liveSwitchKind}): what a retrain that keeps the serving towers must produce
 * (offline/logged/publish.ts).
 */
export function checkLiveSwitch(served: ModelDirInfo, next: ModelDirInfo): void {
  if (liveSwitchKind(served, next) === 'ranker') return;
  const key = served.towers.userTower !== next.towers.userTower ? 'userTower' : 'itemTower';
  const file = key === 'userTower' ? MODEL_FILES.userTower : MODEL_FILES.itemTower;
  throw failedPrecondition(
    `model ${next.manifest.version} has a different ${file} than the served ${served.manifest.version} (sha256 ${next.towers[key].slice(0, 12)}… vs ${served.towers[key].slice(0, 12)}…): ` +
      `not a ranker-only switch (a switch to it rebuilds every node's item shards on its towers)`,
  );
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
 * --models directory and that version passes {@link liveSwitchKind} against it (same feature spec
 * and ranker width; its towers may differ: the node builds or restores its shards for them), the
 * node serves the key's version; otherwise its own, with the refusal (logged as
 * `model_switch_refused`). So once the key is set it is what every node serves, restarts included;
 * without a key each node serves its --models.
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
    const next = await readModelDir(o.modelsRoot, key.version);
    liveSwitchKind(own, next);
    o.log({ event: 'model_switched', node: o.node, from: own.manifest.version, to: key.version, keyRevision: key.revision, atStart: true });
    return { served: next, keyRevision: key.revision };
  } catch (err) {
    const refused = modelRefusal(err, key.version, key.revision);
    o.log({ event: 'model_switch_refused', node: o.node, serving: own.manifest.version, version: key.version, keyRevision: key.revision, code: refused.code, message: refused.message, atStart: true });
    return { served: own, keyRevision: key.revision, refused };
  }
}
