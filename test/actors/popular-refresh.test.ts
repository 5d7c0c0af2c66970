/**
 * Popular refresh: the bounded top-N selection and the sliced refresh give exactly the lists a full
 * sort of every counted entry gives, and a catalogue-backed index answers like a setItem-backed one.
 */
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { DEVICES, EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { allocateCatalogueColumns, ItemCatalogue } from '../../actors/user-state/catalogue.js';
import { GLOBAL_KEY, PopularIndex, SPARE_MEMBERS, listKey } from '../../actors/popular/popular-index.js';

const H = 3_600_000;
const NOW = Date.UTC(2026, 5, 1);
const VIDEOS = 3000;
const COUNTRIES = ['BR', 'US', 'JP'];

function fixedInput(): { metas: { videoId: number; creatorId: number; category: number; durationS: number; uploadTsMs: number }[]; events: InteractionEvent[] } {
  const rng = new SeededRng(7);
  const metas = Array.from({ length: VIDEOS }, (_, i) => ({ videoId: i + 1, creatorId: 100 + (i % 50), category: i % 32, durationS: 30 + (i % 200), uploadTsMs: NOW - rng.int(20 * 24) * H }));
  const events: InteractionEvent[] = [];
  for (let i = 0; i < 30_000; i++) {
    // Skewed popularity (squared uniform) so lists have clear heads and many ties in the tail.
    const videoId = 1 + Math.floor(rng.next() * rng.next() * VIDEOS);
    const type = [EventType.CLICK, EventType.WATCH, EventType.IMPRESSION][rng.int(3)] as EventType;
    events.push({
      eventId: `e${i}`,
      userId: 1 + rng.int(500),
      videoId,
      type,
      tsMs: NOW - Math.floor(rng.next() * rng.next() * rng.next() * 72 * H), // most events recent: long trending lists
      position: 0,
      watchSeconds: type === EventType.WATCH ? rng.int(60) : 0,
      context: { device: DEVICES[rng.int(DEVICES.length)] ?? 'web', country: COUNTRIES[rng.int(COUNTRIES.length)] ?? 'BR', localHour: 12 },
      surface: 'home',
      requestId: '',
    });
  }
  return { metas, events };
}

function build(listSize: number, catalogue?: ItemCatalogue): PopularIndex {
  const { metas, events } = fixedInput();
  const idx = new PopularIndex({ listSize, minTrendingCount: 0.3 }, catalogue);
  if (catalogue === undefined) for (const m of metas) idx.setItem(m);
  for (const e of events) idx.applyEvent(e);
  return idx;
}

const keys = [GLOBAL_KEY, ...COUNTRIES.flatMap((c) => DEVICES.map((d) => listKey(c, d)))];

t.test('bounded top-N equals the head of a full sort', async (t) => {
  const n = 25;
  const small = build(n);
  const full = build(1_000_000); // listSize above every list's length: every entry kept and sorted
  small.refresh(NOW);
  full.refresh(NOW);
  let compared = 0;
  for (const key of keys) {
    for (const trending of [false, true]) {
      const a = small.list(key, trending);
      const b = full.list(key, trending);
      t.ok(a !== undefined && b !== undefined, `${key} ${trending ? 'trending' : 'popular'} exists`);
      if (a === undefined || b === undefined) continue;
      t.ok(b.videoIds.length > n, `${key}: the full list is longer than n (${b.videoIds.length})`);
      t.same(a.videoIds, b.videoIds.slice(0, n), `${key} ${trending ? 'trending' : 'popular'} ids`);
      t.same(a.scores, b.scores.slice(0, n), 'scores bit-identical');
      for (let i = 1; i < b.scores.length; i++) {
        const ok = (b.scores[i - 1] as number) > (b.scores[i] as number) || ((b.scores[i - 1] as number) === (b.scores[i] as number) && (b.videoIds[i - 1] as number) < (b.videoIds[i] as number));
        if (!ok) t.fail(`${key}: full list out of order at ${i}`);
      }
      compared++;
    }
  }
  t.equal(compared, keys.length * 2);
});

t.test('sliced refresh equals the synchronous one', async (t) => {
  const a = build(40);
  const b = build(40);
  a.refresh(NOW);
  let slices = 0;
  const steps = b.refreshSteps(NOW, 97);
  while (!steps.next().done) {
    slices++;
    if (slices === 1) t.equal(b.list(GLOBAL_KEY, false), undefined, 'lists are swapped in only when the pass completes');
  }
  t.ok(slices > 10, `ran in ${slices} slices`);
  for (const key of keys) for (const trending of [false, true]) t.same(b.list(key, trending), a.list(key, trending), `${key} ${trending}`);
});

t.test('a catalogue-backed index answers like a setItem-backed one', async (t) => {
  const { metas } = fixedInput();
  const cols = allocateCatalogueColumns(metas.length, false);
  metas.forEach((m, r) => {
    cols.ids[r] = m.videoId;
    cols.creatorIds[r] = m.creatorId;
    cols.categories[r] = m.category;
    cols.durationS[r] = m.durationS;
    cols.uploadTsMs[r] = m.uploadTsMs;
  });
  const a = build(60);
  const b = build(60, new ItemCatalogue(cols));
  a.refresh(NOW);
  b.refresh(NOW);
  for (const trending of [false, true]) {
    for (const [c, d] of [['BR', 'ios'], ['', ''], ['JP', 'web']] as const) {
      const ca = a.candidates(c, d, 50, trending);
      t.ok(ca.videoIds.length > 0);
      t.same(b.candidates(c, d, 50, trending), ca, `candidates ${c}/${d} trending=${trending}, features and counters included`);
    }
  }
});

t.test('refreshes after more events equal a fresh index over all of them; only active entries are scanned', async (t) => {
  const { metas, events } = fixedInput();
  const rounds = [events.slice(0, 12_000), events.slice(12_000, 20_000), events.slice(20_000)];
  const live = new PopularIndex({ listSize: 30, minTrendingCount: 1.5 });
  for (const m of metas) live.setItem(m);
  const applied: InteractionEvent[] = [];
  // "now" moves forward between rounds, then back (a full rescan), then forward again.
  const nows = [NOW - 6 * H, NOW - 2 * H, NOW, NOW - 4 * H, NOW + 3 * H];
  const rng = new SeededRng(11);
  for (const [round, now] of nows.entries()) {
    const batch = rounds[round] ?? [];
    for (const e of batch) {
      // Late events too: the batches are not in time order.
      live.applyEvent(e);
      applied.push(e);
    }
    // A few extra bumps of videos already counted, so kept and dropped entries both move.
    for (let i = 0; i < 200; i++) {
      const e = applied[rng.int(applied.length)] as InteractionEvent;
      const again = { ...e, eventId: `${e.eventId}-again-${round}-${i}`, type: EventType.CLICK, tsMs: now - rng.int(3 * H) };
      live.applyEvent(again);
      applied.push(again);
    }
    live.refresh(now);
    const fresh = new PopularIndex({ listSize: 30, minTrendingCount: 1.5 });
    for (const m of metas) fresh.setItem(m);
    for (const e of applied) fresh.applyEvent(e);
    fresh.refresh(now);
    for (const key of keys) {
      for (const trending of [false, true]) t.same(live.list(key, trending), fresh.list(key, trending), `round ${round} (now ${(now - NOW) / H} h): ${key} ${trending ? 'trending' : 'popular'}`);
    }
  }
  t.ok(live.list(GLOBAL_KEY, true)?.videoIds.length, 'trending lists are not empty');

  // A day later every recent count has decayed below the threshold: one pass drops them all, and
  // the next pass prices only the kept popular videos, however many entries are counted.
  live.refresh(NOW + 48 * H);
  live.refresh(NOW + 48 * H + 1);
  const kept = keys.reduce((n, k) => n + (live.list(k, false)?.videoIds.length ?? 0), 0);
  // Each list's heap holds listSize + SPARE_MEMBERS videos (every key here has more counted).
  t.equal(kept, keys.length * 30, 'full lists');
  t.equal(live.lastRefreshScanned, keys.length * (30 + SPARE_MEMBERS), `the second pass scanned ${live.lastRefreshScanned} entries: the kept popular videos and their spares`);
  t.ok(live.counterEntries > 10 * kept, `of ${live.counterEntries} counted`);
  t.equal(live.list(GLOBAL_KEY, true)?.videoIds.length, 0, 'nothing trends after two idle days');
});

t.test('events applied while the first sliced pass runs are seen by the next pass', async (t) => {
  const { metas, events } = fixedInput();
  const first = events.slice(0, 25_000);
  const during = events.slice(25_000);
  const live = new PopularIndex({ listSize: 30, minTrendingCount: 1.5 });
  for (const m of metas) live.setItem(m);
  for (const e of first) live.applyEvent(e);
  const steps = live.refreshSteps(NOW, 500);
  let slices = 0;
  let next = 0;
  while (!steps.next().done) {
    slices++;
    // Spread the late batch over the pass: keys already done and keys still to come both get some.
    for (const e of during.slice(next, next + 150)) live.applyEvent(e);
    next += 150;
  }
  t.ok(slices > 5 && next < during.length, `pass ran in ${slices} slices with events between them`);
  for (const e of during.slice(next)) live.applyEvent(e);
  live.refresh(NOW);
  const fresh = new PopularIndex({ listSize: 30, minTrendingCount: 1.5 });
  for (const m of metas) fresh.setItem(m);
  for (const e of events) fresh.applyEvent(e);
  fresh.refresh(NOW);
  for (const key of keys) for (const trending of [false, true]) t.same(live.list(key, trending), fresh.list(key, trending), `${key} ${trending ? 'trending' : 'popular'}`);
});

t.test('a pass that runs while a sliced one is suspended supersedes it; nothing taken is lost', async (t) => {
  const { metas, events } = fixedInput();
  const make = (): PopularIndex => {
    const idx = new PopularIndex({ listSize: 30, minTrendingCount: 1.5 });
    for (const m of metas) idx.setItem(m);
    return idx;
  };
  const fresh = make();
  for (const e of events.slice(0, 22_500)) fresh.applyEvent(e);
  fresh.refresh(NOW);
  // Suspend the sliced pass at many points: between keys, inside a key's pricing, inside its scan.
  let differing = 0;
  let superseded = 0;
  for (const steps of [1, 2, 3, 5, 8, 13, 21, 34]) {
    const live = make();
    for (const e of events.slice(0, 20_000)) live.applyEvent(e);
    live.refresh(NOW - 2 * H);
    for (const e of events.slice(20_000, 21_000)) live.applyEvent(e); // tracked bumps
    const sliced = live.refreshSteps(NOW - H, 40);
    let done = false;
    for (let i = 0; i < steps && !done; i++) done = sliced.next().done === true;
    for (const e of events.slice(21_000, 22_000)) live.applyEvent(e);
    live.refresh(NOW); // runs in full meanwhile
    if (!done) {
      superseded++;
      t.equal(sliced.next().done, true, `after ${steps} steps: the superseded pass ends at its next step`);
    }
    for (const e of events.slice(22_000, 22_500)) live.applyEvent(e);
    // Or abandoned: begun, never resumed; the next pass still sees what it took.
    const abandoned = live.refreshSteps(NOW - H / 2, 40);
    for (let i = 0; i < steps; i++) abandoned.next();
    live.refresh(NOW);
    for (const key of keys) {
      for (const trending of [false, true]) if (JSON.stringify(live.list(key, trending)) !== JSON.stringify(fresh.list(key, trending))) differing++;
    }
  }
  t.ok(superseded >= 6, `${superseded} of 8 sliced passes were superseded mid-way`);
  t.equal(differing, 0, 'every list equals a fresh index over the same events');
});

t.test('a pass yields while it prices popular lists too (no trending work)', async (t) => {
  const idx = build(40);
  idx.refresh(NOW);
  idx.refresh(NOW + 72 * H); // everything stops trending
  let slices = 0;
  const steps = idx.refreshSteps(NOW + 72 * H + 1, 100);
  while (!steps.next().done) slices++;
  t.equal(idx.list(GLOBAL_KEY, true)?.videoIds.length, 0, 'no trending candidates left');
  t.ok(slices >= Math.floor((keys.length * 40) / 100) - 1, `${slices} slices over ${keys.length} popular lists`);
});
