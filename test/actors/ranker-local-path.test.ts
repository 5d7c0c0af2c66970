/**
 * Integration: the local-first ranking path against the KServe gRPC path, with the tiny trained
 * models (real ONNX Runtime in piscina workers, test/fixtures/assets.ts), real gRPC on port 0 and,
 * for the coordinator, a real nats-server (the event stream) with in-process fakes for user state,
 * item shards and popular lists.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { SeededRng } from '../../core/clock.js';
import type { Clock } from '../../core/clock.js';
import { Deadline } from '../../core/deadline.js';
import type { RequestContext } from '../../core/events.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import type { ShardSearchReplyMsg, ShardSearchRequestMsg, UserStateReplyMsg } from '../../protos/codec.js';
import { RankerClient, startRanker } from '../../actors/ranker/index.js';
import { LocalFirstRankerScorer } from '../../actors/ranker/local-first.js';
import { loadRecommenderPackage, startCoordinator } from '../../actors/coordinator/index.js';
import type { CoordinatorHandle, PopularSource, ShardSearcher, UserStateSource } from '../../actors/coordinator/index.js';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { natsFixture } from '../fixtures/nats.js';
import { fakeCandidateBatch } from './fixtures.js';

const quiet = { log: () => undefined };
const ROWS = 550;

/** Ranker rows with values in the range writeRankerRow produces (bounded, mostly in [0, 1]). */
function randomRows(n: number, width: number, seed: number): Float32Array {
  const rng = new SeededRng(seed);
  return Float32Array.from({ length: n * width }, () => rng.next() * 2 - 0.5);
}

function bits(a: Float32Array): number[] {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
}

t.test('local path: bitwise the scores of the KServe path; falls back to a remote replica when the local one stops', async (t) => {
  const assets = await ensureTinyAssets();
  const width = rankerRowWidth(assets.manifest.featureSpec);
  const a = await startRanker({ modelDir: assets.modelDir, workers: 1 }, quiet);
  const b = await startRanker({ modelDir: assets.modelDir, workers: 1 }, quiet);
  const toA = new RankerClient({ addresses: () => [a.address] });
  const toB = new RankerClient({ addresses: () => [b.address] });
  t.teardown(async () => {
    toA.close();
    toB.close();
    await a.stop();
    await b.stop();
  });

  const scorer = new LocalFirstRankerScorer({ local: () => a.local, remote: toB, hasRemote: () => true });
  const rows = randomRows(ROWS, width, 11);
  const viaKServe = await toA.score(Float32Array.from(rows), ROWS, Deadline.after(10_000));
  const callsBefore = a.stats().server.inferCalls;
  const viaLocal = await scorer.score(rows, ROWS, Deadline.after(10_000));
  t.equal(viaLocal.path, 'local', 'the answer reports the local path');
  t.equal(viaLocal.replica, a.address);
  t.equal(rows.length, 0, 'the row buffer was transferred to the worker, not copied');
  t.equal(a.stats().server.inferCalls, callsBefore, 'no gRPC call on the local path');
  t.equal(viaLocal.pClick.length, ROWS);
  t.same(bits(viaLocal.pClick), bits(viaKServe.pClick), 'p_click bitwise equal');
  t.same(bits(viaLocal.watchLog1p), bits(viaKServe.watchLog1p), 'watch_log1p_s bitwise equal');
  // Inclusive: these rows are random, far outside the training data, and a float32 sigmoid of a
  // large logit is exactly 1 (the model trained with the watch-loss weight 0.1 reaches that here).
  t.ok(viaLocal.pClick.every((p) => Number.isFinite(p) && p >= 0 && p <= 1), 'probabilities');

  // Several at once (they may share a batch, then their rows are copied): the same scores per request.
  const many = [1, 2, 3, 4].map((s) => randomRows(40 + s, width, 100 + s));
  const expected = await Promise.all(many.map((r) => toA.score(Float32Array.from(r), r.length / width, Deadline.after(10_000))));
  const got = await Promise.all(many.map((r) => scorer.score(r, r.length / width, Deadline.after(10_000))));
  got.forEach((g, i) => {
    t.equal(g.path, 'local');
    t.same(bits(g.pClick), bits(expected[i]!.pClick), `concurrent request ${i}`);
  });
  t.match(scorer.stats(), { localAnswered: 5, remoteAnswered: 0, failed: 0 });

  // The local replica stops: its batcher refuses before the rows leave, so they go to B intact.
  await a.stop();
  const again = randomRows(ROWS, width, 11);
  const fallback = await scorer.score(again, ROWS, Deadline.after(10_000));
  t.equal(fallback.path, 'remote');
  t.equal(fallback.replica, b.address);
  t.same(bits(fallback.pClick), bits(viaKServe.pClick), 'the remote replica scores the same rows to the same bits');
  t.match(scorer.stats(), { localAnswered: 5, remoteAnswered: 1, localFailures: 1, remoteReasons: { localFailed: 1 } });
});

// ---- the coordinator, with and without the local ranker

const CONTEXT: RequestContext = { device: 'android', country: 'BR', localHour: 21 };


function fakePorts(spec: { numCategories: number; embeddingDim: number }, nowMs: number): { userState: UserStateSource; shards: ShardSearcher; popular: PopularSource } {
  return {
    userState: {
      get: async (userId): Promise<UserStateReplyMsg> => ({
        known: true,
        userId,
        recentVideoIds: [1003, 2004],
        recentCreatorIds: [1003 % 31, 2004 % 31],
        categoryAffinity: Array.from({ length: spec.numCategories }, (_, i) => (i % 3) / 2),
        impressions: 5,
        clicks: 1,
        watches: 2,
        watchSeconds: 90,
        embedding: Array.from({ length: spec.embeddingDim }, (_, i) => ((i % 5) - 2) / 8),
        completeness: 1,
        partition: 0,
        appliedSeq: 0,
      }),
    },
    shards: {
      search: async (shard: number, req: ShardSearchRequestMsg): Promise<ShardSearchReplyMsg> => {
        const ex = new Set(req.excludeVideoIds);
        const ids = Array.from({ length: 300 }, (_, i) => (shard + 1) * 10_000 + i).filter((id) => !ex.has(id)).slice(0, req.k);
        return { shard, shardSize: 300, searchMs: 0.1, candidates: fakeCandidateBatch(ids, (i) => 0.9 - i * 0.001 - shard * 0.0001, nowMs) };
      },
    },
    popular: {
      get: async (_c, _d, n, trending) => fakeCandidateBatch(Array.from({ length: Math.min(n, 100) }, (_, i) => (trending ? 7000 : 8000) + i), (i) => 100 - i, nowMs),
    },
  };
}

interface RecommendReply {
  items: { videoId: string; score: number; pClick: number; expectedWatchSeconds: number; source: number }[];
  degraded: string[];
}

function recommend(address: string, req: Record<string, unknown>): Promise<RecommendReply> {
  const Recommender = (grpc.loadPackageDefinition(loadRecommenderPackage()) as unknown as { upnext: { v1: { Recommender: grpc.ServiceClientConstructor } } }).upnext.v1
    .Recommender;
  const client = new Recommender(address, grpc.credentials.createInsecure());
  return new Promise<RecommendReply>((resolve, reject) => {
    (client as unknown as Record<string, (r: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: RecommendReply) => void) => void>)
      .recommend!.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res);
      });
  });
}

t.test('a coordinator with a local ranker answers exactly what the gRPC-only one does, on the local path', async (t) => {
  const assets = await ensureTinyAssets();
  const spec = assets.manifest.featureSpec;
  const { nc } = await natsFixture(t, 'upnext-local-ranker');
  const ranker = await startRanker({ modelDir: assets.modelDir, workers: 1 }, quiet);
  t.teardown(() => ranker.stop());
  // One frozen wall clock for both coordinators, so item ages (a ranker feature) are equal.
  const nowMs = Date.now();
  const clock: Clock = { nowMs: () => nowMs, monotonicMs: () => performance.now() };
  const config = { budgets: { userStateMs: 5000, retrievalMs: 5000, rankingMs: 5000, fallbackMs: 5000 }, defaultDeadlineMs: 12_000 };
  const common = { nc, cluster: `localrank${process.pid}`, itemShards: 2, userPartitions: 4, modelDir: assets.modelDir, config, clock, ports: fakePorts(spec, nowMs) };
  let localOn = true;
  const withLocal: CoordinatorHandle = await startCoordinator({ ...common, rankerAddresses: () => [ranker.address], localRanker: () => (localOn ? ranker.local : undefined) });
  t.teardown(() => withLocal.stop());
  const grpcOnly: CoordinatorHandle = await startCoordinator({ ...common, rankerAddresses: () => [ranker.address] });
  t.teardown(() => grpcOnly.stop());

  const req = { userId: '4242', k: 30, context: CONTEXT, surface: 'home', requestId: 'local-1' };
  const inferBefore = ranker.stats().server.inferCalls;
  const local = await recommend(withLocal.address, req);
  t.equal(ranker.stats().server.inferCalls, inferBefore, 'the local coordinator made no gRPC call');
  const remote = await recommend(grpcOnly.address, req);
  t.equal(ranker.stats().server.inferCalls, inferBefore + 1, 'the gRPC-only coordinator made one');
  t.same(local.degraded, [], 'ranked');
  t.same(remote.degraded, [], 'ranked');
  t.equal(local.items.length, 30);
  t.same(local.items, remote.items, 'same items, scores and P(click) on both paths');
  t.match(withLocal.stats().rankerPaths, { localAnswered: 1, remoteAnswered: 0, failed: 0 }, 'stats report the local path');
  t.equal(grpcOnly.stats().rankerPaths, undefined, 'no path counters without a local ranker');

  // No local replica any more (as when the shard map stops it): the replicas in the address list
  // answer over gRPC.
  localOn = false;
  const without = await recommend(withLocal.address, req);
  t.same(without.items, remote.items, 'no local replica: the shard map replica over gRPC answers');
  t.match(withLocal.stats().rankerPaths, { localAnswered: 1, remoteAnswered: 1, remoteReasons: { noLocal: 1 } });
});
