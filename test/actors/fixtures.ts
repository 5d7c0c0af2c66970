/**
 * Fixtures for the actor tests: a tiny hand-made world (known histories, so assertions can name
 * videos) and a tiny *untrained* two-tower model exported to ONNX with the offline exporter (random
 * initial weights: the actors' plumbing does not need a trained model, and no trainer runs here).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { InteractionEvent } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import { DEFAULT_FEATURE_SPEC, specHash } from '../../core/features/index.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { Calibration, ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { TwoTowerModel } from '../../offline/models/two-tower.js';
import { exportItemTower, exportUserTower } from '../../offline/onnx/export.js';
import { manifestTensors } from '../../offline/onnx/manifest.js';
import { encodeEvent } from '../../offline/world/codec.js';
import type { VideoRecord, WorldManifest } from '../../offline/world/format.js';
import { dayFileName } from '../../offline/world/format.js';
import { userLine, videoLine } from '../../offline/world/writer.js';
import type { ItemFeatures } from '../../core/features/item.js';
import type { CandidateBatchMsg, UserStateReplyMsg } from '../../protos/codec.js';
import { emptyCandidateBatch } from '../../protos/convert.js';

/**
 * A manifest with no model files behind it (empty tensor lists): for code that reads only a model's
 * version, feature spec and calibration (the coordinator's serving model, its server, its metrics).
 */
export function bareManifest(version: string, calibration: Calibration = { type: 'identity' }, spec: FeatureSpec = DEFAULT_FEATURE_SPEC): ModelManifest {
  return {
    version,
    createdAt: new Date(0).toISOString(),
    featureSpec: spec,
    featureSpecHash: specHash(spec),
    files: MODEL_FILES,
    tensors: { userTower: { inputs: [], outputs: [] }, itemTower: { inputs: [], outputs: [] }, ranker: { inputs: [], outputs: [] } },
    calibration: { click: calibration },
    trainingData: {},
    metrics: {},
  };
}

export const TINY_SPEC: FeatureSpec = Object.freeze({
  ...DEFAULT_FEATURE_SPEC,
  userIdBuckets: 1024,
  videoIdBuckets: 4096,
  creatorIdBuckets: 256,
  embeddingDim: 16,
});

/**
 * Writes an untrained two-tower model (user_tower.onnx, item_tower.onnx, manifest.json). Benchmarks
 * pass the default spec and tower sizes (embDim 32, hidden [128]) for realistic run costs.
 */
export async function writeTinyModel(dir: string, version = 'test-v1', seed = 3, spec: FeatureSpec = TINY_SPEC, size: { embDim: number; hidden: number[] } = { embDim: 8, hidden: [16] }): Promise<string> {
  await mkdir(dir, { recursive: true });
  const model = new TwoTowerModel(spec, { ...size, seed });
  await writeFile(path.join(dir, MODEL_FILES.userTower), exportUserTower(model));
  await writeFile(path.join(dir, MODEL_FILES.itemTower), exportItemTower(model));
  const manifest: ModelManifest = {
    version,
    createdAt: new Date(0).toISOString(),
    featureSpec: spec,
    featureSpecHash: specHash(spec),
    files: MODEL_FILES,
    tensors: manifestTensors(spec),
    calibration: { click: { type: 'identity' } },
    trainingData: { world: 'untrained test fixture' },
    metrics: {},
  };
  await writeFile(path.join(dir, MODEL_FILES.manifest), JSON.stringify(manifest, null, 2));
  return dir;
}

export const WORLD_START_MS = Date.UTC(2026, 0, 1);
export const DAY_MS = 86_400_000;

export interface TinyWorld {
  readonly dir: string;
  readonly videos: readonly VideoRecord[];
  readonly events: readonly InteractionEvent[];
}

/** Options of {@link writeTinyWorld}. */
export interface TinyWorldOptions {
  readonly numVideos?: number;
  readonly numUsers?: number;
  readonly days?: number;
}

/**
 * A deterministic world: video v has creator 1000 + v % 37 and category v % 32; user u (1..numUsers)
 * on day d watches videos (u·7 + d·3 + j) % numVideos + 1 for j = 0..2 (impression, click, watch),
 * so user u's last watched video is known in closed form.
 */
export async function writeTinyWorld(dir: string, opts: TinyWorldOptions = {}): Promise<TinyWorld> {
  const numVideos = opts.numVideos ?? 500;
  const numUsers = opts.numUsers ?? 40;
  const days = opts.days ?? 3;
  await mkdir(path.join(dir, 'events'), { recursive: true });
  const videos: VideoRecord[] = [];
  for (let v = 1; v <= numVideos; v++) {
    videos.push({
      videoId: v,
      creatorId: 1000 + (v % 37),
      category: v % 32,
      durationS: 20 + (v % 300),
      uploadTsMs: WORLD_START_MS - v * 3_600_000,
      tags: [v % 8],
      clickbait: false,
      quality: 0.5,
    });
  }
  await writeFile(path.join(dir, 'videos.ndjson'), videos.map((v) => videoLine(v) + '\n').join(''));
  const users = Array.from({ length: numUsers }, (_, i) => ({ userId: i + 1, country: i % 2 === 0 ? 'BR' : 'US', device: i % 3 === 0 ? 'ios' : 'android', activity: 1 }));
  await writeFile(path.join(dir, 'users.ndjson'), users.map((u) => userLine(u) + '\n').join(''));
  const events: InteractionEvent[] = [];
  for (let d = 0; d < days; d++) {
    const dayEvents: InteractionEvent[] = [];
    for (let u = 1; u <= numUsers; u++) {
      for (let j = 0; j < 3; j++) {
        const videoId = ((u * 7 + d * 3 + j) % numVideos) + 1;
        const base = WORLD_START_MS + d * DAY_MS + u * 60_000 + j * 1000;
        const ctx = { device: users[u - 1]?.device ?? 'ios', country: users[u - 1]?.country ?? 'BR', localHour: 20 };
        const mk = (type: EventType, dt: number, watchSeconds = 0): InteractionEvent => ({
          eventId: `e-${d}-${u}-${j}-${type}`,
          userId: u,
          videoId,
          type,
          tsMs: base + dt,
          position: j,
          watchSeconds,
          context: ctx,
          surface: 'home',
          requestId: '',
        });
        dayEvents.push(mk(EventType.IMPRESSION, 0), mk(EventType.CLICK, 100), mk(EventType.WATCH, 200, 15));
      }
    }
    dayEvents.sort((a, b) => a.tsMs - b.tsMs);
    events.push(...dayEvents);
    await writeFile(path.join(dir, 'events', dayFileName(d)), dayEvents.map((e) => encodeEvent(e) + '\n').join(''));
  }
  const manifest: WorldManifest = {
    name: 'tiny-test',
    seed: 1,
    numVideos,
    numUsers,
    numCreators: 37,
    numCategories: 32,
    days,
    startMs: WORLD_START_MS,
    countries: ['BR', 'US'],
    split: { trainDays: [0], validDays: [1], testDays: [2] },
    counts: { events: events.length, impressions: events.length / 3, clicks: events.length / 3, watches: events.length / 3, likes: 0, skips: 0 },
    source: 'synthetic',
    generatorVersion: 1,
    createdAt: new Date(0).toISOString(),
  };
  await writeFile(path.join(dir, 'world.json'), JSON.stringify(manifest, null, 2));
  return { dir, videos, events };
}

/** `n` item-shard rows with ids firstId.. and deterministic metadata and counters. */
export function syntheticItems(n: number, firstId = 1): ItemFeatures[] {
  return Array.from({ length: n }, (_, i) => ({
    videoId: firstId + i,
    creatorId: 500 + (i % 13),
    category: i % 32,
    durationS: 30 + i,
    uploadTsMs: 1_700_000_000_000 + i,
    impressions: i,
    clicks: i % 5,
    watches: i % 3,
    watchRatioSum: (i % 3) * 0.5,
  }));
}

/** A fake item shard's answer: `ids` scored by `score(i)`, features derived from the id, uploaded a day before `nowMs`. */
export function fakeCandidateBatch(ids: readonly number[], score: (i: number) => number, nowMs: number): CandidateBatchMsg {
  const b = emptyCandidateBatch();
  ids.forEach((id, i) => {
    b.videoIds.push(id);
    b.scores.push(score(i));
    b.creatorIds.push(id % 31);
    b.categories.push(id % 7);
    b.durationS.push(60 + (id % 300));
    b.uploadTsMs.push(nowMs - 86_400_000 - id * 1000);
    b.impressions.push(50 + (id % 13));
    b.clicks.push(4 + (id % 5));
    b.watches.push(2 + (id % 3));
    b.watchRatioSums.push(1 + (id % 4) / 4);
  });
  return b;
}

/** A fake user-state reply: a known user with `recent` watches (creators id % 97), affinities c % 3 and a unit embedding. */
export function fakeUserStateReply(userId: number, recent: readonly number[], spec: FeatureSpec = DEFAULT_FEATURE_SPEC): UserStateReplyMsg {
  return {
    known: true,
    userId,
    recentVideoIds: [...recent],
    recentCreatorIds: recent.map((id) => id % 97),
    categoryAffinity: Array.from({ length: spec.numCategories }, (_, c) => c % 3),
    impressions: 10,
    clicks: 2,
    watches: 3,
    watchSeconds: 100,
    embedding: Array.from({ length: spec.embeddingDim }, () => 1 / Math.sqrt(spec.embeddingDim)),
    completeness: 1,
    partition: 0,
    appliedSeq: 0,
  };
}
