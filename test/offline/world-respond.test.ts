import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import { buildFeed, respondToFeed, simulateSession } from '../../offline/world/behaviour.js';
import { Catalog } from '../../offline/world/catalog.js';
import { generateWorld } from '../../offline/world/generate.js';
import { Population } from '../../offline/world/population.js';
import type { SimUser } from '../../offline/world/population.js';

const START = Date.UTC(2024, 0, 1);
const catalog = new Catalog({
  seed: 3,
  numVideos: 2000,
  numCreators: 40,
  numCategories: 8,
  days: 3,
  startMs: START,
  newVideoShare: 0.12,
  clickbaitShare: 0.05,
  zipfExponent: 0.9,
});
const population = new Population(3, 500, catalog);
const NOW = START + 3 * 86_400_000;

t.test('the same feed, user and seed give the same events; another seed other events', async (t) => {
  const user = population.user(17, 3);
  const feed = Array.from({ length: 20 }, (_, i) => 1 + i * 97);
  const setting = { device: 'ios', localHour: 20 };
  const a = respondToFeed(catalog, user, setting, feed, NOW, new SeededRng(42));
  const b = respondToFeed(catalog, user, setting, feed, NOW, new SeededRng(42));
  t.same(a, b);
  t.ok(a.length > 0 && a[0]?.type === EventType.IMPRESSION && a[0].videoId === feed[0], 'the first slot is always seen');
  const others = [43, 44, 45, 46, 47].map((s) => JSON.stringify(respondToFeed(catalog, user, setting, feed, NOW, new SeededRng(s))));
  t.ok(others.some((o) => o !== JSON.stringify(a)), 'other seeds give other sessions');
  for (let i = 1; i < a.length; i++) t.ok((a[i]?.tsMs ?? 0) >= (a[i - 1]?.tsMs ?? 0), `event ${i} not earlier than the one before`);
  const seen = a.filter((e) => e.type === EventType.IMPRESSION).map((e) => e.position);
  t.same(seen, seen.map((_, i) => i), 'slots are seen top-down, each once');
});

t.test('simulateSession is buildFeed + respondToFeed on one RNG stream', async (t) => {
  for (const seed of [1, 2, 3, 99, 12345]) {
    const user = population.user(1 + (seed % 500), 1);
    const setting = { device: 'tv', localHour: 21 };
    const whole = simulateSession(catalog, user, setting, START + 86_400_000 + seed * 1000, new SeededRng(seed));
    const rng = new SeededRng(seed);
    const length = 10 + rng.int(11);
    const feed = buildFeed(catalog, user, START + 86_400_000 + seed * 1000, length, rng);
    t.same(respondToFeed(catalog, user, setting, feed, START + 86_400_000 + seed * 1000, rng), whole, `seed ${seed}`);
  }
});

t.test('a user with one strong interest clicks that category far more than others', async (t) => {
  const fav = 2;
  const interest = new Float32Array(catalog.numCategories).fill(0.02);
  interest[fav] = 1;
  let s = 0;
  const user: SimUser = {
    userId: 1,
    countryIndex: 0,
    device: 'web',
    activity: 1,
    interest,
    interestCum: interest.map((v) => (s += v)),
    favTags: [],
    favCreators: [],
    mainstream: 0.5,
  };
  const inFav: number[] = [];
  const outFav: number[] = [];
  for (let id = 1; id <= catalog.numVideos && (inFav.length < 10 || outFav.length < 10); id++) {
    if (catalog.clickbait[id] === 1 || catalog.trending[id] === 1) continue;
    if (catalog.category[id] === fav && inFav.length < 10) inFav.push(id);
    else if (catalog.category[id] !== fav && outFav.length < 10) outFav.push(id);
  }
  t.equal(inFav.length, 10);
  const clicks = { fav: 0, other: 0 };
  const shown = { fav: 0, other: 0 };
  const favSet = new Set(inFav);
  for (let trial = 0; trial < 600; trial++) {
    // Alternate which kind leads the feed so position bias falls on both equally.
    const a = trial % 2 === 0 ? inFav : outFav;
    const b = trial % 2 === 0 ? outFav : inFav;
    const feed = a.flatMap((id, i) => [id, b[i] as number]);
    for (const e of respondToFeed(catalog, user, { device: 'web', localHour: 12 }, feed, NOW, new SeededRng(1000 + trial))) {
      const key = favSet.has(e.videoId) ? 'fav' : 'other';
      if (e.type === EventType.IMPRESSION) shown[key]++;
      if (e.type === EventType.CLICK) clicks[key]++;
    }
  }
  const ctrFav = clicks.fav / shown.fav;
  const ctrOther = clicks.other / shown.other;
  t.ok(shown.fav > 1000 && shown.other > 1000, `both kinds seen often (${shown.fav}, ${shown.other})`);
  t.ok(ctrFav > 3 * ctrOther, `CTR on the favourite category ${ctrFav.toFixed(3)} > 3 × others ${ctrOther.toFixed(3)}`);
});

t.test('ids outside the catalogue are shown but never clicked', async (t) => {
  const user = population.user(5, 3);
  let impressions = 0;
  for (let trial = 0; trial < 200; trial++) {
    const events = respondToFeed(catalog, user, { device: 'ios', localHour: 20 }, [0, -3, 2001, 99_999, 1.5], NOW, new SeededRng(trial));
    if (events.some((e) => e.type !== EventType.IMPRESSION)) t.fail(`trial ${trial}: an unknown id got more than an impression`);
    impressions += events.length;
  }
  t.ok(impressions > 200 * 3, `unknown slots still count as seen (${impressions} impressions in 200 feeds of 5)`);
});

t.test('generated worlds keep the bytes they had before respondToFeed was extracted', async (t) => {
  // sha256 of each file of `cli.js --videos 3000 --users 1000 --days 3 --seed 5`, taken with the
  // code before the extraction (2026-11-26): any change to the RNG order shows up here.
  const expected: Record<string, string> = {
    'events/day-000.ndjson': '26087494de42d22c10e59f4132cd6598afddd12df103bd1e8dec4ebb7fb7a4b4',
    'events/day-001.ndjson': 'b2467c5ab0233dd181281359c8659ae8eef6e8568f564ffc6a8fa758e3fd1b7c',
    'events/day-002.ndjson': 'd4c79db8bcbdbca9f6d3b13e47bc5e72132296b78f71742f844e632662d8ac54',
    'users.ndjson': 'c5f65a894e4db1a545c7f68c265d7326a64a3eaef49a1ea635596d841b64800c',
    'videos.ndjson': '32e0fbbee9368372e4a3e0fcdf83b388589aaf84b48872460059963375131722',
  };
  const root = await mkdtemp(join(tmpdir(), 'upnext-respond-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const g = await generateWorld({ name: 'golden', outDir: root, videos: 3000, users: 1000, days: 3, seed: 5, createdAt: '2024-01-01T00:00:00Z' });
  for (const [file, sha] of Object.entries(expected)) {
    t.equal(createHash('sha256').update(await readFile(join(g.dir, file))).digest('hex'), sha, file);
  }
});
