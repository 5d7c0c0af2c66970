/**
 * User towers of other embedding spaces, loaded on demand, so that a partition answers a coordinator
 * that serves other towers in that coordinator's space (actors/model/embedding-space.ts).
 *
 * Why: during a rolling restart onto a model with new towers, nodes of both spaces serve side by
 * side and a user's partition may live on a node of the other space. Its profile (recent watches,
 * counters, affinities) is the same whichever tower reads it, so the partition can embed it with
 * the requester's user tower instead of withholding the embedding, and the request keeps its
 * personalised retrieval. The tower is found at `<models root>/<requester's model version>/`, and is
 * used only when its towers hash to the space the request names and its feature spec is the one the
 * partition's profiles were built with.
 *
 * Limits: at most {@link MAX_FOREIGN_TOWERS} other spaces per thread (a roll involves one), each a
 * user-tower session (~67 MB on the 1M-video world) kept until the process exits; a version that
 * cannot be used is not retried for {@link FOREIGN_RETRY_MS}.
 */
import path from 'node:path';
import { specHash } from '../../core/features/index.js';
import { checkModelVersionName, readEmbeddingSpace } from '../model/embedding-space.js';
import { UserTower } from './user-tower.js';
import type { UserEmbedder } from './user-tower.js';

/** Most other embedding spaces one thread embeds in. */
export const MAX_FOREIGN_TOWERS = 2;
/** After a version could not be used (missing, other towers, other spec), ms before it is tried again. */
export const FOREIGN_RETRY_MS = 10_000;

/** What {@link ForeignUserTowers.stats} reports. */
export interface ForeignTowerStats {
  /** Spaces with a loaded tower. */
  readonly spaces: readonly string[];
  /** Lookups that found no usable tower (missing version, towers or spec differ, limit reached). */
  readonly refusals: number;
}

/** The other-space user towers of one thread for one models root and one feature spec. */
export class ForeignUserTowers {
  readonly #modelsRoot: string;
  readonly #specHash: string;
  readonly #towers = new Map<string, Promise<UserTower | undefined>>();
  readonly #retryAt = new Map<string, number>();
  #refusals = 0;

  constructor(modelsRoot: string, ownSpecHash: string) {
    this.#modelsRoot = modelsRoot;
    this.#specHash = ownSpecHash;
  }

  /** The user tower of `space`, from `<models root>/<modelVersion>/`; undefined when there is no usable one. */
  async get(space: string, modelVersion: string): Promise<UserEmbedder | undefined> {
    const loading = this.#towers.get(space);
    if (loading !== undefined) return loading;
    const key = `${space}\0${modelVersion}`;
    if (space === '' || modelVersion === '' || (this.#retryAt.get(key) ?? 0) > Date.now() || this.#towers.size >= MAX_FOREIGN_TOWERS) {
      this.#refusals++;
      return undefined;
    }
    const p = this.#load(space, modelVersion);
    this.#towers.set(space, p);
    const tower = await p;
    if (tower === undefined) {
      this.#towers.delete(space);
      this.#retryAt.set(key, Date.now() + FOREIGN_RETRY_MS);
      this.#refusals++;
    }
    return tower;
  }

  async #load(space: string, modelVersion: string): Promise<UserTower | undefined> {
    try {
      const dir = path.join(this.#modelsRoot, checkModelVersionName(modelVersion));
      if ((await readEmbeddingSpace(dir)) !== space) return undefined;
      const tower = await UserTower.load(dir);
      if (specHash(tower.spec) !== this.#specHash) {
        await tower.close();
        return undefined;
      }
      return tower;
    } catch {
      // Missing or unreadable version, or a manifest this build refuses: no tower, as for other towers.
      return undefined;
    }
  }

  stats(): ForeignTowerStats {
    return { spaces: [...this.#towers.keys()], refusals: this.#refusals };
  }
}

/** One resolver per (models root, feature spec) in this thread: partitions of one node share the towers. */
const resolvers = new Map<string, ForeignUserTowers>();

/** This thread's {@link ForeignUserTowers} for `modelsRoot` and a spec hash. */
export function foreignUserTowers(modelsRoot: string, ownSpecHash: string): ForeignUserTowers {
  const key = `${modelsRoot}\0${ownSpecHash}`;
  let r = resolvers.get(key);
  if (r === undefined) {
    r = new ForeignUserTowers(modelsRoot, ownSpecHash);
    resolvers.set(key, r);
  }
  return r;
}
