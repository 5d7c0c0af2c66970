import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import type { RequestContext } from '../../core/events.js';
import { writeContext } from '../../core/features/context.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { itemCtrPrior, itemWatchRatioPrior } from '../../core/features/item.js';
import { RANKER_SCALAR_FEATURES, RankerRowWriter, rankerRowWidth, writeRankerRow } from '../../core/features/ranker-row.js';
import { DEFAULT_FEATURE_SPEC as spec } from '../../core/features/spec.js';
import type { UserView } from '../../core/features/towers.js';
import { DURATION_BUCKETS, durationBucket } from '../../core/features/towers.js';

/**
 * The row definition as it stood when the feature-spec hash was last changed, written out plainly
 * (one row at a time, every column recomputed): the oracle for RankerRowWriter, which computes the
 * shared columns once per request. Both must write the same bits, or serving drifts from training.
 */
function referenceRow(out: Float32Array, row: number, user: UserView, item: ItemFeatures, score: number, ctx: RequestContext, position: number, nowMs: number): void {
  const f = rankerRowWidth(spec);
  const base = row * f;
  out.fill(0, base, base + f);
  let affTotal = 0;
  for (let c = 0; c < spec.numCategories; c++) affTotal += user.categoryAffinity[c] ?? 0;
  const aff = item.category >= 0 && item.category < spec.numCategories ? (user.categoryAffinity[item.category] ?? 0) : 0;
  let creatorSeen = 0;
  for (const c of user.recentCreatorIds) if (c === item.creatorId) creatorSeen++;
  const ageHours = Math.max(0, (nowMs - item.uploadTsMs) / 3_600_000);
  out[base + 0] = score;
  out[base + 1] = affTotal > 0 ? aff / affTotal : 0;
  out[base + 2] = Math.log1p(aff) / 4;
  out[base + 3] = user.recentCreatorIds.length > 0 ? creatorSeen / user.recentCreatorIds.length : 0;
  out[base + 4] = Math.log1p(user.watches) / 8;
  out[base + 5] = (user.clicks + 1) / (user.impressions + 10);
  out[base + 6] = Math.log1p(user.watches > 0 ? user.watchSeconds / user.watches : 0) / 8;
  out[base + 7] = itemCtrPrior(item);
  out[base + 8] = itemWatchRatioPrior(item);
  out[base + 9] = Math.log1p(item.impressions) / 15;
  out[base + 10] = Math.log1p(Math.max(0, item.durationS)) / 8;
  out[base + 11] = Math.log1p(ageHours) / 10;
  out[base + 12] = Math.log1p(Math.max(0, position)) / Math.log(101);
  let at = base + RANKER_SCALAR_FEATURES.length;
  if (item.category >= 0 && item.category < spec.numCategories) out[at + item.category] = 1;
  at += spec.numCategories;
  if (item.durationS > 0) out[at + durationBucket(item.durationS)] = 1;
  at += DURATION_BUCKETS;
  writeContext(out, at, ctx, spec);
}

function randomUser(rng: SeededRng, recent: number): UserView {
  const aff = new Float32Array(spec.numCategories);
  for (let c = 0; c < aff.length; c++) aff[c] = rng.next() < 0.5 ? 0 : rng.next() * 5;
  return {
    userId: 1 + rng.int(1000),
    recentVideoIds: Array.from({ length: recent }, () => 1 + rng.int(10_000)),
    recentCreatorIds: Array.from({ length: recent }, () => 1 + rng.int(20)),
    categoryAffinity: aff,
    impressions: rng.int(500),
    clicks: rng.int(50),
    watches: rng.int(40),
    watchSeconds: rng.next() * 3000,
  };
}

function randomItem(rng: SeededRng, nowMs: number): ItemFeatures {
  return {
    videoId: 1 + rng.int(1_000_000),
    creatorId: 1 + rng.int(25),
    // Some out-of-range categories and unknown durations: the edge columns must match too.
    category: rng.next() < 0.05 ? spec.numCategories + 3 : rng.int(spec.numCategories),
    durationS: rng.next() < 0.1 ? 0 : rng.next() * 1200,
    uploadTsMs: nowMs - rng.next() * 90 * 86_400_000 + (rng.next() < 0.05 ? 3_600_000 : 0),
    impressions: rng.int(100_000),
    clicks: rng.int(5000),
    watches: rng.int(4000),
    watchRatioSum: rng.next() * 2000,
  };
}

t.test('RankerRowWriter writes the same bits as the one-row definition, for every row of a request', async (t) => {
  const rng = new SeededRng(7);
  const width = rankerRowWidth(spec);
  const contexts: RequestContext[] = [
    { device: 'ios', country: 'US', localHour: 21 },
    { device: 'TV', country: 'br', localHour: 3 },
    { device: 'fridge', country: '', localHour: Number.NaN },
  ];
  for (let trial = 0; trial < 30; trial++) {
    const nowMs = 1.7e12 + trial * 86_400_000;
    const user = randomUser(rng, trial % 3 === 0 ? 0 : 1 + rng.int(50));
    const ctx = contexts[trial % contexts.length]!;
    const position = trial % 2 === 0 ? 0 : rng.int(30);
    const items = Array.from({ length: 60 }, () => randomItem(rng, nowMs));
    const scores = items.map(() => rng.next() * 2 - 1);
    const expected = new Float32Array(items.length * width);
    items.forEach((item, i) => referenceRow(expected, i, user, item, scores[i]!, ctx, position, nowMs));
    // Rows written into a dirty buffer: every column must be overwritten, none left from before.
    const got = new Float32Array(items.length * width).fill(9);
    const writer = new RankerRowWriter(user, ctx, position, nowMs, spec);
    items.forEach((item, i) => writer.write(got, i, item, scores[i]!));
    t.same(Array.from(got), Array.from(expected), `trial ${trial}: writer`);
    const single = new Float32Array(width);
    writeRankerRow(single, 0, user, items[5]!, scores[5]!, ctx, position, nowMs, spec);
    t.same(Array.from(single), Array.from(expected.subarray(5 * width, 6 * width)), `trial ${trial}: writeRankerRow`);
  }
});

t.test('hand-computed columns of one row', async (t) => {
  const aff = new Float32Array(spec.numCategories);
  aff[2] = 3;
  aff[5] = 1;
  const user: UserView = { userId: 1, recentVideoIds: [10, 11], recentCreatorIds: [7, 8, 7, 9], categoryAffinity: aff, impressions: 90, clicks: 9, watches: 0, watchSeconds: 0 };
  const item: ItemFeatures = { videoId: 3, creatorId: 7, category: 2, durationS: 0, uploadTsMs: 0, impressions: 0, clicks: 0, watches: 0, watchRatioSum: 0 };
  const row = new Float32Array(rankerRowWidth(spec));
  new RankerRowWriter(user, { device: 'ios', country: 'US', localHour: 12 }, 0, 3_600_000, spec).write(row, 0, item, 0.5);
  t.equal(row[0], 0.5, 'retrieval score');
  t.equal(row[1], 0.75, 'share of the user affinity in the item category: 3 / 4');
  t.equal(row[2], Math.fround(Math.log1p(3) / 4));
  t.equal(row[3], 0.5, 'two of four recent creators are the item creator');
  t.equal(row[5], Math.fround(0.1), '(9 + 1) / (90 + 10)');
  t.equal(row[6], 0, 'no watches');
  t.equal(row[7], Math.fround(1 / 20), 'CTR prior of an unseen item');
  t.equal(row[11], Math.fround(Math.log1p(1) / 10), 'one hour old');
  t.equal(row[RANKER_SCALAR_FEATURES.length + 2], 1, 'category one-hot');
  const durationStart = RANKER_SCALAR_FEATURES.length + spec.numCategories;
  t.same(Array.from(row.subarray(durationStart, durationStart + DURATION_BUCKETS)), new Array(DURATION_BUCKETS).fill(0), 'no duration bucket for an unknown duration');
});
