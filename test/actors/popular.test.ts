/**
 * Popular/trending: the pure index (decay, trending, per-key lists), the actor over a real
 * nats-server, and the coordinator-side PopularCache (serves without NATS after the first fill).
 */
import t from 'tap';
import path from 'node:path';
import { ManualClock } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { StatusCode } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { GLOBAL_KEY, PopularIndex, listKey, resolvePopularIndexOptions } from '../../actors/popular/popular-index.js';
import { startPopular } from '../../actors/popular/popular.js';
import { PopularCache } from '../../actors/popular/popular-cache.js';
import { EventPublisher } from '../../actors/coordinator/events.js';
import { writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const H = 3_600_000;
const NOW = Date.UTC(2026, 5, 1);
let seq = 0;
function click(videoId: number, tsMs: number, country = 'BR', device = 'ios'): InteractionEvent {
  return { eventId: `p${seq++}`, userId: 1, videoId, type: EventType.CLICK, tsMs, position: 0, watchSeconds: 0, context: { device, country, localHour: 12 }, surface: 'home', requestId: '' };
}

function meta(videoId: number, uploadTsMs: number) {
  return { videoId, creatorId: 10 + videoId, category: videoId % 32, durationS: 60, uploadTsMs };
}

t.test('popular lists are sorted by decayed count', async (t) => {
  const idx = new PopularIndex();
  for (const v of [1, 2, 3]) idx.setItem(meta(v, NOW - 30 * 24 * H));
  for (let i = 0; i < 5; i++) idx.applyEvent(click(1, NOW - 72 * H)); // 5 clicks, three half-lives ago: 0.625
  for (let i = 0; i < 3; i++) idx.applyEvent(click(2, NOW)); // 3 clicks now: 3
  idx.applyEvent(click(3, NOW - 1 * H)); // ~0.97
  idx.applyEvent({ ...click(3, NOW), type: EventType.IMPRESSION }); // impressions do not count
  idx.refresh(NOW);
  const l = idx.list(GLOBAL_KEY, false);
  t.same(l?.videoIds, [2, 3, 1], 'recent engagement outweighs older, larger counts');
  t.ok(Math.abs((l?.scores[0] ?? 0) - 3) < 1e-9);
  t.ok(Math.abs((l?.scores[2] ?? 0) - 0.625) < 1e-9, 'three half-lives: 5/8');
  const c = idx.candidates('BR', 'ios', 2, false);
  t.same(c.videoIds, [2, 3]);
  t.equal(c.creatorIds[0], 12, 'features travel with candidates');
  t.equal(c.impressions[1], 1, 'item counters replayed');
});

t.test('trending favours a burst of a new video over a steady popular one', async (t) => {
  const idx = new PopularIndex();
  idx.setItem(meta(10, NOW - 60 * 24 * H)); // old, steady
  idx.setItem(meta(11, NOW - 2 * H)); // new upload, bursting
  idx.setItem(meta(12, NOW - 60 * 24 * H)); // old, small burst
  for (let h = 48; h >= 0; h--) for (let i = 0; i < 2; i++) idx.applyEvent(click(10, NOW - h * H));
  for (let i = 0; i < 8; i++) idx.applyEvent(click(11, NOW - i * 60_000));
  for (let i = 0; i < 8; i++) idx.applyEvent(click(12, NOW - i * 60_000));
  idx.refresh(NOW);
  t.equal(idx.list(GLOBAL_KEY, false)?.videoIds[0], 10, 'popular: the steady video leads');
  const trending = idx.list(GLOBAL_KEY, true)?.videoIds ?? [];
  t.equal(trending[0], 11, 'trending: the new burst leads');
  t.ok(trending.indexOf(12) < trending.indexOf(10) || !trending.includes(10), 'an old video’s burst beats steady traffic');
  const later = new PopularIndex();
  later.setItem(meta(11, NOW - 2 * H));
  for (let i = 0; i < 8; i++) later.applyEvent(click(11, NOW - i * 60_000));
  later.refresh(NOW + 24 * H);
  t.same(later.list(GLOBAL_KEY, true)?.videoIds, [], 'a burst a day old is no longer trending');
});

t.test('per (country, device) lists, topped up from the global list', async (t) => {
  const idx = new PopularIndex();
  for (const v of [1, 2, 3]) idx.setItem(meta(v, NOW));
  idx.applyEvent(click(1, NOW, 'US', 'web'));
  idx.applyEvent(click(2, NOW, 'BR', 'ios'));
  idx.applyEvent(click(2, NOW, 'BR', 'ios'));
  idx.applyEvent(click(3, NOW, 'BR', 'ios'));
  idx.refresh(NOW);
  t.same(idx.list(listKey('us', 'WEB'), false)?.videoIds, [1], 'keys are normalised');
  t.same(idx.candidates('US', 'web', 3, false).videoIds, [1, 2, 3], 'own list first, then global without duplicates');
  t.same(idx.candidates('ZZ', 'tv', 2, false).videoIds, [2, 1], 'unknown pair: global list');
  t.throws(() => resolvePopularIndexOptions({ listSize: 0 }), { name: 'TypeError', message: /popular\.listSize/ });
  t.throws(() => resolvePopularIndexOptions({ trendingHalfLifeMs: 2 * 86_400_000 }), { name: 'TypeError', message: /trendingHalfLifeMs/ });
});

t.test('popular actor over NATS and the coordinator cache', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-pop');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 20, numUsers: 30 });
  const cluster = `pop${process.pid}`;
  const actor = await startPopular({ nc, cluster, worldDir: world.dir });
  const ask = async (req: { country: string; device: string; n: number; trending: boolean }) =>
    Codecs.candidateBatchReply.decode((await nc.request(Subjects.popular(cluster), Codecs.popularRequest.encode(req), { timeout: 3000 })).data);
  const r = await ask({ country: 'BR', device: 'ios', n: 10, trending: false });
  const ids = r.candidates?.videoIds ?? [];
  t.equal(ids.length, 10);
  t.equal(new Set(ids).size, 10, 'distinct');
  const scores = r.candidates?.scores ?? [];
  t.ok(scores.every((s, i) => i === 0 || (scores[i - 1] ?? 0) >= s), 'sorted by score');
  const v = world.videos.find((x) => x.videoId === ids[0]);
  t.equal(r.candidates?.creatorIds[0], v?.creatorId, 'features attached');
  t.ok((r.candidates?.clicks[0] ?? 0) > 0, 'counters from the world');
  const bad = await ask({ country: 'BR', device: 'ios', n: 0, trending: false });
  t.equal(bad.status?.code, StatusCode.INVALID_ARGUMENT);
  t.equal(bad.status?.details, 'n');
  const trending = await ask({ country: '', device: '', n: 5, trending: true });
  t.ok((trending.candidates?.videoIds.length ?? 0) > 0, 'trending list present for the replayed world');

  const clock = new ManualClock(1_000);
  const cache = new PopularCache({ nc, cluster, ttlMs: 1000, clock, requestTimeoutMs: 500 });
  await cache.warm();
  const globalIds = (await ask({ country: '', device: '', n: 10, trending: false })).candidates?.videoIds;
  t.notSame(globalIds, ids, 'the BR/ios list differs from the global one in this world');
  const first = await cache.get('BR', 'ios', 10, false);
  t.same(first.videoIds, globalIds, 'an unseen pair is answered from the warmed global list at once');
  t.ok(await cache.refresh('BR', 'ios', false));
  t.same((await cache.get('BR', 'ios', 10, false)).videoIds, ids, 'then from its own list');
  t.ok(cache.stats().fetches >= 3, 'two global lists + the pair');
  t.same(cache.peek('BR', 'ios', 3, false)?.videoIds, ids.slice(0, 3), 'peek slices, synchronously');

  await actor.stop(); // no responder any more: NATS is out of the picture
  clock.advance(5000); // entries are stale now
  const stale = await cache.get('BR', 'ios', 10, false);
  t.same(stale.videoIds, ids, 'stale entry served while the refresh fails in the background');
  const unseen = await cache.get('US', 'web', 4, false);
  const global = await cache.get('', '', 4, false);
  t.same(unseen.videoIds, global.videoIds, 'a pair never fetched is answered from the cached global list');
  t.equal(unseen.videoIds.length, 4);
  await new Promise((r) => setTimeout(r, 50));
  t.ok(cache.stats().failures >= 1, 'background refreshes failed, nothing blocked');
  t.same((await cache.get('BR', 'ios', 10, false)).videoIds, ids, 'still served after a failed refresh');

  const cold = new PopularCache({ nc, cluster, requestTimeoutMs: 200 });
  t.same((await cold.get('BR', 'ios', 5, true)).videoIds, [], 'a cold cache with no actor answers an empty batch, not an error');
});

t.test('the refresh timer skips passes that would change nothing, and runs again after events', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-pop-skip');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 20, numUsers: 30 });
  const actor = await startPopular({ nc, cluster: `popskip${process.pid}`, worldDir: world.dir, refreshIntervalMs: 20 });
  t.teardown(() => actor.stop());
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // Polled, not timed: timers run late on a busy machine.
  for (let i = 0; i < 300 && actor.stats().refreshesSkipped < 5; i++) await wait(10);
  const idle = actor.stats();
  t.ok(idle.refreshesSkipped >= 5, `idle passes skipped (${idle.refreshesSkipped} skipped, ${idle.refreshes} run)`);
  t.ok(idle.refreshes <= 2, 'at most the first pass ran');
  actor.applyEvents([click(3, NOW, 'BR', 'ios')]);
  for (let i = 0; i < 300 && actor.stats().refreshes === idle.refreshes; i++) await wait(10);
  const skippedThen = actor.stats().refreshesSkipped;
  for (let i = 0; i < 300 && actor.stats().refreshesSkipped < skippedThen + 3; i++) await wait(10);
  const after = actor.stats();
  t.equal(after.refreshes, idle.refreshes + 1, 'a new event makes the next pass run, once; later passes are skipped again');
});

t.test('the popular actor counts the events LogEvents appends to the stream', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-pop-feed');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 20, numUsers: 30 });
  const cluster = `popfeed${process.pid}`;
  const actor = await startPopular({ nc, cluster, worldDir: world.dir, refreshIntervalMs: 20 });
  t.teardown(() => actor.stop());
  const ask = async () =>
    Codecs.candidateBatchReply.decode((await nc.request(Subjects.popular(cluster), Codecs.popularRequest.encode({ country: 'BR', device: 'ios', n: 5, trending: false }), { timeout: 3000 })).data);
  const before = (await ask()).candidates?.videoIds ?? [];
  const target = [...Array(20).keys()].map((i) => i + 1).find((id) => !before.includes(id))!;
  const publisher = await EventPublisher.create(nc, cluster, 4, 3000);
  const at = actor.index.watermarkMs; // serving time: the world's history ends now
  await publisher.publish(Array.from({ length: 200 }, (_, i) => ({ ...click(target, at, 'BR', 'ios'), eventId: `pf-${i}`, userId: 1 + (i % 30) })));
  let top: readonly number[] = before;
  for (let i = 0; i < 100 && top[0] !== target; i++) {
    await new Promise((r) => setTimeout(r, 30));
    top = (await ask()).candidates?.videoIds ?? [];
  }
  t.equal(top[0], target, `video ${target}, absent from the top 5 before, leads BR/ios after 200 clicks through the stream`);
  // The video may lead after the first few clicks: wait for the feed to take all 200, then check none
  // twice. Patient: on a loaded machine the client may miss heartbeats and recreate the ordered
  // consumer, which silences the feed for up to ~2 × FEED_PULL_EXPIRES_MS (seen in CI: 84 of 200
  // after 5 s); the guarantee is every event once, eventually.
  for (let i = 0; i < 1200 && (actor.stats().eventFeed?.applied ?? 0) < 200; i++) await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 100));
  const feed = actor.stats().eventFeed;
  t.equal(feed?.applied, 200, `every event applied once (heartbeats missed ${feed?.heartbeatsMissed}, consumer recreated ${feed?.consumerRecreated})`);
});
