import t from 'tap';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import type { PolicyCandidate } from '../../actors/coordinator/policy.js';
import { applyPolicy, blendUtility, completionValue, diversify, watchValue } from '../../actors/coordinator/policy.js';
import { Source } from '../../actors/coordinator/types.js';

const cfg = resolveCoordinatorConfig();
const noExplore = { epsilon: 0, protectedTopSlots: 1 };
const noDiversity = { window: 0, maxPerCategory: 3 };

function cand(videoId: number, utility: number, category = videoId % 8, origin: PolicyCandidate['origin'] = Source.RETRIEVAL): PolicyCandidate {
  return { videoId, category, shard: videoId % 2, origin, utility, pClick: 0.1, expectedWatchSeconds: 30 };
}

t.test('blend: utility follows the surface weights', async (t) => {
  t.equal(watchValue(0, 600), 0);
  t.equal(watchValue(600, 600), 1);
  t.equal(watchValue(6000, 600), 1, 'capped at 1');
  t.ok(watchValue(60, 600) > 0.5 && watchValue(60, 600) < 1, 'log scale: a minute is most of the way');
  // A clicky short video vs a less clicky long one: the surface decides which wins.
  const clicky = { p: 0.4, w: 20 };
  const watchy = { p: 0.1, w: 500 };
  const home = cfg.surfaces['home']!;
  const upNext = cfg.surfaces['up_next']!;
  const byClick = { click: 1, watch: 0, completion: 0 };
  const byWatch = { click: 0, watch: 1, completion: 0 };
  t.ok(blendUtility(clicky.p, clicky.w, byClick, 600) > blendUtility(watchy.p, watchy.w, byClick, 600));
  t.ok(blendUtility(clicky.p, clicky.w, byWatch, 600) < blendUtility(watchy.p, watchy.w, byWatch, 600));
  t.equal(blendUtility(0.2, 100, home, 600), home.click * 0.2 + home.watch * watchValue(100, 600));
  t.equal(blendUtility(0.2, 100, upNext, 600), upNext.click * 0.2 + upNext.watch * watchValue(100, 600));
});

t.test('blend: the completion term rewards the share watched, not the seconds', async (t) => {
  t.equal(completionValue(30, 60), 0.5);
  t.equal(completionValue(120, 60), 1, 'capped at 1');
  t.equal(completionValue(30, 0), 0, 'unknown duration: no credit');
  t.equal(completionValue(Number.NaN, 60), 0);
  // Same P(click); 200 s expected of a 20-minute video vs 50 s of a 1-minute one.
  const long = { p: 0.3, w: 200, d: 1200 };
  const short = { p: 0.3, w: 50, d: 60 };
  const seconds = { click: 0, watch: 1, completion: 0 };
  const finish = { click: 0, watch: 0.2, completion: 1 };
  t.ok(blendUtility(long.p, long.w, seconds, 600, long.d) > blendUtility(short.p, short.w, seconds, 600, short.d), 'by seconds the long video wins');
  t.ok(blendUtility(long.p, long.w, finish, 600, long.d) < blendUtility(short.p, short.w, finish, 600, short.d), 'by completion the short one does');
  t.equal(blendUtility(0.2, 100, { click: 1, watch: 1, completion: 0 }, 600, 50), 0.2 + watchValue(100, 600), 'weight 0: the old blend, bit for bit');
  t.equal(resolveCoordinatorConfig({}).surfaces['home']?.completion, 0, 'default surfaces: completion off');
  t.throws(() => resolveCoordinatorConfig({ surfaces: { home: { click: 0, watch: 0, completion: -1 } } }), /surfaces\.home\.completion/);
  // One weight of a known surface merges over its defaults (what --set coordinator.surfaces.home.completion=1 writes).
  t.same(resolveCoordinatorConfig({ surfaces: { home: { completion: 1 } as never } }).surfaces['home'], { click: 0.6, watch: 0.4, completion: 1 });
  t.throws(() => resolveCoordinatorConfig({ surfaces: { kids: { completion: 1 } as never } }), /surfaces\.kids\.click/, 'a new surface needs its weights');
});

t.test('without exploration or diversity the list is the utility order, scores non-increasing', async (t) => {
  const cands = [cand(1, 0.2), cand(2, 0.9), cand(3, 0.5), cand(4, 0.7)];
  const out = applyPolicy(cands, { k: 3, requestId: 'r', userId: 1, exploration: noExplore, diversity: noDiversity });
  t.same(out.map((i) => i.videoId), [2, 4, 3]);
  t.same(out.map((i) => i.score), [0.9, 0.7, 0.5]);
  t.same(out.map((i) => i.source), [Source.RETRIEVAL, Source.RETRIEVAL, Source.RETRIEVAL]);
  t.equal(applyPolicy(cands, { k: 10, requestId: 'r', userId: 1, exploration: noExplore, diversity: noDiversity }).length, 4, 'fewer candidates than k');
});

t.test('diversity: the top 10 spans categories when candidates allow', async (t) => {
  // 20 candidates of category 0 score highest, then 3 categories with lower scores.
  const cands: PolicyCandidate[] = [];
  for (let i = 0; i < 20; i++) cands.push(cand(100 + i, 1 - i * 0.01, 0));
  for (let i = 0; i < 12; i++) cands.push(cand(200 + i, 0.5 - i * 0.01, 1 + (i % 3)));
  const plain = applyPolicy(cands, { k: 10, requestId: 'r', userId: 1, exploration: noExplore, diversity: noDiversity });
  t.equal(new Set(plain.map((i) => cands.find((c) => c.videoId === i.videoId)!.category)).size, 1, 'utility order alone is one genre');
  const out = applyPolicy(cands, { k: 10, requestId: 'r', userId: 1, exploration: noExplore, diversity: cfg.diversity });
  const cats = out.map((i) => cands.find((c) => c.videoId === i.videoId)!.category);
  t.ok(new Set(cats).size >= 3, `top 10 spans ${new Set(cats).size} categories`);
  const perCat = new Map<number, number>();
  for (const c of cats) perCat.set(c, (perCat.get(c) ?? 0) + 1);
  t.ok([...perCat.values()].every((n) => n <= cfg.diversity.maxPerCategory), 'at most 3 per category');
  t.equal(out[0]!.videoId, 100, 'the best item stays on top');
  for (let i = 1; i < out.length; i++) t.ok(out[i - 1]!.score >= out[i]!.score, 'scores non-increasing after reordering');
  // One-genre candidates: the cap cannot hold, the window is still full.
  const mono = diversify(cands.slice(0, 20), 1, cfg.diversity);
  t.equal(mono.length, 20);
  t.same(mono.slice(0, 10).map((c) => c.videoId), cands.slice(0, 10).map((c) => c.videoId));
});

t.test('exploration: ~5% of eligible slots, deterministic per request id', async (t) => {
  const cands: PolicyCandidate[] = [];
  for (let i = 0; i < 200; i++) cands.push(cand(i + 1, 1 - i / 200, i % 16));
  for (let i = 0; i < 20; i++) cands.push(cand(1000 + i, 0.001, i % 16, Source.TRENDING));
  const k = 20;
  let explored = 0;
  let eligible = 0;
  let fromTrending = 0;
  const requests = 2000;
  for (let r = 0; r < requests; r++) {
    const out = applyPolicy(cands, { k, requestId: `req-${r}`, userId: 7, exploration: cfg.exploration, diversity: cfg.diversity });
    t.equal(out.length, k);
    t.equal(new Set(out.map((i) => i.videoId)).size, k, 'distinct');
    t.not(out[0]!.source, Source.EXPLORATION, 'the protected top slot is never explored');
    for (const it of out) {
      if (it.source !== Source.EXPLORATION) continue;
      explored++;
      if (it.videoId >= 1000) fromTrending++;
    }
    eligible += k - cfg.exploration.protectedTopSlots;
    if (r % 100 === 0) {
      t.same(
        applyPolicy(cands, { k, requestId: `req-${r}`, userId: 7, exploration: cfg.exploration, diversity: cfg.diversity }),
        out,
        'same request id → same list',
      );
    }
  }
  const share = explored / eligible;
  t.ok(share > 0.04 && share < 0.06, `exploration share ${share.toFixed(4)} ≈ 0.05`);
  t.equal(fromTrending, explored, 'exploration slots drew trending candidates first');
  const a = applyPolicy(cands, { k: 200, requestId: 'x', userId: 1, exploration: cfg.exploration, diversity: cfg.diversity });
  const b = applyPolicy(cands, { k: 200, requestId: 'y', userId: 1, exploration: cfg.exploration, diversity: cfg.diversity });
  t.notSame(a.map((i) => i.videoId), b.map((i) => i.videoId), 'different request ids explore differently');
});

t.test('exploration falls back to lower ranks when there is no trending candidate', async (t) => {
  const cands: PolicyCandidate[] = [];
  for (let i = 0; i < 300; i++) cands.push(cand(i + 1, 1 - i / 300, i % 16));
  const out = applyPolicy(cands, { k: 100, requestId: 'q', userId: 3, exploration: { epsilon: 0.3, protectedTopSlots: 1 }, diversity: cfg.diversity });
  const explored = out.filter((i) => i.source === Source.EXPLORATION);
  t.ok(explored.length > 10, `${explored.length} exploration slots`);
  t.ok(explored.every((i) => i.videoId > 100), 'picked from outside the top k ranks');
  for (let i = 1; i < out.length; i++) t.ok(out[i - 1]!.score >= out[i]!.score);
});
