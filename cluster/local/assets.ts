/**
 * The world and models a local cluster serves, generated and trained on first use and cached:
 * a world by its parameters (videos, users, days, seed), a model version by (world, feature-spec
 * hash, the MMoE's widths), so later starts reuse both, and a change to the feature code or to
 * DEFAULT_MMOE_WIDTHS trains a new version beside the old one.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_FEATURE_SPEC, specHash } from '../../core/features/index.js';
import { generateWorld } from '../../offline/world/generate.js';
import { readWorldManifest, worldExists } from '../../offline/world/reader.js';
import { trainModels } from '../../offline/pipeline/train.js';
import { mmoeWidthsTag } from '../../offline/models/mmoe.js';
import { DEFAULT_RANKER_EPOCHS, FIXED_RANKER_EPOCHS, rankerEpochsTag } from '../../offline/pipeline/fit.js';
import { loadServingModel } from '../node/model.js';

/**
 * Name of the model version trained for a local world: `<world>-<feature-spec hash>-<MMoE widths>`,
 * e.g. "local-1000000v-20000u-5d-s1-eb07a59b270d-r64-4x32-16", and `-<ranker epochs rule>` (e.g.
 * "-ev") when the default epochs are not the fixed 2 that versions were trained with before the
 * rule was named. A change of features, widths or epochs rule trains a new version instead of
 * serving one trained another way under the same name.
 */
export function localModelVersion(world: string): string {
  const epochs = DEFAULT_RANKER_EPOCHS === FIXED_RANKER_EPOCHS ? '' : `-${rankerEpochsTag()}`;
  return `${world}-${specHash(DEFAULT_FEATURE_SPEC).slice(0, 12)}-${mmoeWidthsTag()}${epochs}`;
}

/** Options of {@link ensureLocalAssets}. */
export interface LocalAssetsOptions {
  /** Parent folder of worlds. Default "data/worlds". */
  readonly worldsDir?: string;
  /** Parent folder of model versions. Default "models". */
  readonly modelsDir?: string;
  /** Videos in the world. Default {@link DEFAULT_LOCAL_WORLD}.videos. */
  readonly videos?: number;
  /** User ids in the world. Default {@link DEFAULT_LOCAL_WORLD}.users. */
  readonly users?: number;
  /** Simulated days (≥ 3). Default {@link DEFAULT_LOCAL_WORLD}.days. */
  readonly days?: number;
  /** World and training seed. Default 1. */
  readonly seed?: number;
  /** Progress bars on stderr while generating and training. Default false. */
  readonly progress?: boolean;
  /** One line per phase. Default silent. */
  readonly log?: (line: string) => void;
}

/** What {@link ensureLocalAssets} returns. */
export interface LocalAssets {
  readonly worldDir: string;
  readonly modelDir: string;
  readonly modelVersion: string;
  /** Wall ms spent generating the world (0 when cached). */
  readonly worldMs: number;
  /** Wall ms spent training (0 when cached). */
  readonly trainMs: number;
}

/**
 * Default world of `make run`, sized so a FIRST start (generate + train + build indexes) stays
 * within ~10-15 minutes on a 2-core machine; `--items/--users` scale it up (to 10M).
 */
export const DEFAULT_LOCAL_WORLD = Object.freeze({ videos: 1_000_000, users: 20_000, days: 5, seed: 1 });

async function worldMatches(dir: string, v: number, u: number, d: number, seed: number): Promise<boolean> {
  if (!(await worldExists(dir))) return false;
  try {
    const m = await readWorldManifest(dir);
    return m.numVideos === v && m.numUsers === u && m.days === d && m.seed === seed && m.source === 'synthetic';
  } catch {
    return false;
  }
}

/** Generates and trains what is missing; reuses what is cached. */
export async function ensureLocalAssets(o: LocalAssetsOptions = {}): Promise<LocalAssets> {
  const log = o.log ?? (() => {});
  const videos = o.videos ?? DEFAULT_LOCAL_WORLD.videos;
  const users = o.users ?? DEFAULT_LOCAL_WORLD.users;
  const days = o.days ?? DEFAULT_LOCAL_WORLD.days;
  const seed = o.seed ?? DEFAULT_LOCAL_WORLD.seed;
  const worldsDir = path.resolve(o.worldsDir ?? 'data/worlds');
  const modelsDir = path.resolve(o.modelsDir ?? 'models');

  // `default` is the name `make train` uses too: reuse it when its parameters match.
  const paramName = `local-${videos}v-${users}u-${days}d-s${seed}`;
  let worldName = paramName;
  if (await worldMatches(path.join(worldsDir, 'default'), videos, users, days, seed)) worldName = 'default';
  const worldDir = path.join(worldsDir, worldName);
  let worldMs = 0;
  if (!(await worldMatches(worldDir, videos, users, days, seed))) {
    log(`generating world ${worldName}: ${videos} videos, ${users} users, ${days} days (seed ${seed})`);
    const t0 = Date.now();
    let last = 0;
    await generateWorld({
      name: worldName,
      outDir: worldsDir,
      videos,
      users,
      days,
      seed,
      ...(o.progress
        ? {
            onProgress: (p) => {
              const now = Date.now();
              if (now - last < 500 && p.phase !== 'done') return;
              last = now;
              process.stderr.write(
                `\r  world: ${p.phase} day ${p.day + 1}/${p.days} ${(p.fraction * 100).toFixed(0)}% ${p.events} events ${(p.elapsedMs / 1000).toFixed(0)} s   ${p.phase === 'done' ? '\n' : ''}`,
              );
            },
          }
        : {}),
    });
    worldMs = Date.now() - t0;
    log(`world ready in ${(worldMs / 1000).toFixed(1)} s: ${worldDir}`);
  } else {
    log(`world cached: ${worldDir}`);
  }

  const modelVersion = localModelVersion(worldName === 'default' ? paramName : worldName);
  const modelDir = path.join(modelsDir, modelVersion);
  let trainMs = 0;
  let cached = false;
  try {
    const m = await loadServingModel(modelDir);
    // the model must have been trained on this world's parameters
    const manifest = JSON.parse(await readFile(path.join(worldDir, 'world.json'), 'utf8')) as { numVideos: number };
    cached = m.version === modelVersion && manifest.numVideos === videos;
  } catch {
    cached = false;
  }
  if (!cached) {
    log(`training models ${modelVersion} on ${worldName}`);
    const t0 = Date.now();
    // 500 evaluation users (default 3000) keep the offline metrics pass short on a 1M-video corpus; `make eval` gives the full figures.
    await trainModels({ worldDir, outDir: modelsDir, version: modelVersion, seed, setLatest: false, evalUsers: 500, progress: o.progress ?? false, log });
    trainMs = Date.now() - t0;
    log(`models ready in ${(trainMs / 1000).toFixed(1)} s: ${modelDir}`);
  } else {
    log(`models cached: ${modelDir}`);
  }
  return { worldDir, modelDir, modelVersion, worldMs, trainMs };
}
