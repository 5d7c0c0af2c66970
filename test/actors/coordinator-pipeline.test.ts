import t from 'tap';
import { Deadline } from '../../core/deadline.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { specHash } from '../../core/features/index.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import type { CoordinatorConfig } from '../../actors/coordinator/config.js';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import { RecommendPipeline } from '../../actors/coordinator/pipeline.js';
import { servingTimeOffsetMs } from '../../actors/coordinator/index.js';
import type { PipelinePorts, ServingModel, WantedSpace } from '../../actors/coordinator/ports.js';
import { Source } from '../../actors/coordinator/types.js';
import type { RecommendResult } from '../../actors/coordinator/types.js';
import { validateRecommendRequest } from '../../actors/coordinator/validate.js';
import { completenessStats } from '../../actors/coordinator/stats.js';
import { batchOf, pipelineFakes } from './pipeline-fakes.js';
import { StatusCode, UpnextError } from '../../core/status.js';

const spec = DEFAULT_FEATURE_SPEC;
const model: ServingModel = { version: 'test-v1', spec, specHash: specHash(spec), calibration: { type: 'identity' } };
const quiet: CoordinatorConfig = { exploration: { epsilon: 0 }, diversity: { window: 0 } };

function pipeline(ports: PipelinePorts, shards: number, config: CoordinatorConfig = {}) {
  return new RecommendPipeline({ ports, config: resolveCoordinatorConfig(config), model, itemShards: shards });
}

function query(k: number, extra: Record<string, unknown> = {}) {
  return validateRecommendRequest({ userId: '7', k, context: { device: 'web', country: 'BR', localHour: 20 }, surface: 'home', requestId: 'req-1', ...extra });
}

/** What is wrong with an answer: not exactly k, duplicates, unsorted, or a banned id (empty when fine). */
function listProblems(r: RecommendResult, k: number, banned: number[]): string[] {
  const problems: string[] = [];
  if (r.items.length !== k) problems.push(`${r.items.length} items, wanted exactly ${k}`);
  const ids = r.items.map((i) => i.videoId);
  if (new Set(ids).size !== ids.length) problems.push('duplicates');
  for (let i = 1; i < r.items.length; i++) if (r.items[i - 1]!.score < r.items[i]!.score) problems.push(`not sorted by score at ${i}`);
  for (const id of ids) if (banned.includes(id)) problems.push(`watched or excluded id ${id} served`);
  return problems;
}

t.test('healthy pipeline: k distinct items sorted by score, filters applied, full coverage', async (t) => {
  const { ports, calls } = pipelineFakes({ shards: 3, recent: [1001, 2002] });
  const p = pipeline(ports, 3);
  const r = await p.recommend(query(20, { excludeVideoIds: ['1', '2'], debug: true }), Deadline.after(1000));
  t.same(listProblems(r, 20, [1, 2, 1001, 2002]), [], 'k distinct items, sorted, filters applied');
  t.equal(r.coverage, 1);
  t.same(r.degraded, []);
  t.equal(r.outcome, 'ok');
  t.equal(r.modelVersion, 'test-v1');
  t.equal(r.requestId, 'req-1');
  t.same([...calls.shards].sort(), [0, 1, 2], 'every shard asked once');
  t.equal(calls.ranker, 1, 'one batched ranker call');
  t.equal(calls.rankerWidth, rankerRowWidth(spec), 'rows have the ranker width');
  t.equal(calls.rankerRows, 150 - 4 + 30, 'pool = merged retrieval + trending, minus filtered');
  t.ok(r.timings && r.timings.totalMs >= 0, 'timings when debug');
  t.ok(r.items.every((i) => i.source === Source.RETRIEVAL || i.source === Source.TRENDING));
  const noDebug = await p.recommend(query(5), Deadline.after(1000));
  t.equal(noDebug.timings, undefined, 'no timings without debug');
});

t.test('a slow shard: coverage (S-1)/S and a degraded reason, still k items', async (t) => {
  const { ports } = pipelineFakes({ shards: 4, slowShards: [2] });
  const p = pipeline(ports, 4, { budgets: { retrievalMs: 30 } });
  const r = await p.recommend(query(30), Deadline.after(1000));
  t.same(listProblems(r, 30, []), [], 'k distinct items, sorted, filters applied');
  t.equal(r.coverage, 0.75);
  t.ok(r.degraded.some((d) => d === 'shard 2 timed out'), `degraded: ${r.degraded.join('; ')}`);
  t.equal(r.outcome, 'degraded');
  t.notOk(r.items.some((i) => i.shard === 2 && i.source === Source.RETRIEVAL), 'nothing retrieved from the missing shard');
  t.equal(p.counters.lastCoverage, 0.75);
});

t.test('a failing ranker: retrieval order and a degraded reason', async (t) => {
  const { ports } = pipelineFakes({ shards: 2, ranker: 'fail' });
  const p = pipeline(ports, 2, { ...quiet, trendingCandidates: 0 });
  const r = await p.recommend(query(10), Deadline.after(1000));
  t.same(listProblems(r, 10, []), [], 'k distinct items, sorted, filters applied');
  t.ok(r.degraded.some((d) => d.startsWith('ranking skipped:')), r.degraded.join('; '));
  // Merged retrieval order: shard 0 and 1 interleave by score (1 - i/1000 - s*0.0001).
  t.same(r.items.map((i) => i.videoId), [1, 1001, 2, 1002, 3, 1003, 4, 1004, 5, 1005]);
  const healthy = await pipeline(pipelineFakes({ shards: 2 }).ports, 2, { ...quiet, trendingCandidates: 0 }).recommend(query(10), Deadline.after(1000));
  t.notSame(healthy.items.map((i) => i.videoId), r.items.map((i) => i.videoId), 'a working ranker reorders');
  const hang = await pipeline(pipelineFakes({ shards: 2, ranker: 'hang' }).ports, 2, { ...quiet, budgets: { rankingMs: 20 } }).recommend(query(10), Deadline.after(1000));
  t.ok(hang.degraded.includes('ranking skipped: timed out'), 'a hung ranker costs its budget, then retrieval order');
  t.equal(hang.items.length, 10);
});

t.test('user state missing: new-user path with popular + trending candidates', async (t) => {
  for (const mode of ['fail', 'hang'] as const) {
    const { ports, calls } = pipelineFakes({ shards: 2, userState: mode });
    const r = await pipeline(ports, 2, { budgets: { userStateMs: 20 } }).recommend(query(15, { excludeVideoIds: ['90000'] }), Deadline.after(1000));
    t.same(listProblems(r, 15, [90000]), [], 'k distinct items, sorted, filters applied');
    t.ok(r.degraded.some((d) => d.startsWith('user state') && d.endsWith('treated as a new user')), r.degraded.join('; '));
    t.ok(r.degraded.includes('retrieval skipped: no user embedding'));
    t.equal(calls.shards.length, 0, 'no shard searched without an embedding');
    t.equal(r.coverage, 0);
    t.ok(r.items.every((i) => i.source !== Source.RETRIEVAL));
    t.equal(calls.ranker, 1, 'popular candidates are still ranked');
  }
});

t.test('too few candidates: the tail is filled from the popular list', async (t) => {
  const { ports } = pipelineFakes({ shards: 1, perShard: 5 });
  const r = await pipeline(ports, 1, { trendingCandidates: 0 }).recommend(query(12), Deadline.after(1000));
  t.same(listProblems(r, 12, []), [], 'k distinct items, sorted, filters applied');
  t.equal(r.items.filter((i) => i.source === Source.FALLBACK).length, 7);
  t.ok(r.degraded.includes('filled 7 of 12 slots from the popular list'));
});

t.test('admission sheds beyond the limit with the popular list at once', async (t) => {
  const { ports } = pipelineFakes({ shards: 1, userState: 'hang' });
  const p = pipeline(ports, 1, { admission: { maxConcurrent: 1, maxQueue: 0 }, budgets: { userStateMs: 50 } });
  const first = p.recommend(query(5), Deadline.after(1000));
  const shed = await p.recommend(query(5, { excludeVideoIds: ['90001'] }), Deadline.after(1000));
  t.equal(shed.outcome, 'shed');
  t.ok(shed.degraded.includes('shed: overload'));
  t.same(listProblems(shed, 5, [90001]), [], 'k distinct items, sorted, filters applied');
  t.ok(shed.items.every((i) => i.source === Source.FALLBACK));
  t.equal((await first).items.length, 5, 'the admitted request still completes');
  t.equal(p.counters.outcomes.shed, 1);
  t.equal(p.admission.stats().inFlight, 0, 'slot released');
});

t.test('an unexpected failure still answers with the fallback list', async (t) => {
  const { ports } = pipelineFakes({ shards: 2, ranker: 'garbage' });
  const p = pipeline(ports, 2);
  const r = await p.recommend(query(8), Deadline.after(1000));
  t.equal(r.outcome, 'fallback');
  t.ok(r.degraded.some((d) => d.startsWith('internal:')), r.degraded.join('; '));
  t.same(listProblems(r, 8, []), [], 'k distinct items, sorted, filters applied');
  t.equal(p.admission.stats().inFlight, 0);
});

t.test('setModel and setShardCount apply to the next request', async (t) => {
  const { ports, calls } = pipelineFakes({ shards: 3 });
  const p = pipeline(ports, 2);
  p.setShardCount(3);
  p.setModel({ ...model, version: 'test-v2' });
  const r = await p.recommend(query(5), Deadline.after(1000));
  t.equal(r.modelVersion, 'test-v2');
  t.same([...calls.shards].sort(), [0, 1, 2]);
  t.throws(() => p.setShardCount(0), TypeError);
});

t.test('serving time: items are aged from wall time minus the offset (a replayed world ends "now")', async (t) => {
  const UPLOAD = 1_700_000_000_000; // batchOf's upload time
  const ageColumn = async (servingTimeOffsetMs: number): Promise<number> => {
    const { ports } = pipelineFakes();
    let age = NaN;
    const ranker = ports.ranker;
    const capture: PipelinePorts = {
      ...ports,
      ranker: {
        score: (rows, nRows, deadline) => {
          age = rows[11]!; // first row's age feature: log1p(age hours) / 10
          return ranker.score(rows, nRows, deadline);
        },
      },
    };
    const p = new RecommendPipeline({ ports: capture, config: resolveCoordinatorConfig(quiet), model, itemShards: 2, servingTimeOffsetMs });
    await p.recommend(query(5), Deadline.after(5000));
    return age;
  };
  const wall = await ageColumn(0);
  t.ok(wall > 0.95, `without an offset a 2023 upload is years old at serving (${wall.toFixed(3)})`);
  const offset = Date.now() - (UPLOAD + 5 * 3_600_000);
  const shifted = await ageColumn(offset);
  t.ok(Math.abs(shifted - Math.log1p(5) / 10) < 0.01, `with the offset it is ~5 hours old (${shifted.toFixed(3)} vs ${(Math.log1p(5) / 10).toFixed(3)})`);

  const DAY = 86_400_000;
  const now = Date.UTC(2026, 10, 26);
  t.equal(servingTimeOffsetMs('clock', now - 700 * DAY, now), 0, "'clock' never shifts");
  t.equal(servingTimeOffsetMs('world', now - 700 * DAY, now), 700 * DAY, "'world' makes the history end now");
  t.equal(servingTimeOffsetMs('auto', now - 700 * DAY, now), 700 * DAY, "'auto' shifts a world that ended long ago");
  t.equal(servingTimeOffsetMs('auto', now - 3_600_000, now), 0, "'auto' leaves live data (ended an hour ago) alone");
  t.equal(servingTimeOffsetMs('auto', undefined, now), 0, 'no world: no shift');
});

t.test('feature completeness: the user\'s as user state reports it, each ranked candidate\'s from its features', async (t) => {
  const { ports } = pipelineFakes({ shards: 2, perShard: 40 });
  const userState = ports.userState;
  const withCompleteness: PipelinePorts = {
    ...ports,
    userState: { get: async (...a: Parameters<typeof userState.get>) => ({ ...(await userState.get(...a)), completeness: 0.4 }) },
    shards: {
      search: async (shard, req, deadline) => {
        const reply = await ports.shards.search(shard, req, deadline);
        // Shard 1's items have no impressions yet: 2 of 3 indicators each.
        if (shard === 1 && reply.candidates) reply.candidates.impressions.fill(0);
        return reply;
      },
    },
  };
  const p = pipeline(withCompleteness, 2, quiet);
  await p.recommend(query(10), Deadline.after(1000));
  const s = completenessStats(p.counters.completeness);
  const pool = 40 + 40 + 30; // both shards + trending
  t.equal(s.requests, 1);
  t.equal(s.userStateMissing, 0);
  t.equal(s.userSum, 0.4);
  t.equal(s.items, pool);
  t.ok(Math.abs(s.itemSum - (70 + (40 * 2) / 3)) < 1e-9, `item sum ${s.itemSum}`);
  t.ok(Math.abs(s.itemMean - (70 + 80 / 3) / pool) < 1e-9);

  const failing = pipeline(pipelineFakes({ shards: 2, userState: 'fail' }).ports, 2, quiet);
  await failing.recommend(query(10), Deadline.after(1000));
  const f = completenessStats(failing.counters.completeness);
  t.equal(f.requests, 1, 'a request ranked with new-user defaults still counts');
  t.equal(f.userStateMissing, 1);
  t.equal(f.userMean, 0, 'missing user state counts as no user data');
});

t.test('embedding spaces: the request names the space; a vector of other towers is never searched', async (t) => {
  const spaced = (ports: PipelinePorts) =>
    new RecommendPipeline({ ports, config: resolveCoordinatorConfig(quiet), model: { ...model, space: 'aaaa' }, itemShards: 2 });
  // What each port was asked, and a user-state reply in the space the test chooses.
  const withSpace = (replySpace: string | undefined, embedding?: number[]) => {
    const { ports, calls } = pipelineFakes({ shards: 2 });
    const asked = { userSpace: [] as (WantedSpace | undefined)[], shardSpace: [] as (string | undefined)[] };
    const userState = ports.userState;
    const shards = ports.shards;
    return {
      calls,
      asked,
      ports: {
        ...ports,
        userState: {
          get: async (userId: number, ctx: Parameters<PipelinePorts['userState']['get']>[1], d: Deadline, want?: WantedSpace) => {
            asked.userSpace.push(want);
            const reply = await userState.get(userId, ctx, d);
            return { ...reply, ...(replySpace !== undefined ? { space: replySpace } : {}), ...(embedding !== undefined ? { embedding } : {}) };
          },
        },
        shards: {
          search: (s: number, req: Parameters<PipelinePorts['shards']['search']>[1], d: Deadline) => {
            asked.shardSpace.push(req.space);
            return shards.search(s, req, d);
          },
        },
      } satisfies PipelinePorts,
    };
  };

  const same = withSpace('aaaa');
  const ok = await spaced(same.ports).recommend(query(10), Deadline.after(1000));
  t.same(same.asked.userSpace, [{ space: 'aaaa', modelVersion: model.version }], 'the user-state read names the space and the model version');
  t.same(same.asked.shardSpace, ['aaaa', 'aaaa'], 'every shard search names it');
  t.equal(ok.coverage, 1);
  t.same(ok.degraded, []);

  // A partition of other towers (half-done rolling restart) answered with its own vector.
  const other = withSpace('bbbb');
  const p = spaced(other.ports);
  const r = await p.recommend(query(10), Deadline.after(1000));
  t.equal(other.calls.shards.length, 0, 'a vector from another space is not searched');
  t.ok(r.degraded.some((d) => d.includes('embedding space bbbb') && d.includes('aaaa')), r.degraded.join('; '));
  t.equal(r.items.length, 10, 'the request is still answered (popular candidates, ranked)');
  t.ok(r.items.every((i) => i.source !== Source.RETRIEVAL));
  t.equal(p.counters.degradations.spaceMismatch, 1);

  // A partition that refused to embed for our space: empty embedding and no space.
  const refused = withSpace('', []);
  const r2 = await spaced(refused.ports).recommend(query(10), Deadline.after(1000));
  t.equal(refused.calls.shards.length, 0);
  t.ok(r2.degraded.some((d) => d.startsWith('user embedding unavailable')), r2.degraded.join('; '));

  // An older build states no space but sends its vector: accepted as before.
  const old = withSpace(undefined);
  const r3 = await spaced(old.ports).recommend(query(10), Deadline.after(1000));
  t.equal(r3.coverage, 1);

  // A shard of another space refuses the search: that shard counts as missed.
  const { ports } = pipelineFakes({ shards: 2 });
  const refusing = spaced({
    ...ports,
    shards: {
      search: (s, req, d) =>
        s === 1 ? Promise.reject(new UpnextError(StatusCode.FAILED_PRECONDITION, 'space: the user vector is in embedding space aaaa, shard 1 serves space cccc')) : ports.shards.search(s, req, d),
    },
  });
  const r4 = await refusing.recommend(query(10), Deadline.after(1000));
  t.equal(r4.coverage, 0.5);
  t.equal(refusing.counters.degradations.spaceMismatch, 1);
  t.equal(refusing.counters.degradations.shardMiss, 1);
});
