/**
 * Training examples from a world's logs, built with the ONE feature module (core/features). Events
 * are replayed in time order; each user has a {@link UserProfile} (applyEventToUser) and each video
 * its counters (applyEventToItem). At every IMPRESSION the example is written from the state
 * BEFORE that event is applied, so no feature sees its own label. Labels join later events:
 * click = a CLICK of the same (user, video) within {@link CLICK_WINDOW_MS}; watch = the largest
 * WATCH progress of that (user, video) while the impression is the latest one shown.
 *
 * Storage is columnar typed arrays sized from the manifest's impression count.
 */
import type { InteractionEvent, RequestContext } from '../../core/events.js';
import { EventType, UNKNOWN_CONTEXT } from '../../core/events.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { applyEventToItem } from '../../core/features/item.js';
import { RANKER_SCALAR_FEATURES, rankerRowWidth, writeRankerRow } from '../../core/features/ranker-row.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { itemDenseWidth, userDenseWidth, writeItemTowerInputs, writeUserTowerInputs } from '../../core/features/towers.js';
import type { UserProfile } from '../../core/features/user.js';
import { applyEventToUser, newUserProfile } from '../../core/features/user.js';
import type { VideoRecord, WorldManifest } from '../world/format.js';
import { readEventBatches, readVideos, readWorldManifest } from '../world/reader.js';
import type { TowerBatch } from '../models/tower.js';

/** A CLICK counts for an impression of the same (user, video) shown at most this long before. 30 min. */
export const CLICK_WINDOW_MS = 30 * 60_000;

/** Column of the two-tower score in a ranker row (filled once the two-tower is trained). */
export const RETRIEVAL_SCORE_COLUMN = RANKER_SCALAR_FEATURES.indexOf('retrieval_score');

/** Which split a day belongs to. */
export const enum SplitId {
  TRAIN = 0,
  VALID = 1,
  TEST = 2,
  OTHER = 3,
}

/** Item-tower inputs for the whole catalogue (row = index in `videos`). */
export interface Catalogue {
  readonly videos: readonly VideoRecord[];
  readonly indexOf: ReadonlyMap<number, number>;
  readonly itemIds: Int32Array;
  readonly creatorIds: Int32Array;
  readonly itemDense: Float32Array;
}

/** User-tower inputs of `count` rows, ids as Int32 (the engine's index type). */
export interface UserRows {
  count: number;
  userIds: Int32Array;
  historyIds: Int32Array;
  historyWeights: Float32Array;
  userDense: Float32Array;
}

/** Every impression of the world as a training example. */
export interface ExampleSet {
  readonly worldDir: string;
  readonly spec: FeatureSpec;
  readonly manifest: WorldManifest;
  readonly catalogue: Catalogue;
  /** Number of examples (impressions of known videos). */
  readonly count: number;
  readonly split: Uint8Array;
  readonly userId: Float64Array;
  readonly videoIndex: Int32Array;
  /** 1 when clicked within the window. */
  readonly click: Float32Array;
  /** Seconds watched (largest WATCH progress), 0 when none. */
  readonly watchS: Float32Array;
  readonly users: UserRows;
  /** [count, rankerRowWidth(spec)]; the retrieval-score column is 0 until {@link fillRetrievalScores}. */
  readonly ranker: Float32Array;
  /**
   * Every user's profile and last context when the test days begin (what a serving user-state
   * actor would hold then); see {@link usersAtTestRows}.
   */
  readonly usersAtTest: ReadonlyMap<number, { readonly profile: UserProfile; readonly context: RequestContext }>;
}

export function newUserRows(capacity: number, spec: FeatureSpec): UserRows {
  return {
    count: 0,
    userIds: new Int32Array(capacity * 2),
    historyIds: new Int32Array(capacity * spec.historyLength),
    historyWeights: new Float32Array(capacity * spec.historyLength),
    userDense: new Float32Array(capacity * userDenseWidth(spec)),
  };
}

/**
 * Appends one user's tower inputs via core/features' writeUserTowerInputs (BigInt64 scratch rows,
 * copied to Int32: bucket counts are far below 2^31).
 */
function appendUserRow(rows: UserRows, user: UserProfile, ctx: RequestContext, spec: FeatureSpec, scratch: UserScratch): number {
  const n = rows.count++;
  const h = spec.historyLength;
  writeUserTowerInputs(user, ctx, spec, 0, scratch.userIds, scratch.historyIds, scratch.historyWeights, scratch.userDense);
  rows.userIds[n * 2] = Number(scratch.userIds[0]);
  rows.userIds[n * 2 + 1] = Number(scratch.userIds[1]);
  for (let i = 0; i < h; i++) rows.historyIds[n * h + i] = Number(scratch.historyIds[i]);
  rows.historyWeights.set(scratch.historyWeights, n * h);
  rows.userDense.set(scratch.userDense, n * scratch.userDense.length);
  return n;
}

interface UserScratch {
  readonly userIds: BigInt64Array;
  readonly historyIds: BigInt64Array;
  readonly historyWeights: Float32Array;
  readonly userDense: Float32Array;
}

function userScratch(spec: FeatureSpec): UserScratch {
  return {
    userIds: new BigInt64Array(2),
    historyIds: new BigInt64Array(spec.historyLength),
    historyWeights: new Float32Array(spec.historyLength),
    userDense: new Float32Array(userDenseWidth(spec)),
  };
}

/** Item-tower inputs of every video, via writeItemTowerInputs. */
export function buildCatalogue(videos: readonly VideoRecord[], spec: FeatureSpec): Catalogue {
  const n = videos.length;
  const ids = new BigInt64Array(2);
  const creator = new BigInt64Array(1);
  const itemIds = new Int32Array(n * 2);
  const creatorIds = new Int32Array(n);
  const itemDense = new Float32Array(n * itemDenseWidth(spec));
  const indexOf = new Map<number, number>();
  const dense = new Float32Array(itemDenseWidth(spec));
  videos.forEach((v, i) => {
    indexOf.set(v.videoId, i);
    writeItemTowerInputs(v, spec, 0, ids, creator, dense);
    itemIds[i * 2] = Number(ids[0]);
    itemIds[i * 2 + 1] = Number(ids[1]);
    creatorIds[i] = Number(creator[0]);
    itemDense.set(dense, i * dense.length);
  });
  return { videos, indexOf, itemIds, creatorIds, itemDense };
}

/** Rows `idx` of the user rows as a tower batch (copies into `into` when given). */
export function userBatch(rows: UserRows, idx: ArrayLike<number>, spec: FeatureSpec, into?: UserRows): TowerBatch {
  const b = idx.length;
  const out = into ?? newUserRows(b, spec);
  const h = spec.historyLength;
  const w = userDenseWidth(spec);
  for (let i = 0; i < b; i++) {
    const r = idx[i]!;
    out.userIds[i * 2] = rows.userIds[r * 2]!;
    out.userIds[i * 2 + 1] = rows.userIds[r * 2 + 1]!;
    out.historyIds.set(rows.historyIds.subarray(r * h, (r + 1) * h), i * h);
    out.historyWeights.set(rows.historyWeights.subarray(r * h, (r + 1) * h), i * h);
    out.userDense.set(rows.userDense.subarray(r * w, (r + 1) * w), i * w);
  }
  return { ids: [out.userIds, out.historyIds], weights: [undefined, out.historyWeights], dense: out.userDense };
}

/** Rows `idx` of the catalogue as an item-tower batch. */
export function itemBatch(cat: Catalogue, idx: ArrayLike<number>, spec: FeatureSpec): TowerBatch {
  const b = idx.length;
  const w = itemDenseWidth(spec);
  const itemIds = new Int32Array(b * 2);
  const creatorIds = new Int32Array(b);
  const dense = new Float32Array(b * w);
  for (let i = 0; i < b; i++) {
    const r = idx[i]!;
    itemIds[i * 2] = cat.itemIds[r * 2]!;
    itemIds[i * 2 + 1] = cat.itemIds[r * 2 + 1]!;
    creatorIds[i] = cat.creatorIds[r]!;
    dense.set(cat.itemDense.subarray(r * w, (r + 1) * w), i * w);
  }
  return { ids: [itemIds, creatorIds], weights: [undefined, undefined], dense };
}

/** Options of {@link buildExamples}. */
export interface BuildExamplesOptions {
  /** Called after each batch of events with the number of events processed. */
  readonly onProgress?: (events: number) => void;
}

/** Replays every day of the world at `worldDir` into an {@link ExampleSet}. */
export async function buildExamples(worldDir: string, spec: FeatureSpec, opts: BuildExamplesOptions = {}): Promise<ExampleSet> {
  const manifest = await readWorldManifest(worldDir);
  const videos: VideoRecord[] = [];
  for await (const v of readVideos(worldDir)) videos.push(v);
  const catalogue = buildCatalogue(videos, spec);
  const splitOfDay = (day: number): SplitId =>
    manifest.split.trainDays.includes(day) ? SplitId.TRAIN : manifest.split.validDays.includes(day) ? SplitId.VALID : manifest.split.testDays.includes(day) ? SplitId.TEST : SplitId.OTHER;

  const cap = Math.max(1, manifest.counts?.impressions ?? 1 << 16);
  const f = rankerRowWidth(spec);
  let split = new Uint8Array(cap);
  let userId = new Float64Array(cap);
  let videoIndex = new Int32Array(cap);
  let click = new Float32Array(cap);
  let watchS = new Float32Array(cap);
  let ranker = new Float32Array(cap * f);
  let users = newUserRows(cap, spec);
  let n = 0;
  const grow = (): void => {
    const c = split.length * 2;
    const g = <T extends Float32Array | Float64Array | Int32Array | Uint8Array>(a: T, size: number): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a as never);
      return b;
    };
    split = g(split, c);
    userId = g(userId, c);
    videoIndex = g(videoIndex, c);
    click = g(click, c);
    watchS = g(watchS, c);
    ranker = g(ranker, c * f);
    users = {
      count: users.count,
      userIds: g(users.userIds, c * 2),
      historyIds: g(users.historyIds, c * spec.historyLength),
      historyWeights: g(users.historyWeights, c * spec.historyLength),
      userDense: g(users.userDense, c * userDenseWidth(spec)),
    };
  };

  const profiles = new Map<number, UserProfile>();
  const lastContext = new Map<number, RequestContext>();
  const items: ItemFeatures[] = videos.map((v) => ({ videoId: v.videoId, creatorId: v.creatorId, category: v.category, durationS: v.durationS, uploadTsMs: v.uploadTsMs, impressions: 0, clicks: 0, watchRatioSum: 0, watches: 0 }));
  /** Latest impression of each (user, video): example index and time. */
  const shown = new Map<string, { index: number; tsMs: number }>();
  const scratch = userScratch(spec);
  let usersAtTest: Map<number, { profile: UserProfile; context: RequestContext }> | undefined;
  const firstTestDay = Math.min(...manifest.split.testDays);
  let events = 0;

  const snapshotUsers = (): Map<number, { profile: UserProfile; context: RequestContext }> => {
    const out = new Map<number, { profile: UserProfile; context: RequestContext }>();
    for (const [id, p] of profiles) out.set(id, { profile: structuredClone(p), context: lastContext.get(id) ?? UNKNOWN_CONTEXT });
    return out;
  };

  for await (const batch of readEventBatches(worldDir)) {
    for (const ev of batch) {
      const day = Math.floor((ev.tsMs - manifest.startMs) / 86_400_000);
      if (usersAtTest === undefined && day >= firstTestDay) usersAtTest = snapshotUsers();
      const vi = catalogue.indexOf.get(ev.videoId);
      let profile = profiles.get(ev.userId);
      if (profile === undefined) {
        profile = newUserProfile(ev.userId, spec);
        profiles.set(ev.userId, profile);
      }
      lastContext.set(ev.userId, ev.context);
      const item = vi === undefined ? undefined : items[vi]!;
      if (ev.type === EventType.IMPRESSION && vi !== undefined && item !== undefined) {
        if (n === split.length) grow();
        split[n] = splitOfDay(day);
        userId[n] = ev.userId;
        videoIndex[n] = vi;
        appendUserRow(users, profile, ev.context, spec, scratch);
        writeRankerRow(ranker, n, profile, item, 0, ev.context, ev.position, ev.tsMs, spec);
        shown.set(`${ev.userId}:${ev.videoId}`, { index: n, tsMs: ev.tsMs });
        n++;
      } else if (ev.type === EventType.CLICK || ev.type === EventType.WATCH) {
        joinLabel(ev, shown, click, watchS);
      }
      applyEventToUser(profile, ev, item, spec);
      if (item !== undefined) applyEventToItem(item, ev, item.durationS);
    }
    events += batch.length;
    opts.onProgress?.(events);
  }
  usersAtTest ??= snapshotUsers();
  return {
    worldDir,
    spec,
    manifest,
    catalogue,
    count: n,
    split: split.subarray(0, n),
    userId: userId.subarray(0, n),
    videoIndex: videoIndex.subarray(0, n),
    click: click.subarray(0, n),
    watchS: watchS.subarray(0, n),
    users,
    ranker: ranker.subarray(0, n * f),
    usersAtTest,
  };
}

function joinLabel(ev: InteractionEvent, shown: Map<string, { index: number; tsMs: number }>, click: Float32Array, watchS: Float32Array): void {
  const s = shown.get(`${ev.userId}:${ev.videoId}`);
  if (s === undefined) return;
  if (ev.type === EventType.CLICK) {
    if (ev.tsMs - s.tsMs <= CLICK_WINDOW_MS) click[s.index] = 1;
  } else if (ev.watchSeconds > watchS[s.index]!) {
    watchS[s.index] = ev.watchSeconds;
  }
}

/**
 * User-tower rows for `userIds` from their state when the test days begin; a user never seen gets
 * a brand-new profile (what serving does for an unknown user).
 */
export function usersAtTestRows(set: ExampleSet, userIds: readonly number[]): UserRows {
  const rows = newUserRows(userIds.length, set.spec);
  const scratch = userScratch(set.spec);
  for (const id of userIds) {
    const s = set.usersAtTest.get(id);
    appendUserRow(rows, s?.profile ?? newUserProfile(id, set.spec), s?.context ?? UNKNOWN_CONTEXT, set.spec, scratch);
  }
  return rows;
}

/** Indices of the examples in `split`. */
export function indicesOf(set: ExampleSet, split: SplitId): Int32Array {
  let c = 0;
  for (let i = 0; i < set.count; i++) if (set.split[i] === split) c++;
  const out = new Int32Array(c);
  c = 0;
  for (let i = 0; i < set.count; i++) if (set.split[i] === split) out[c++] = i;
  return out;
}
