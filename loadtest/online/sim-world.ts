/**
 * The synthetic world's ground truth, rebuilt for online evaluation: the Catalog (every video's
 * latent quality, category, tags, clickbait) and the Population (every user's latent tastes) are
 * derived from world.json's seed and sizes exactly as the generator built them, so simulated users
 * answer the cluster's feeds with the same response model that produced the training logs.
 */
import { join } from 'node:path';
import type { SeededRng } from '../../core/clock.js';
import { hashId } from '../../core/hash.js';
import type { Catalog } from '../../offline/world/catalog.js';
import type { VideoRecord, WorldManifest } from '../../offline/world/format.js';
import { WORLD_FILES, worldEndMs } from '../../offline/world/format.js';
import { GENERATOR_VERSION, catalogOf, resolveGenerateOptions } from '../../offline/world/generate.js';
import { DIURNAL, Population } from '../../offline/world/population.js';
import { lineDecoder, readNdjsonBatches, readWorldManifest } from '../../offline/world/reader.js';

/** A world's latent model, ready to simulate users. */
export interface SimWorld {
  readonly dir: string;
  readonly manifest: WorldManifest;
  readonly catalog: Catalog;
  readonly population: Population;
  /** When the world's history ends (epoch ms): the "now" of every simulated session. */
  readonly endMs: number;
  /** Day index of the serving day (the day after the last logged one), for the users' daily drift. */
  readonly servingDay: number;
}

/**
 * Rebuilds a synthetic world's Catalog and Population from `<dir>/world.json`. world.json does not
 * record the generator's share and Zipf options, so this assumes their defaults (new-video share
 * 0.12, clickbait share 0.05, Zipf 0.9), which every world made by `make run`, `make train` and the
 * tests uses. Throws a TypeError for converted datasets (no latent model) and for worlds written by
 * another generator version (the rebuilt catalogue would not match their ids).
 */
export async function loadSimWorld(dir: string): Promise<SimWorld> {
  const manifest = await readWorldManifest(dir);
  if (manifest.source !== 'synthetic') throw new TypeError(`world ${dir} is ${manifest.source}: only synthetic worlds have users to simulate`);
  if (manifest.generatorVersion !== GENERATOR_VERSION) {
    throw new TypeError(`world ${dir} was written by generator version ${manifest.generatorVersion}, this code is version ${GENERATOR_VERSION}`);
  }
  const o = resolveGenerateOptions({
    name: 'online-eval',
    outDir: dir,
    videos: manifest.numVideos,
    users: manifest.numUsers,
    days: manifest.days,
    seed: manifest.seed,
    creators: manifest.numCreators,
    categories: manifest.numCategories,
    startMs: manifest.startMs,
  });
  const catalog = catalogOf(o);
  await checkCatalogue(dir, catalog);
  const population = new Population(o.seed, o.users, catalog);
  return { dir, manifest, catalog, population, endMs: worldEndMs(manifest), servingDay: manifest.days };
}

/** Videos compared between videos.ndjson and the rebuilt catalogue. */
const CHECKED_VIDEOS = 50;

/**
 * Compares the first videos of videos.ndjson with the rebuilt catalogue: a world generated with
 * non-default shares or Zipf exponent (not recorded in world.json) fails here instead of being
 * evaluated against the wrong ground truth.
 */
async function checkCatalogue(dir: string, catalog: Catalog): Promise<void> {
  let n = 0;
  for await (const batch of readNdjsonBatches(join(dir, WORLD_FILES.videos), lineDecoder((l) => JSON.parse(l) as VideoRecord))) {
    for (const v of batch) {
      const mine = catalog.record(v.videoId);
      if (JSON.stringify(mine) !== JSON.stringify({ ...mine, ...v })) {
        throw new TypeError(`world ${dir}: video ${v.videoId} differs from the catalogue rebuilt from world.json (generated with non-default options?)`);
      }
      if (++n >= CHECKED_VIDEOS) return;
    }
  }
}

/** Users above this count are drawn uniformly (an activity table would cost 8 B per user). */
const MAX_WEIGHTED_USERS = 5_000_000;

/**
 * Draws the users who open the app, as the world does: each user in proportion to their expected
 * sessions per day (UserRecord.activity, heavy-tailed log-normal), so heavy users make most
 * requests. Worlds with more than 5M users fall back to uniform ids.
 */
export class UserPicker {
  readonly #cum: Float64Array | undefined;
  readonly #numUsers: number;

  constructor(population: Population) {
    this.#numUsers = population.numUsers;
    if (population.numUsers > MAX_WEIGHTED_USERS) return;
    const cum = new Float64Array(population.numUsers);
    let s = 0;
    for (let u = 1; u <= population.numUsers; u++) {
      s += population.record(u).activity;
      cum[u - 1] = s;
    }
    this.#cum = cum;
  }

  /** 'activity' or 'uniform': how users are drawn. */
  get mode(): 'activity' | 'uniform' {
    return this.#cum === undefined ? 'uniform' : 'activity';
  }

  /** A user id in 1..numUsers. */
  pick(rng: SeededRng): number {
    const cum = this.#cum;
    if (cum === undefined) return 1 + rng.int(this.#numUsers);
    const target = rng.next() * (cum[cum.length - 1] ?? 0);
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cum[mid] ?? 0) <= target) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }
}

/** A local hour drawn from the world's diurnal curve (evening peak), as sessions are placed. */
export function drawLocalHour(rng: SeededRng): number {
  for (let tries = 0; tries < 64; tries++) {
    const h = rng.int(24);
    if (rng.next() < (DIURNAL[h] ?? 1)) return h;
  }
  return 20;
}

/**
 * Video ids by true popularity (the world's latent Zipf weight), most popular first, among videos
 * uploaded by `atMs`: the "popular" arm's feed, the same for every user. Only the first `n` are kept.
 */
export function popularityOrder(catalog: Catalog, atMs: number, n: number): number[] {
  const last = catalog.lastIdAt(atMs);
  const pop = catalog.popularity;
  // One pass keeping the best n in order (n is a feed's length, the catalogue up to millions).
  const top: number[] = [];
  const before = (a: number, b: number) => (pop[a] ?? 0) > (pop[b] ?? 0) || ((pop[a] ?? 0) === (pop[b] ?? 0) && a < b);
  for (let id = 1; id <= last; id++) {
    if (top.length === n && !before(id, top[n - 1] as number)) continue;
    let at = top.length;
    while (at > 0 && before(id, top[at - 1] as number)) at--;
    top.splice(at, 0, id);
    if (top.length > n) top.pop();
  }
  return top;
}

/** `k` distinct videos uploaded by `atMs`, uniformly at random: the "random" arm's feed. */
export function randomFeed(catalog: Catalog, atMs: number, k: number, rng: SeededRng): number[] {
  const last = catalog.lastIdAt(atMs);
  const n = Math.min(k, last);
  const feed: number[] = [];
  const seen = new Set<number>();
  while (feed.length < n) {
    const id = 1 + rng.int(last);
    if (seen.has(id)) continue;
    seen.add(id);
    feed.push(id);
  }
  return feed;
}

/** A per-request seed: the same `(seed, salt, index)` gives the same stream in every arm and run. */
export function requestSeed(seed: number, salt: number, index: number): number {
  return hashId(index, (seed ^ salt) >>> 0);
}
