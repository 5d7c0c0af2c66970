import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { SimEvent } from '../../offline/world/behaviour.js';
import { Catalog } from '../../offline/world/catalog.js';
import { feedOutcome, summariseArms } from '../../loadtest/online/metrics.js';
import type { FeedOutcome } from '../../loadtest/online/metrics.js';
import { loadSimWorld, popularityOrder, randomFeed } from '../../loadtest/online/sim-world.js';
import { generateWorld } from '../../offline/world/generate.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const START = Date.UTC(2024, 0, 1);
const catalog = new Catalog({ seed: 9, numVideos: 500, numCreators: 10, numCategories: 4, days: 3, startMs: START, newVideoShare: 0.12, clickbaitShare: 0.05, zipfExponent: 0.9 });

const ev = (videoId: number, type: EventType, position: number, watchSeconds = 0): SimEvent => ({ videoId, type, tsMs: START, position, watchSeconds });

t.test('feedOutcome counts what the user did', async (t) => {
  const d = catalog.durationS[2] ?? 0;
  const o = feedOutcome(catalog, 3, ['RETRIEVAL', 'RETRIEVAL', 'TRENDING'], [
    ev(1, EventType.IMPRESSION, 0),
    ev(2, EventType.IMPRESSION, 1),
    ev(2, EventType.CLICK, 1),
    ev(2, EventType.WATCH, 1, d * 0.95),
    ev(2, EventType.LIKE, 1),
    ev(3, EventType.IMPRESSION, 2),
    ev(3, EventType.CLICK, 2),
    ev(3, EventType.WATCH, 2, 1),
    ev(3, EventType.SKIP, 2),
  ]);
  t.same(
    { ...o, watchSeconds: Math.round(o.watchSeconds * 100) / 100 },
    { items: 3, impressions: 3, clicks: 2, watchSeconds: Math.round((d * 0.95 + 1) * 100) / 100, completions: 1, clickedDurationS: d + (catalog.durationS[3] ?? 0), likes: 1, slotsSeen: [0, 1, 2], slotsClicked: [1, 2], sources: { RETRIEVAL: 2, TRENDING: 1 } },
  );
});

function outcome(clicks: number, watch: number): FeedOutcome {
  return { items: 5, impressions: 5, clicks, watchSeconds: watch, completions: 0, clickedDurationS: 60 * clicks, likes: 0, slotsSeen: [0, 1, 2, 3, 4], slotsClicked: Array.from({ length: clicks }, (_, i) => i), sources: { X: 5 } };
}

t.test('summariseArms: ratio estimates, intervals and paired differences', async (t) => {
  const rng = new SeededRng(1);
  const good = Array.from({ length: 200 }, () => outcome(2 + rng.int(2), 100 + rng.int(50)));
  const bad = Array.from({ length: 200 }, () => outcome(rng.int(2), rng.int(20)));
  const s = summariseArms({ good, bad }, new SeededRng(2), { k: 5, resamples: 300, compare: [['good', 'bad']] });
  const g = s.arms.good!;
  const totalClicks = good.reduce((a, o) => a + o.clicks, 0);
  t.equal(g.metrics.ctr.value, totalClicks / (200 * 5), 'CTR = clicks / impressions over all requests');
  t.ok(g.metrics.ctr.lo < g.metrics.ctr.value && g.metrics.ctr.value < g.metrics.ctr.hi, 'the interval brackets the estimate');
  t.equal(g.ctrBySlot[0]?.value, 1, 'slot 0 is clicked in every good feed');
  t.same(g.impressionsBySlot, [200, 200, 200, 200, 200]);
  t.same(g.sourceShare, { X: 1 });
  const d = s.differences.find((x) => x.metric === 'watchSecondsPerRequest');
  t.ok(d !== undefined && d.diff.lo > 100, `good − bad watch difference excludes 0 by far (${JSON.stringify(d?.diff)})`);
  const same = summariseArms({ a: good, b: good }, new SeededRng(3), { k: 5, resamples: 100, compare: [['a', 'b']] });
  t.same(same.differences.find((x) => x.metric === 'ctr')?.diff, { value: 0, lo: 0, hi: 0 }, 'an arm against itself: exactly 0 (paired resampling)');
  t.throws(() => summariseArms({ a: good, b: bad.slice(1) }, new SeededRng(4), { k: 5 }), TypeError, 'unpaired arms are refused');
});

t.test('popular and random feeds', async (t) => {
  const now = START + 3 * 86_400_000;
  const top = popularityOrder(catalog, now, 10);
  t.equal(top.length, 10);
  for (let i = 1; i < top.length; i++) t.ok((catalog.popularity[top[i - 1]!] ?? 0) >= (catalog.popularity[top[i]!] ?? 0), `rank ${i} not above rank ${i - 1}`);
  const r = randomFeed(catalog, now, 20, new SeededRng(5));
  t.equal(new Set(r).size, 20, 'distinct');
  t.ok(r.every((id) => id >= 1 && id <= 500));
  t.same(randomFeed(catalog, now, 20, new SeededRng(5)), r, 'seeded');
  t.equal(randomFeed(catalog, START - 365 * 86_400_000, 5, new SeededRng(5)).length, 0, 'nothing uploaded yet: empty');
});

t.test('loadSimWorld rebuilds the generated catalogue and refuses worlds it cannot rebuild', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upnext-simworld-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const g = await generateWorld({ name: 'plain', outDir: root, videos: 600, users: 50, days: 3, seed: 4, createdAt: '2024-01-01T00:00:00Z' });
  const w = await loadSimWorld(g.dir);
  t.equal(w.endMs, START + 3 * 86_400_000);
  t.equal(w.catalog.numVideos, 600);
  t.equal(w.population.record(7).device, w.population.user(7, 3).device);
  const odd = await generateWorld({ name: 'odd', outDir: root, videos: 600, users: 50, days: 3, seed: 4, newVideoShare: 0.5, createdAt: '2024-01-01T00:00:00Z' });
  await t.rejects(loadSimWorld(odd.dir), /differs from the catalogue rebuilt/);
});
