/**
 * ProfileStore keeps exactly what per-user UserProfile objects would, through growth of its tables
 * and of the recent lists across size classes, and round-trips through snapshot columns.
 */
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { DEFAULT_FEATURE_SPEC as spec } from '../../core/features/spec.js';
import type { UserProfile } from '../../core/features/user.js';
import { RECENT_LIMIT, applyEventToUser, isEngagement, newUserProfile } from '../../core/features/user.js';
import { ProfileStore } from '../../actors/user-state/profile-store.js';

const TYPES = [EventType.IMPRESSION, EventType.CLICK, EventType.WATCH, EventType.WATCH, EventType.LIKE, EventType.SKIP];

function replay(n: number, users: number, seed: number): { store: ProfileStore; reference: Map<number, UserProfile> } {
  const rng = new SeededRng(seed);
  const store = new ProfileStore(spec);
  const reference = new Map<number, UserProfile>();
  for (let i = 0; i < n; i++) {
    // Skewed users (some reach RECENT_LIMIT), a small catalogue (repeats move entries), huge ids too.
    const userId = Math.floor(users * rng.next() * rng.next()) * 2 ** 21 + 7;
    const videoId = 1 + rng.int(300);
    const type = TYPES[rng.int(TYPES.length)] as EventType;
    const e: InteractionEvent = {
      eventId: `e${i}`, userId, videoId, type, tsMs: 1_700_000_000_000 + i, position: 0,
      watchSeconds: type === EventType.WATCH ? rng.int(3) * 7.5 : 0,
      context: { device: 'ios', country: 'US', localHour: 9 }, surface: 'home', requestId: '',
    };
    const info = videoId % 17 === 0 ? undefined : { category: videoId % spec.numCategories, creatorId: 1000 + (videoId % 40) };
    let p = reference.get(userId);
    if (p === undefined) reference.set(userId, (p = newUserProfile(userId, spec)));
    applyEventToUser(p, e, info, spec);
    // As the partition does: lists read and written for engagements only.
    store.update(userId, (q) => applyEventToUser(q, e, info, spec), isEngagement(e));
  }
  return { store, reference };
}

t.test('every profile equals the object-per-user reference', async (t) => {
  const { store, reference } = replay(60_000, 400, 1);
  t.equal(store.size, reference.size, `${store.size} users`);
  let differing = 0;
  let full = 0;
  let entries = 0;
  for (const [id, p] of reference) {
    const q = store.get(id);
    const sameAffinity = q !== undefined && q.categoryAffinity.every((x, i) => Object.is(x, p.categoryAffinity[i]));
    if (JSON.stringify(q) !== JSON.stringify(p) || !sameAffinity) differing++;
    if (p.recentVideoIds.length === RECENT_LIMIT) full++;
    entries += p.recentVideoIds.length;
  }
  t.equal(differing, 0, 'counters, recent lists and affinities (bit for bit) agree');
  const versions = [...reference.keys()].map((id) => store.version(id));
  store.compact();
  let afterCompaction = 0;
  for (const [id, p] of reference) if (JSON.stringify(store.get(id)) !== JSON.stringify(p)) afterCompaction++;
  t.equal(afterCompaction, 0, 'and still after compaction');
  t.same([...reference.keys()].map((id) => store.version(id)), versions, 'versions kept by compaction');
  t.ok(full > 0, `${full} users reached RECENT_LIMIT`);
  t.equal(store.recentEntries, entries, 'recent entries counted');
  t.equal(store.get(123), undefined, 'unknown user');
  t.equal(store.version(123), 0);
});

t.test('versions count updates; snapshot columns round-trip', async (t) => {
  const { store, reference } = replay(20_000, 800, 2);
  const [someUser] = reference.keys();
  const v = store.version(someUser as number);
  t.ok(v > 0, 'a known user has a version');
  store.update(someUser as number, () => {});
  t.equal(store.version(someUser as number), v + 1, 'each update bumps it');

  const cols = store.exportColumns(42);
  t.equal(cols.appliedSeq, 42);
  const ids = Array.from(cols.userIds);
  t.same(ids, [...ids].sort((a, b) => a - b), 'rows in ascending user id');
  const restored = new ProfileStore(spec);
  restored.restoreColumns(cols);
  let differing = 0;
  for (const id of reference.keys()) if (JSON.stringify(restored.get(id)) !== JSON.stringify(store.get(id))) differing++;
  t.equal(differing, 0, 'every profile restored');
  t.equal(restored.version(someUser as number), 0, 'versions restart');
  t.same(restored.exportColumns(42), cols, 'export of the restore equals the export');
  restored.update(someUser as number, (p) => p.recentVideoIds.push(999_999));
  t.equal(restored.get(someUser as number)?.recentVideoIds.at(-1), 999_999, 'a restored list grows into its next class');
});

t.test('memory follows the lists, not RECENT_LIMIT', async (t) => {
  // Lists grown one event at a time, as a replay does: each passes through the smaller classes.
  const store = new ProfileStore(spec);
  for (let i = 0; i < 41; i++) {
    for (let u = 1; u <= 5000; u++) {
      store.update(u, (p) => {
        p.recentVideoIds.push(u * 1000 + i);
        p.recentCreatorIds.push(i);
      });
    }
  }
  const before = store.bytes / store.size;
  t.equal(store.compactIfWasteful(), true, 'the slots left behind by growth trigger a compaction');
  t.equal(store.compactIfWasteful(), false, 'and once compacted, not again');
  const after = store.bytes / store.size;
  t.equal(store.get(77)?.recentVideoIds.length, 41, 'lists intact after compaction');
  // What a user needs: 41 × (video id + creator id) × 8 B, the affinities, ten 8-byte columns.
  const needed = 41 * 16 + spec.numCategories * 4 + 10 * 8;
  t.ok(after < before, `compaction drops the slots growth left behind: ${before.toFixed(0)} -> ${after.toFixed(0)} bytes per user`);
  t.ok(after < 1.4 * needed, `${after.toFixed(0)} bytes per user for ${needed} of data (a RECENT_LIMIT ring alone would be ${RECENT_LIMIT * 16})`);
});

t.test('a snapshot with inconsistent columns is refused before anything changes', async (t) => {
  const { store } = replay(5000, 200, 3);
  const good = store.exportColumns(9);
  const broken = (patch: Partial<typeof good>): typeof good => ({ ...good, ...patch });
  const swapped = Float64Array.from(good.userIds);
  [swapped[0], swapped[1]] = [swapped[1] as number, swapped[0] as number];
  const longOffsets = Uint32Array.from(good.recentOffsets);
  for (let u = 1; u < longOffsets.length; u++) longOffsets[u] = (longOffsets[u] as number) + (u >= 1 ? RECENT_LIMIT + 1 : 0);
  for (const [what, cols, message] of [
    ['ids out of order', broken({ userIds: swapped }), /not strictly ascending/],
    ['a list over RECENT_LIMIT', broken({ recentOffsets: longOffsets }), /has a recent list of \d+ entries \(0\.\.100\)/],
    ['short counters', broken({ counters: good.counters.subarray(1) }), /counters hold/],
    ['short affinities', broken({ affinity: good.affinity.subarray(1) }), /affinity holds/],
  ] as const) {
    const target = new ProfileStore(spec);
    target.update(1, (p) => p.recentVideoIds.push(5));
    t.throws(() => target.restoreColumns(cols), message, what);
    t.same(target.get(1)?.recentVideoIds, [5], `${what}: the store is unchanged`);
  }
});
