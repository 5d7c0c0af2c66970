/**
 * User towers of other embedding spaces, loaded on demand, so that a partition answers a coordinator
 * that serves other towers in that coordinator's space (actors/model/embedding-space.ts).
 *
 * Why: while nodes of two tower pairs serve side by side (a rolling restart onto new towers, or the
 * moments of a live tower switch), a user's partition may run on a node of the other pair. The
 * profile (recent watches, counters, affinities) is the same whichever tower reads it, so the
 * partition embeds it with the requester's user tower instead of withholding the embedding, and the
 * request keeps its personalised retrieval. The tower is read from `<models root>/<requester's model
 * version>/`, and used only when its manifest's feature spec is the partition's and its towers hash
 * to the space the request names.
 *
 * Loading never blocks a read: {@link ForeignUserTowers.get} answers from what is loaded and starts a
 * load in the background (hashing ~100 MB of towers and opening a session takes ~0.5 s, and the
 * partition's reads and event applies run one after another), so the first requests in a new space
 * are answered without an embedding (the coordinator then serves popular candidates) until it is in.
 *
 * Limits: at most {@link MAX_FOREIGN_TOWERS} loaded per thread; a tower unused for
 * {@link FOREIGN_IDLE_MS} is closed when room is needed; a (space, version) that could not be used
 * is not tried again for {@link FOREIGN_RETRY_MS}; malformed spaces and version names are refused
 * before any file is touched.
 */
import path from 'node:path';
import { EMBEDDING_SPACE_CHARS, checkModelVersionName, readEmbeddingSpace } from '../model/embedding-space.js';
import { loadServingManifest } from '../../offline/onnx/load.js';
import { UserTower } from './user-tower.js';
import type { UserEmbedder } from './user-tower.js';

/** Most other-space user towers loaded in one thread. */
export const MAX_FOREIGN_TOWERS = 2;
/** After a (space, version) could not be used (missing, other towers or spec), ms before it is tried again. */
export const FOREIGN_RETRY_MS = 10_000;
/** A loaded tower unused this long may be closed to make room for another space, ms. */
export const FOREIGN_IDLE_MS = 60_000;
/** Most remembered failures (each expires after FOREIGN_RETRY_MS). */
const MAX_REMEMBERED_FAILURES = 256;

const SPACE_PATTERN = new RegExp(`^[0-9a-f]{${EMBEDDING_SPACE_CHARS}}$`);

/** What {@link ForeignUserTowers.stats} reports. */
export interface ForeignTowerStats {
  /** Spaces with a loaded tower. */
  readonly spaces: readonly string[];
  /** Loads in progress. */
  readonly loading: number;
  /** Loads that found no usable tower (missing version, towers or spec differ). */
  readonly failedLoads: number;
  /** Towers closed to make room. */
  readonly evicted: number;
}

interface Loaded {
  readonly tower: UserTower;
  lastUsedMs: number;
}

/** The other-space user towers of one thread for one models root and one feature spec. */
export class ForeignUserTowers {
  readonly #modelsRoot: string;
  readonly #specHash: string;
  readonly #now: () => number;
  readonly #loaded = new Map<string, Loaded>();
  /** In-flight loads by `space\0version`. */
  readonly #loading = new Map<string, Promise<void>>();
  readonly #retryAt = new Map<string, number>();
  #failedLoads = 0;
  #evicted = 0;

  constructor(modelsRoot: string, ownSpecHash: string, now: () => number = Date.now) {
    this.#modelsRoot = modelsRoot;
    this.#specHash = ownSpecHash;
    this.#now = now;
  }

  /**
   * The user tower of `space` when it is loaded; otherwise undefined, after starting to load it from
   * `<models root>/<modelVersion>/` when that is allowed (see the module comment).
   */
  get(space: string, modelVersion: string): UserEmbedder | undefined {
    const loaded = this.#loaded.get(space);
    if (loaded !== undefined) {
      loaded.lastUsedMs = this.#now();
      return loaded.tower;
    }
    this.#startLoad(space, modelVersion);
    return undefined;
  }

  /** Resolves when the loads started so far have finished (tests, warm-up). */
  async settled(): Promise<void> {
    await Promise.all(this.#loading.values());
  }

  #startLoad(space: string, modelVersion: string): void {
    if (!SPACE_PATTERN.test(space)) return;
    try {
      checkModelVersionName(modelVersion);
    } catch {
      return;
    }
    const key = `${space}\0${modelVersion}`;
    const now = this.#now();
    if (this.#loading.has(key) || (this.#retryAt.get(key) ?? 0) > now) return;
    if (!this.#makeRoom(now)) return;
    const load = this.#load(space, modelVersion).then(
      (tower) => {
        if (tower !== undefined && !this.#loaded.has(space) && this.#makeRoom(this.#now())) {
          this.#loaded.set(space, { tower, lastUsedMs: this.#now() });
          return;
        }
        if (tower !== undefined) void tower.close();
        else this.#fail(key);
      },
      () => this.#fail(key),
    ).finally(() => this.#loading.delete(key));
    this.#loading.set(key, load);
  }

  /** Room for one more loaded tower, closing the least recently used idle one if needed. */
  #makeRoom(now: number): boolean {
    if (this.#loaded.size < MAX_FOREIGN_TOWERS) return true;
    let lru: [string, Loaded] | undefined;
    for (const e of this.#loaded) if (lru === undefined || e[1].lastUsedMs < lru[1].lastUsedMs) lru = e;
    if (lru === undefined || now - lru[1].lastUsedMs < FOREIGN_IDLE_MS) return false;
    this.#loaded.delete(lru[0]);
    this.#evicted++;
    // Idle for a minute: no embed of this thread is still running on it.
    void lru[1].tower.close();
    return true;
  }

  #fail(key: string): void {
    this.#failedLoads++;
    const now = this.#now();
    if (this.#retryAt.size >= MAX_REMEMBERED_FAILURES) {
      for (const [k, at] of this.#retryAt) if (at <= now) this.#retryAt.delete(k);
    }
    if (this.#retryAt.size < MAX_REMEMBERED_FAILURES) this.#retryAt.set(key, now + FOREIGN_RETRY_MS);
  }

  async #load(space: string, modelVersion: string): Promise<UserTower | undefined> {
    const dir = path.join(this.#modelsRoot, modelVersion);
    // The cheap checks first: the manifest's spec (a JSON file), then the towers' hashes.
    const manifest = await loadServingManifest(dir);
    if (manifest.featureSpecHash !== this.#specHash) return undefined;
    if ((await readEmbeddingSpace(dir)) !== space) return undefined;
    return UserTower.load(dir);
  }

  stats(): ForeignTowerStats {
    return { spaces: [...this.#loaded.keys()], loading: this.#loading.size, failedLoads: this.#failedLoads, evicted: this.#evicted };
  }
}

/** One resolver per (models root, feature spec) in this thread: partitions of one node share the towers. */
const resolvers = new Map<string, ForeignUserTowers>();

/** This thread's {@link ForeignUserTowers} for `modelsRoot` and a feature-spec hash. */
export function foreignUserTowers(modelsRoot: string, ownSpecHash: string): ForeignUserTowers {
  const key = `${modelsRoot}\0${ownSpecHash}`;
  let r = resolvers.get(key);
  if (r === undefined) {
    r = new ForeignUserTowers(modelsRoot, ownSpecHash);
    resolvers.set(key, r);
  }
  return r;
}
