import t from 'tap';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventType } from '../../core/events.js';
import { splitCsvLine } from '../../offline/kuairand/csv.js';
import { KUAIRAND_SOURCE_DIR, KUAIRAND_START_MS, convertKuaiRand } from '../../offline/kuairand/convert.js';
import { dayOf } from '../../offline/world/format.js';
import { readEvents, readVideos, readWorldManifest, worldExists } from '../../offline/world/reader.js';

t.test('csv: quoted fields', async (t) => {
  t.same(splitCsvLine('5,8367059,NORMAL,"20,43"'), ['5', '8367059', 'NORMAL', '20,43']);
  t.same(splitCsvLine('a,"say ""hi""",'), ['a', 'say "hi"', '']);
  t.same(splitCsvLine('1\t2', '\t'), ['1', '2']);
});

const haveData = await access(join(KUAIRAND_SOURCE_DIR, 'interactions_kcore15.tsv')).then(
  () => true,
  () => false,
);

t.test('converts the KuaiRand sample into a world', { skip: haveData ? false : 'KuaiRand sample not present' }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upnext-kuairand-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'kuairand');
  const r = await convertKuaiRand({ outDir: dir, createdAt: '' });
  t.equal(r.rows, 41_828);
  t.equal(r.duplicateRowsDropped, 433, 'the 433 duplicate pairs dropped');
  t.equal(r.rowsOutsideDays, 0);
  t.equal(r.videosWithPureFeatures, 113);
  t.ok(await worldExists(dir));
  const m = await readWorldManifest(dir);
  t.equal(m.source, 'kuairand');
  t.equal(m.numUsers, 664);
  t.equal(m.numVideos, 9359);
  t.equal(m.startMs, Date.UTC(2022, 3, 7));
  t.same(m.split.validDays, [11]);
  t.same(m.split.testDays, [12, 13, 14]);
  t.equal(m.counts.impressions, 41_828 - 433);
  t.equal(m.counts.likes + m.counts.skips, m.counts.impressions, 'every row is a like or a hate');
  t.match(await readFile(join(dir, 'README.md'), 'utf8'), /CC BY-SA 4\.0/);

  const pairs = new Set<string>();
  let dupImpressions = 0;
  let clicks = 0;
  let lastTs = 0;
  let ordered = true;
  let maxWatch = 0;
  for await (const e of readEvents(dir)) {
    if (e.tsMs < lastTs) ordered = false;
    lastTs = e.tsMs;
    if (e.type === EventType.IMPRESSION) {
      const key = `${e.userId}:${e.videoId}`;
      if (pairs.has(key)) dupImpressions++;
      pairs.add(key);
    }
    if (e.type === EventType.CLICK) clicks++;
    if (e.type === EventType.WATCH) maxWatch = Math.max(maxWatch, e.watchSeconds);
  }
  t.equal(dupImpressions, 0, 'one impression per (user, video)');
  t.ok(ordered, 'time-ordered');
  t.equal(clicks, m.counts.clicks);
  t.ok(maxWatch > 10 && maxWatch < 100_000, 'watch seconds converted from ms');

  // The first row of the file (user 111, video 3892024, 2022-04-10 08:59:09 UTC) lands on day 3, clicked.
  const first: number[] = [];
  for await (const e of readEvents(dir, { days: [3] })) if (e.userId === 111 && e.videoId === 3_892_024) first.push(e.type);
  t.same(first, [EventType.IMPRESSION, EventType.CLICK, EventType.WATCH, EventType.LIKE]);
  t.equal(dayOf(Date.UTC(2022, 3, 10, 8, 59, 9), KUAIRAND_START_MS), 3);

  let withDuration = 0;
  let withAuthor = 0;
  for await (const v of readVideos(dir)) {
    if (v.durationS > 0) withDuration++;
    if (v.creatorId < 2 ** 32) withAuthor++;
    if (v.category < 0 || v.category >= 32) t.fail(`category out of range for ${v.videoId}`);
  }
  t.ok(withDuration > 7000, `${withDuration} videos with a known duration`);
  t.equal(withAuthor, 113, 'real author ids only where Pure features exist');
});
