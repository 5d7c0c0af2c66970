/**
 * The click oracle of a generated world: it scores every test-day impression with the world's own
 * click model, beats what a ranker could read off the log alone, and refuses worlds whose truths it
 * cannot rebuild (converted data, other generator options).
 */
import t from 'tap';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventType } from '../../core/events.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { auc } from '../../offline/eval/metrics.js';
import { clickOracle } from '../../offline/eval/oracle.js';
import { oracleRows } from '../../offline/pipeline/report.js';
import { generateWorld, sessionDayOf } from '../../offline/world/generate.js';
import { readEventBatches, readWorldManifest } from '../../offline/world/reader.js';

const root = await mkdtemp(join(tmpdir(), 'upnext-oracle-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
await generateWorld({ name: 'w', outDir: root, videos: 1500, users: 800, days: 4, seed: 3, createdAt: '' });
const dir = join(root, 'w');

t.test('scores every test-day impression and beats what the log alone tells', async (t) => {
  const m = await readWorldManifest(dir);
  // The test days' impressions and their clicks, joined by feed slot, independently of the oracle.
  const clicked = new Set<string>();
  const shown: { slot: string; position: number }[] = [];
  for await (const batch of readEventBatches(dir, { days: m.split.testDays })) {
    for (const e of batch) {
      const slot = `${e.requestId}|${e.videoId}|${e.position}`;
      if (e.type === EventType.IMPRESSION) shown.push({ slot, position: e.position });
      else if (e.type === EventType.CLICK) clicked.add(slot);
    }
  }
  const labels = shown.map((s) => (clicked.has(s.slot) ? 1 : 0));
  const o = await clickOracle(dir);
  t.equal(o.impressions, shown.length, `${o.impressions} test-day impressions`);
  t.equal(o.clicks, labels.reduce((a: number, b) => a + b, 0), `${o.clicks} of them clicked`);
  const byPosition = auc(labels, shown.map((s) => -s.position));
  t.ok(o.auc > byPosition + 0.1, `oracle AUC ${o.auc.toFixed(4)} well above position alone (${byPosition.toFixed(4)})`);
  t.ok(o.auc < 0.95, 'but not perfect: clicks stay random given the truth');
  t.same(await oracleRows(dir), { oracle: { auc: o.auc } }, 'the report row');
});

t.test('refuses worlds whose truths it cannot rebuild', async (t) => {
  const converted = join(root, 'converted');
  await cp(dir, converted, { recursive: true });
  const manifest = JSON.parse(await readFile(join(converted, 'world.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(converted, 'world.json'), JSON.stringify({ ...manifest, source: 'kuairand' }));
  await t.rejects(clickOracle(converted), { code: StatusCode.FAILED_PRECONDITION, message: /kuairand: only a generated world/ });
  t.same(await oracleRows(converted), {}, 'no oracle row for converted data');

  const other = join(root, 'other-options');
  await generateWorld({ name: 'other-options', outDir: root, videos: 1500, users: 800, days: 4, seed: 3, clickbaitShare: 0.3, createdAt: '' });
  const err = await clickOracle(other).catch((e: unknown) => e);
  t.ok(err instanceof UpnextError && err.code === StatusCode.FAILED_PRECONDITION && /does not rebuild from the manifest/.test(err.message), 'a world generated with another clickbait share is refused');
  const notes: string[] = [];
  t.same(await oracleRows(other, (m) => notes.push(m)), {}, 'no row');
  t.match(notes.join('\n'), /no click oracle/, 'and a note');
});

t.test('the day a generated session started, from its request id', async (t) => {
  t.equal(sessionDayOf('5.qzt'), 5);
  t.equal(sessionDayOf('a.1'), 10, 'base 36');
  t.equal(sessionDayOf(''), undefined);
  t.equal(sessionDayOf('req-17'), undefined, 'not a generated id');
});
