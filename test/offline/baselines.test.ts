import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { MatrixFactorization, resolveMfOptions } from '../../offline/baselines/matrix-factorization.js';
import { PopularityRecommender } from '../../offline/baselines/popularity.js';
import { topK } from '../../offline/baselines/top-k.js';
import { evaluateRetrieval, loadRetrievalTask } from '../../offline/eval/retrieval.js';
import { DAY_MS, defaultSplit } from '../../offline/world/format.js';
import { generateWorld } from '../../offline/world/generate.js';
import { WorldWriter } from '../../offline/world/writer.js';

const root = await mkdtemp(join(tmpdir(), 'upnext-baselines-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const START = Date.UTC(2024, 0, 1);

t.test('topK: best first, ties by index, skips and NaN ignored', async (t) => {
  t.same(topK([0.1, 0.9, 0.5, 0.9, NaN, 0.7], 3), [1, 3, 5]);
  t.same(topK([0.1, 0.9, 0.5, 0.9], 2, (i) => i === 1), [3, 2]);
  t.same(topK([1, 2], 5), [1, 0]);
  t.same(topK([1, 2], 0), []);
  const rng = new SeededRng(4);
  const xs = Array.from({ length: 500 }, () => rng.int(50));
  const expected = xs.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i).slice(0, 37).map((o) => o.i);
  t.same(topK(xs, 37), expected, 'matches a full sort');
});

/** A hand-made 3-day world: day 0..0 train, day 1 valid, day 2 test. */
async function handWorld(): Promise<string> {
  const dir = join(root, 'hand');
  const w = await WorldWriter.create(dir);
  const events: InteractionEvent[] = [];
  let n = 0;
  const add = (userId: number, videoId: number, type: EventType, tsMs: number): void => {
    events.push({ eventId: `h${n++}`, userId, videoId, type, tsMs, position: 0, watchSeconds: type === EventType.WATCH ? 5 : 0, context: { device: 'ios', country: 'US', localHour: 10 }, surface: 'home', requestId: '' });
  };
  // Train (day 0): video 10 clicked 3x early, video 20 clicked 2x at the day's end, 30 once; 40 only shown.
  add(1, 10, EventType.CLICK, START + 1000);
  add(2, 10, EventType.CLICK, START + 2000);
  add(3, 10, EventType.CLICK, START + 3000);
  add(1, 20, EventType.CLICK, START + DAY_MS - 2000);
  add(2, 20, EventType.CLICK, START + DAY_MS - 1000);
  add(3, 30, EventType.CLICK, START + DAY_MS - 500);
  add(1, 40, EventType.IMPRESSION, START + DAY_MS - 400);
  const test = [
    [1, 30],
    [1, 10],
    [2, 40],
    [4, 10],
  ];
  const f0 = w.day(0);
  for (const e of events) await f0.write(e);
  await w.close(f0);
  const f1 = w.day(1);
  await w.close(f1);
  const f2 = w.day(2);
  for (const [u, v] of test) {
    await f2.write({ ...(events[0] as InteractionEvent), eventId: `t${u}-${v}`, userId: u as number, videoId: v as number, tsMs: START + 2 * DAY_MS + 1, type: EventType.CLICK });
  }
  await w.close(f2);
  await w.commit({
    name: 'hand', seed: 0, numVideos: 4, numUsers: 4, numCreators: 1, numCategories: 32, days: 3, startMs: START, countries: ['US'],
    split: defaultSplit(3), counts: { events: 11, impressions: 1, clicks: 10, watches: 0, likes: 0, skips: 0 }, source: 'synthetic', generatorVersion: 1, createdAt: '',
  });
  return dir;
}

t.test('popularity: counts, decay and the evaluation rule on a hand world', async (t) => {
  const dir = await handWorld();
  const plain = await PopularityRecommender.fit(dir, { halfLifeDays: Infinity });
  t.same(plain.ranking, [10, 20, 30]);
  // With a 1-hour half-life the two late clicks on 20 outweigh three clicks on 10 a day earlier.
  const decayed = await PopularityRecommender.fit(dir, { halfLifeDays: 1 / 24 });
  t.same(decayed.ranking, [20, 30, 10]);
  t.same(plain.recommend(9, 2, new Set([10])), [20, 30]);

  const task = await loadRetrievalTask(dir);
  t.same(task.userIds, [1, 2, 4]);
  t.same([...(task.exclude.get(1) ?? [])].sort(), [10, 20, 40], 'user 1 shown 10, 20 and 40 in training');
  // plain: user 1 -> [30] (10, 20 excluded): positives {30, 10}: R@10 = 1/2; user 2 -> [30]: positive {40}: 0;
  // user 4 -> [10, 20, 30]: positive {10}: 1. Mean 0.5.
  const r = await evaluateRetrieval(task, (u, k, ex) => plain.recommend(u, k, ex));
  t.equal(r.users, 3);
  t.equal(r.recall_at_10, 0.5);
  // An evaluator must drop excluded ids even if the recommender returns them.
  const r2 = await evaluateRetrieval(task, () => [10, 20, 30]);
  t.equal(r2.recall_at_10, 0.5);
});

t.test('MF and popularity: deterministic, far beyond random, exclusions honoured', async (t) => {
  const g = await generateWorld({ name: 'mf', outDir: root, videos: 4000, users: 2000, days: 5, seed: 5, createdAt: '' });
  t.throws(() => resolveMfOptions({ dim: 0 }), /dim/);
  const a = await MatrixFactorization.fit(g.dir, { epochs: 15, seed: 3 });
  const b = await MatrixFactorization.fit(g.dir, { epochs: 15, seed: 3 });
  t.same(a.recommend(5, 20), b.recommend(5, 20), 'same seed, same model');
  const task = await loadRetrievalTask(g.dir);
  const mf = await evaluateRetrieval(task, (u, k, ex) => a.recommend(u, k, true, ex));
  const rng = new SeededRng(9);
  const random = await evaluateRetrieval(task, (_u, k) => Array.from({ length: k }, () => 1 + rng.int(4000)));
  t.ok(mf.recall_at_100 > 3 * random.recall_at_100, `MF R@100 ${mf.recall_at_100.toFixed(3)} >> random ${random.recall_at_100.toFixed(3)}`);
  const pop = await PopularityRecommender.fit(g.dir);
  const popR = await evaluateRetrieval(task, (u, k, ex) => pop.recommend(u, k, ex));
  t.ok(popR.recall_at_100 > 3 * random.recall_at_100, `popularity R@100 ${popR.recall_at_100.toFixed(3)}`);
  // The user's training positives are excluded by default.
  const uid = task.userIds[0] as number;
  const recs = a.recommend(uid, 50);
  const ex = task.exclude.get(uid) ?? new Set<number>();
  const recsEx = a.recommend(uid, 50, true, ex);
  t.equal(recsEx.filter((id) => ex.has(id)).length, 0);
  t.ok(recs.length === 50 && recsEx.length === 50);
});
