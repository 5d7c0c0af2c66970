/**
 * Fake pipeline ports for the coordinator's tests: two or more item shards with known candidate ids
 * (shard s owns ids s*1000+1 ..), a ranker whose scores reverse the pool order, user state and
 * popular/trending lists, each able to fail or hang on request.
 */
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { UpnextError, StatusCode } from '../../core/status.js';
import type { PipelinePorts, RankerScores } from '../../actors/coordinator/ports.js';
import type { CandidateBatchMsg, ShardSearchReplyMsg, UserStateReplyMsg } from '../../protos/codec.js';
import { emptyCandidateBatch } from '../../protos/convert.js';
import { fakeUserStateReply } from './fixtures.js';

const spec = DEFAULT_FEATURE_SPEC;

/** A promise that never settles (a hung neighbour). */
export const NEVER = new Promise<never>(() => {});

/** `ids` as a candidate batch scored by `score`, with fixed item features. */
export function batchOf(ids: number[], score: (id: number, i: number) => number): CandidateBatchMsg {
  const b = emptyCandidateBatch();
  ids.forEach((id, i) => {
    b.videoIds.push(id);
    b.scores.push(score(id, i));
    b.creatorIds.push(id % 97);
    b.categories.push(id % spec.numCategories);
    b.durationS.push(30 + (id % 600));
    b.uploadTsMs.push(1_700_000_000_000);
    b.impressions.push(100);
    b.clicks.push(5);
    b.watches.push(3);
    b.watchRatioSums.push(1.5);
  });
  return b;
}

/** Shard s owns ids s*1000+1 .. s*1000+perShard; scores fall with the id inside a shard. */
export function shardBatch(s: number, perShard: number, excludes: readonly number[]): CandidateBatchMsg {
  const ex = new Set(excludes);
  const ids = Array.from({ length: perShard }, (_, i) => s * 1000 + i + 1).filter((id) => !ex.has(id));
  return batchOf(ids, (id) => 1 - (id % 1000) / 1000 - s * 0.0001);
}

function userReply(userId: number, recent: number[]): UserStateReplyMsg {
  return fakeUserStateReply(userId, recent, spec);
}

/** What the fakes do; defaults: 50 candidates per shard, everything answers. */
export interface FakeOptions {
  shards?: number;
  perShard?: number;
  slowShards?: number[];
  ranker?: 'ok' | 'fail' | 'hang' | 'garbage';
  userState?: 'ok' | 'fail' | 'hang';
  recent?: number[];
  popularSize?: number;
}

/** The ports and what they were asked. */
export function pipelineFakes(o: FakeOptions = {}) {
  const calls = { ranker: 0, shards: [] as number[], rankerRows: 0, rankerWidth: 0 };
  const perShard = o.perShard ?? 50;
  const popularIds = Array.from({ length: o.popularSize ?? 300 }, (_, i) => 90_000 + i);
  const trendingIds = Array.from({ length: 30 }, (_, i) => 80_000 + i);
  const ports: PipelinePorts = {
    userState: {
      get: (userId) =>
        o.userState === 'hang' ? NEVER : o.userState === 'fail' ? Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, 'no responders')) : Promise.resolve(userReply(userId, o.recent ?? [])),
    },
    shards: {
      search: (shard, req): Promise<ShardSearchReplyMsg> => {
        calls.shards.push(shard);
        if (o.slowShards?.includes(shard)) return NEVER;
        return Promise.resolve({ shard, shardSize: perShard, searchMs: 0.1, candidates: shardBatch(shard, Math.min(perShard, req.k), req.excludeVideoIds) });
      },
    },
    ranker: {
      score: (rows: Float32Array, nRows: number): Promise<RankerScores> => {
        calls.ranker++;
        calls.rankerRows = nRows;
        calls.rankerWidth = rows.length / nRows;
        if (o.ranker === 'fail') return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, 'no ranker replica'));
        if (o.ranker === 'hang') return NEVER;
        if (o.ranker === 'garbage') return Promise.resolve({} as RankerScores);
        // Reverse of the pool order: ranking visibly changes the retrieval order.
        const pClick = new Float32Array(nRows).map((_, i) => 0.05 + (0.5 * i) / nRows);
        const watchLog1p = new Float32Array(nRows).map((_, i) => Math.log1p(10 + (300 * i) / nRows));
        return Promise.resolve({ pClick, watchLog1p });
      },
    },
    popular: {
      get: (_c, _d, n, trending) => Promise.resolve(trending ? batchOf(trendingIds.slice(0, n), (_id, i) => 100 - i) : batchOf(popularIds.slice(0, n), (_id, i) => 1000 - i)),
    },
  };
  return { ports, calls };
}

