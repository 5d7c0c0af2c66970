import t from 'tap';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventType } from '../../core/events.js';
import { DEVICES } from '../../core/events.js';
import { generateWorld, resolveGenerateOptions } from '../../offline/world/generate.js';
import { formatProgress } from '../../offline/world/progress.js';
import type { VideoRecord } from '../../offline/world/format.js';
import { DAY_MS, dayOf } from '../../offline/world/format.js';
import { readEventBatches, readUsers, readVideos, readWorldManifest } from '../../offline/world/reader.js';

const root = await mkdtemp(join(tmpdir(), 'upnext-gen-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const createdAt = '2024-01-01T00:00:00.000Z';

async function filesOf(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of ['world.json', 'videos.ndjson', 'users.ndjson']) out.set(name, await readFile(join(dir, name), 'utf8'));
  for (const name of await readdir(join(dir, 'events'))) out.set(name, await readFile(join(dir, 'events', name), 'utf8'));
  return out;
}

t.test('same seed -> same bytes; other seed -> other world', async (t) => {
  const a = await generateWorld({ name: 'a', outDir: root, videos: 2000, users: 1000, days: 5, seed: 7, createdAt });
  const b = await generateWorld({ name: 'b', outDir: root, videos: 2000, users: 1000, days: 5, seed: 7, createdAt });
  const c = await generateWorld({ name: 'c', outDir: root, videos: 2000, users: 1000, days: 5, seed: 8, createdAt });
  const fa = await filesOf(a.dir);
  const fb = await filesOf(b.dir);
  t.same([...fa.keys()], [...fb.keys()]);
  for (const [name, text] of fa) {
    t.equal(name === 'world.json' ? text.replace('"name": "a"', '"name": "b"') : text, fb.get(name), `${name} identical`);
  }
  t.not((await filesOf(c.dir)).get('day-004.ndjson'), fa.get('day-004.ndjson'));
  t.equal(a.manifest.counts.events, b.manifest.counts.events);
});

t.test('a tiny world is well formed and realistic', async (t) => {
  const g = await generateWorld({ name: 'tiny', outDir: root, videos: 2000, users: 1000, days: 5, seed: 3, createdAt });
  const m = await readWorldManifest(g.dir);
  t.same(m.split, { trainDays: [0, 1, 2], validDays: [3], testDays: [4] });
  t.equal(m.numCategories, 32);
  t.equal(m.numCreators, 40);
  const videos = new Map<number, VideoRecord>();
  let prev = 0;
  let unordered = 0;
  for await (const v of readVideos(g.dir)) {
    if (v.videoId <= prev) unordered++;
    prev = v.videoId;
    videos.set(v.videoId, v);
  }
  t.equal(unordered, 0, 'ascending videoId');
  t.equal(videos.size, 2000);
  const durations = [...videos.values()].map((v) => v.durationS);
  t.ok(Math.min(...durations) >= 5 && Math.max(...durations) <= 3600, 'durations within 5 s .. 1 h');
  const cb = [...videos.values()].filter((v) => v.clickbait).length;
  t.ok(cb > 60 && cb < 140, `~5% clickbait (${cb})`);
  const newVideos = [...videos.values()].filter((v) => v.uploadTsMs >= m.startMs);
  t.ok(newVideos.length > 150, `new videos during the days (${newVideos.length})`);
  let users = 0;
  let badUsers = 0;
  for await (const u of readUsers(g.dir)) {
    users++;
    if (!((DEVICES as readonly string[]).includes(u.device) && m.countries.includes(u.country) && u.activity >= 0)) badUsers++;
  }
  t.equal(users, 1000);
  t.equal(badUsers, 0, 'users have a known device, a listed country and an activity');

  const counts = { events: 0, impressions: 0, clicks: 0, watches: 0, likes: 0, skips: 0 };
  const ids = new Set<string>();
  let lastTs = -Infinity;
  let ordered = true;
  let wrongDay = 0;
  let beforeUpload = 0;
  let newVideoImpressions = 0;
  let unknownIds = 0;
  let emptyWatches = 0;
  const positions = new Map<number, { shown: number; clicked: number }>();
  const cbStats = { clicks: 0, shown: 0, ratio: 0, watches: 0 };
  const plainStats = { clicks: 0, shown: 0, ratio: 0, watches: 0 };
  for (let day = 0; day < m.days; day++) {
    for await (const batch of readEventBatches(g.dir, { days: [day] })) {
      for (const e of batch) {
        counts.events++;
        ids.add(e.eventId);
        if (e.tsMs < lastTs) ordered = false;
        lastTs = e.tsMs;
        if (dayOf(e.tsMs, m.startMs) !== day) wrongDay++;
        const v = videos.get(e.videoId);
        if (v === undefined || e.userId < 1 || e.userId > 1000) unknownIds++;
        if (v === undefined) continue;
        if (e.tsMs < v.uploadTsMs) beforeUpload++;
        const st = v.clickbait ? cbStats : plainStats;
        const p = positions.get(e.position) ?? { shown: 0, clicked: 0 };
        positions.set(e.position, p);
        if (e.type === EventType.IMPRESSION) {
          counts.impressions++;
          st.shown++;
          p.shown++;
          if (v.uploadTsMs >= m.startMs) newVideoImpressions++;
        } else if (e.type === EventType.CLICK) {
          counts.clicks++;
          st.clicks++;
          p.clicked++;
        } else if (e.type === EventType.WATCH) {
          counts.watches++;
          st.watches++;
          st.ratio += Math.min(1, e.watchSeconds / v.durationS);
          if (!(e.watchSeconds > 0)) emptyWatches++;
        } else if (e.type === EventType.LIKE) counts.likes++;
        else if (e.type === EventType.SKIP) counts.skips++;
      }
    }
  }
  t.same(counts, m.counts, 'manifest counts match the files');
  t.equal(unknownIds, 0, 'events reference known users and videos');
  t.equal(emptyWatches, 0, 'WATCH events carry seconds');
  t.equal(ids.size, counts.events, 'eventIds unique');
  t.ok(ordered, 'time-ordered within and across files');
  t.equal(wrongDay, 0, 'every event in its UTC day file');
  t.equal(beforeUpload, 0, 'no video shown before its upload');
  t.ok(newVideoImpressions > 500, `cold-start videos get shown (${newVideoImpressions})`);
  const ctr = counts.clicks / counts.impressions;
  t.ok(ctr > 0.05 && ctr < 0.4, `CTR ${ctr.toFixed(3)} plausible`);
  const top = positions.get(0) as { shown: number; clicked: number };
  const deep = [10, 11, 12, 13, 14].map((p) => positions.get(p) ?? { shown: 0, clicked: 0 }).reduce((a, b) => ({ shown: a.shown + b.shown, clicked: a.clicked + b.clicked }));
  t.ok(top.shown > deep.shown / 5, 'deeper slots are reached less often');
  t.ok(top.clicked / top.shown > deep.clicked / deep.shown, 'position bias on clicks');
  t.ok(cbStats.clicks / cbStats.shown > 1.3 * (plainStats.clicks / plainStats.shown), 'clickbait draws more clicks');
  t.ok(cbStats.ratio / cbStats.watches < 0.6 * (plainStats.ratio / plainStats.watches), 'clickbait is watched briefly');
});

t.test('the signal is personal: users click their own categories far beyond popularity', async (t) => {
  const g = await generateWorld({ name: 'signal', outDir: root, videos: 3000, users: 2000, days: 5, seed: 11, createdAt });
  const m = g.manifest;
  const cat = new Map<number, number>();
  for await (const v of readVideos(g.dir)) cat.set(v.videoId, v.category);
  const train = new Map<number, Float64Array>();
  const global = new Float64Array(32);
  for await (const b of readEventBatches(g.dir, { days: m.split.trainDays })) {
    for (const e of b) {
      if (e.type !== EventType.CLICK) continue;
      const c = cat.get(e.videoId) ?? 0;
      let h = train.get(e.userId);
      if (h === undefined) train.set(e.userId, (h = new Float64Array(32)));
      h[c] = (h[c] ?? 0) + 1;
      global[c] = (global[c] ?? 0) + 1;
    }
  }
  const globalTotal = global.reduce((a, b) => a + b, 0);
  const topGlobal = [...global.keys()].sort((a, b) => (global[b] ?? 0) - (global[a] ?? 0)).slice(0, 3);
  let inOwn = 0;
  let inGlobal = 0;
  let tests = 0;
  for await (const b of readEventBatches(g.dir, { days: m.split.testDays })) {
    for (const e of b) {
      const h = train.get(e.userId);
      if (e.type !== EventType.CLICK || h === undefined) continue;
      const own = [...h.keys()].sort((a, b) => (h[b] ?? 0) - (h[a] ?? 0)).slice(0, 3);
      const c = cat.get(e.videoId) ?? 0;
      tests++;
      if (own.includes(c)) inOwn++;
      if (topGlobal.includes(c)) inGlobal++;
    }
  }
  t.ok(tests > 1000, `${tests} test clicks from users with history`);
  t.ok(inOwn / tests > 1.5 * (inGlobal / tests), `own top-3 categories ${(inOwn / tests).toFixed(3)} vs global top-3 ${(inGlobal / tests).toFixed(3)} (global share ${(topGlobal.reduce((s, c) => s + (global[c] ?? 0), 0) / globalTotal).toFixed(3)})`);
});

t.test('options are validated with the option named', async (t) => {
  t.throws(() => resolveGenerateOptions({ name: 'x', outDir: root, days: 2 }), /days/);
  t.throws(() => resolveGenerateOptions({ name: '../x', outDir: root }), /name/);
  t.throws(() => resolveGenerateOptions({ name: 'x', outDir: root, videos: 0 }), /videos/);
  t.throws(() => resolveGenerateOptions({ name: 'x', outDir: root, startMs: 5 }), /startMs/);
  t.throws(() => resolveGenerateOptions({ name: 'x', outDir: root, clickbaitShare: 2 }), /clickbaitShare/);
  const r = resolveGenerateOptions({ name: 'x', outDir: root, videos: 1000 });
  t.equal(r.creators, 20);
  t.equal(r.categories, 32);
  t.equal(r.startMs % DAY_MS, 0);
});

t.test('progress line shows rate and ETA', async (t) => {
  const line = formatProgress({ phase: 'events', day: 1, days: 4, fraction: 0.5, events: 2_000_000, bytes: 4e8, elapsedMs: 10_000 });
  t.match(line, /50\.0% events day 2\/4 2\.00M events 200k ev\/s 400 MB elapsed 0:10 ETA 0:10/);
});
