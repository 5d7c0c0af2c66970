/**
 * The embedding space of a model version: which pair of towers produced its vectors.
 *
 * A user vector is only meaningful against item vectors of the same two towers. Versions that share
 * both towers (a ranker-only retrain, the live `shardmap model` switch) share a space; a version with
 * a new user or item tower starts a new one. During a rolling restart onto new towers, nodes of both
 * spaces serve side by side: every shard search and user-state read names the requester's space, so
 * an actor of another space refuses it or answers in that space (DESIGN §5; docs/protocol.md
 * "Embedding spaces"), instead of searching one tower's vector against the other tower's index, which
 * returns well-formed but meaningless candidates.
 *
 * The id is content-addressed (a hash of both tower files), so no manifest field has to be trusted
 * or kept in step, and a model trained elsewhere gets one too.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { MODEL_FILES } from '../../core/model/contract.js';
import { StatusCode, UpnextError, invalidArgument } from '../../core/status.js';

/** Model version names are one path segment: letters, digits, '.', '_', '-' (not "." or ".."). */
const MODEL_VERSION_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$/;

/** INVALID_ARGUMENT unless `version` is a safe directory name (it comes from KV, a flag or a request). */
export function checkModelVersionName(version: unknown): string {
  if (typeof version !== 'string' || !MODEL_VERSION_PATTERN.test(version)) {
    throw invalidArgument('version', `model version must match [A-Za-z0-9._-]{1,128} (a directory under the models root), got ${JSON.stringify(version)}`);
  }
  return version;
}

/** sha256 (hex) of both tower files of a model version. */
export interface TowerHashes {
  readonly userTower: string;
  readonly itemTower: string;
}

/** Hex characters of an embedding-space id (64 bits: collisions between two live versions are moot). */
export const EMBEDDING_SPACE_CHARS = 16;

/** File hashes by path, size and mtime: a model dir's towers are hashed once per process, not per check. */
const fileHashCache = new Map<string, string>();

/** sha256 (hex) of a file, streamed (towers are tens of MB); NOT_FOUND when it is missing. */
export async function fileSha256(file: string): Promise<string> {
  let s;
  try {
    s = await stat(file);
  } catch (err) {
    throw new UpnextError(StatusCode.NOT_FOUND, `model file ${file} not found: ${(err as Error).message}`);
  }
  const key = `${file}\0${s.size}\0${s.mtimeMs}`;
  const cached = fileHashCache.get(key);
  if (cached !== undefined) return cached;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  const hash = h.digest('hex');
  fileHashCache.set(key, hash);
  return hash;
}

/** sha256 of `modelDir`'s user_tower.onnx and item_tower.onnx. */
export async function towerHashes(modelDir: string): Promise<TowerHashes> {
  const [userTower, itemTower] = await Promise.all([
    fileSha256(path.join(modelDir, MODEL_FILES.userTower)),
    fileSha256(path.join(modelDir, MODEL_FILES.itemTower)),
  ]);
  return { userTower, itemTower };
}

/** The space id of a tower pair: the first {@link EMBEDDING_SPACE_CHARS} hex of sha256(user ':' item). */
export function embeddingSpaceOf(towers: TowerHashes): string {
  return createHash('sha256').update(`${towers.userTower}:${towers.itemTower}`).digest('hex').slice(0, EMBEDDING_SPACE_CHARS);
}

/** The space id of the towers in `modelDir` (hashes cached per file). */
export async function readEmbeddingSpace(modelDir: string): Promise<string> {
  return embeddingSpaceOf(await towerHashes(modelDir));
}

/**
 * Whether an actor serving space `own` may answer a request naming `requested`. An empty string on
 * either side means "not stated" (a tool, a bench, or a node of an older build): accepted, as before
 * spaces existed.
 */
export function spacesAgree(own: string, requested: string | undefined): boolean {
  return own === '' || requested === undefined || requested === '' || own === requested;
}
