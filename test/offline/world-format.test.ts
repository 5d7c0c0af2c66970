import t from 'tap';
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { decodeEvent, encodeEvent } from '../../offline/world/codec.js';
import type { UserRecord, VideoRecord, WorldManifest } from '../../offline/world/format.js';
import { dayFileName, dayOf, defaultSplit, DAY_MS } from '../../offline/world/format.js';
import { readEvents, readUsers, readVideos, readWorldManifest, worldExists, listEventDays } from '../../offline/world/reader.js';
import { WorldWriter, userLine, videoLine } from '../../offline/world/writer.js';

const START = Date.UTC(2024, 0, 1);

function event(i: number, day: number, over: Partial<InteractionEvent> = {}): InteractionEvent {
  return {
    eventId: `e${day}-${i}`,
    userId: i % 17,
    videoId: 1000 + ((i * 31) % 97),
    type: (1 + (i % 5)) as EventType,
    tsMs: START + day * DAY_MS + i,
    position: i % 12,
    watchSeconds: i % 5 === 2 ? 3.25 + i : 0,
    context: { device: 'android', country: 'BR', localHour: i % 24 },
    surface: 'home',
    requestId: `s${i >> 3}`,
    ...over,
  };
}

function manifest(days: number, events: number): WorldManifest {
  return {
    name: 'fmt',
    seed: 1,
    numVideos: 2,
    numUsers: 2,
    numCreators: 1,
    numCategories: 32,
    days,
    startMs: START,
    countries: ['BR'],
    split: defaultSplit(days),
    counts: { events, impressions: 0, clicks: 0, watches: 0, likes: 0, skips: 0 },
    source: 'synthetic',
    generatorVersion: 1,
    createdAt: new Date(0).toISOString(),
  };
}

t.test('codec round-trips events, including strings that need escaping', async (t) => {
  const odd = event(7, 0, {
    eventId: 'we"ird\\id\n',
    context: { device: 'ios', country: 'CÔ', localHour: 3 },
    surface: 'up_next',
    requestId: '',
    watchSeconds: 1.5e-7,
    userId: 2 ** 53 - 1,
    position: -1,
  });
  for (const e of [event(0, 0), event(12, 3), odd]) {
    const line = encodeEvent(e);
    t.notOk(line.includes('\n'), 'one line');
    t.same(JSON.parse(line), e, 'valid JSON with the same fields');
    t.same(decodeEvent(line), e, 'decodes back');
  }
});

t.test('decoder accepts any valid JSON layout and fills optional fields', async (t) => {
  const e = event(3, 1);
  const reordered = JSON.stringify({ ...e, context: { localHour: 3, country: 'BR', device: 'android' } }, null, 1).replace(/\n/g, ' ');
  t.same(decodeEvent(reordered), e);
  t.same(decodeEvent('{"eventId":"x","userId":1,"videoId":2,"type":2,"tsMs":5}'), {
    eventId: 'x', userId: 1, videoId: 2, type: EventType.CLICK, tsMs: 5, position: -1, watchSeconds: 0,
    context: { device: 'unknown', country: '', localHour: 12 }, surface: 'home', requestId: '',
  });
  // Canonical layout but an empty number must not read as 0.
  t.throws(() => decodeEvent(encodeEvent(e).replace(/"userId":\d+/, '"userId":')));
  t.throws(() => decodeEvent('{"eventId":"x","videoId":2,"type":2,"tsMs":5}'), /userId/);
});

t.test('writer + reader: world round trip, day filter, chunk boundaries, atomic commit', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upnext-world-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'fmt');
  t.equal(await worldExists(dir), false);

  const videos: VideoRecord[] = [
    { videoId: 1, creatorId: 9, category: 3, durationS: 30.5, uploadTsMs: START - 5, tags: [1, 2], clickbait: false, quality: 0.5 },
    { videoId: 2, creatorId: 9, category: 31, durationS: 0, uploadTsMs: START + 7, tags: [], clickbait: true, quality: 0.125 },
  ];
  const users: UserRecord[] = [
    { userId: 1, country: 'BR', device: 'ios', activity: 1.5 },
    { userId: 5, country: '', device: 'unknown', activity: 0 },
  ];
  // Day 0 is large enough (> 2 MiB) to cross the reader's and writer's 1 MiB chunks several times.
  const perDay = [15_000, 3, 0, 40];
  const w = await WorldWriter.create(dir);
  const vw = w.videos();
  for (const v of videos) await vw.writeLine(videoLine(v));
  const uw = w.users();
  for (const u of users) await uw.writeLine(userLine(u));
  for (let d = 0; d < perDay.length; d++) {
    const f = w.day(d);
    for (let i = 0; i < (perDay[d] ?? 0); i++) await f.write(event(i, d));
    await w.close(f);
  }
  t.equal(await worldExists(dir), false, 'not visible before commit');
  const total = perDay.reduce((a, b) => a + b, 0);
  await w.commit(manifest(perDay.length, total));
  t.equal(await worldExists(dir), true);
  t.same((await readdir(root)).sort(), ['fmt'], 'staging directory gone');
  t.ok(w.bytes > 2 * 1024 * 1024, 'wrote over 2 MiB');

  t.same((await readWorldManifest(dir)).counts.events, total);
  const vs: VideoRecord[] = [];
  for await (const v of readVideos(dir)) vs.push(v);
  t.same(vs, videos);
  const us: UserRecord[] = [];
  for await (const u of readUsers(dir)) us.push(u);
  t.same(us, users);
  t.same(await listEventDays(dir), [0, 1, 2, 3]);

  let n = 0;
  let prevTs = -Infinity;
  let ordered = true;
  const seen = new Set<string>();
  for await (const e of readEvents(dir)) {
    const day = dayOf(e.tsMs, START);
    const i = Number(e.eventId.split('-')[1]);
    if (n % 997 === 0 || day === 3) t.same(e, event(i, day), `event ${e.eventId} intact`);
    if (e.tsMs < prevTs) ordered = false;
    prevTs = e.tsMs;
    seen.add(e.eventId);
    n++;
  }
  t.equal(n, total, 'every event read once');
  t.equal(seen.size, total);
  t.ok(ordered, 'time-ordered across files');
  const some: string[] = [];
  for await (const e of readEvents(dir, { days: [3, 1, 9] })) some.push(e.eventId);
  t.same(some, [...Array.from({ length: 3 }, (_, i) => `e1-${i}`), ...Array.from({ length: 40 }, (_, i) => `e3-${i}`)]);

  // Rewriting the same name replaces the old world wholesale.
  const w2 = await WorldWriter.create(dir);
  await w2.commit(manifest(3, 0));
  t.same(await listEventDays(dir), []);
});

t.test('reader names the file and line of a corrupt record', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upnext-world-bad-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'events'));
  await writeFile(join(dir, 'events', dayFileName(0)), `${encodeEvent(event(0, 0))}\n{"eventId":\n`);
  await t.rejects(async () => {
    for await (const _ of readEvents(dir)) void _;
  }, /day-000\.ndjson:2:/);
});

t.test('defaultSplit: last day test, the one before valid, the rest train', async (t) => {
  t.same(defaultSplit(7), { trainDays: [0, 1, 2, 3, 4], validDays: [5], testDays: [6] });
  t.throws(() => defaultSplit(2), TypeError);
});
