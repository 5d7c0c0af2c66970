import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import type { RequestContext } from '../../core/events.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { RANKER_SCALAR_FEATURES, RankerRowWriter, rankerRowWidth, writeRankerRow } from '../../core/features/ranker-row.js';
import { DEFAULT_FEATURE_SPEC as spec } from '../../core/features/spec.js';
import type { UserView } from '../../core/features/towers.js';
import { DURATION_BUCKETS } from '../../core/features/towers.js';

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

// writeRankerRow is the definition (specHash covers its code); the writer is its fast form.
t.test('RankerRowWriter writes the same bits as writeRankerRow, for every row of a request', async (t) => {
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
    items.forEach((item, i) => writeRankerRow(expected, i, user, item, scores[i]!, ctx, position, nowMs, spec));
    // Rows written into a dirty buffer: every column must be overwritten, none left from before.
    const got = new Float32Array(items.length * width).fill(9);
    const writer = new RankerRowWriter(user, ctx, position, nowMs, spec);
    items.forEach((item, i) => writer.write(got, i, item, scores[i]!));
    t.same(Array.from(got), Array.from(expected), `trial ${trial}: writer`);
  }
});

t.test('hand-computed columns of one row (the definition)', async (t) => {
  const aff = new Float32Array(spec.numCategories);
  aff[2] = 3;
  aff[5] = 1;
  const user: UserView = { userId: 1, recentVideoIds: [10, 11], recentCreatorIds: [7, 8, 7, 9], categoryAffinity: aff, impressions: 90, clicks: 9, watches: 0, watchSeconds: 0 };
  const item: ItemFeatures = { videoId: 3, creatorId: 7, category: 2, durationS: 0, uploadTsMs: 0, impressions: 0, clicks: 0, watches: 0, watchRatioSum: 0 };
  const row = new Float32Array(rankerRowWidth(spec));
  writeRankerRow(row, 0, user, item, 0.5, { device: 'ios', country: 'US', localHour: 12 }, 0, 3_600_000, spec);
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
