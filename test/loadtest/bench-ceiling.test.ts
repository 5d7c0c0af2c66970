// The in-process ceiling of `make bench` on the tiny assets: it must do the same work as the
// cluster — so its answers must equal the real cluster's (nats-server, node processes, faiss, ONNX,
// gRPC) for the same requests — and its harness must report a positive QPS per core.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { startLocalCluster } from '../../cluster/local/launcher.js';
import { connectRecommender } from '../../cluster/local/client.js';
import type { UpnextConfigInput } from '../../cluster/config.js';
import { Source } from '../../actors/coordinator/types.js';
import { ceilingQueries, openInProcessCluster, recommendInProcess, runCeiling } from '../../loadtest/bench/ceiling.js';
import { benchMix } from '../../loadtest/bench/end-to-end.js';
import { buildEncodedShards, measureShardedRecall, sampleUserVectors } from '../../loadtest/bench/recall.js';
import { ItemTower } from '../../actors/item-shard/item-tower.js';

const assets = await ensureTinyAssets();
// Generous budgets: a stage that times out on a busy machine would make the two answers differ for
// a reason that is not the code's.
const config: UpnextConfigInput = {
  cluster: { name: `bench-ceiling-${process.pid}`, nodes: 2, itemShards: 2, userPartitions: 4, replicas: 1 },
  coordinator: { defaultDeadlineMs: 20_000, budgets: { userStateMs: 5000, retrievalMs: 5000, rankingMs: 5000, policyMs: 1000, fallbackMs: 5000 } },
  node: { loadReportIntervalMs: 0 },
};
const inProcess = await openInProcessCluster({ worldDir: assets.worldDir, modelDir: assets.modelDir, config });
t.teardown(() => inProcess.close());
const queries = await ceilingQueries({ worldDir: assets.worldDir, count: 60, mix: benchMix(), seed: 5 });

t.test('the ceiling harness answers every request through the full pipeline and reports QPS per core', async (t) => {
  t.equal(inProcess.items, 2000, 'every world video is in one of the shards');
  const r = await runCeiling(inProcess, queries, { warmUp: 10 });
  t.equal(r.requests, 50);
  t.same(r.outcomes, { ok: 50 }, 'nothing degraded, nothing from the fallback');
  t.ok(r.qpsPerCore > 0 && Number.isFinite(r.qpsPerCore), `QPS per core ${r.qpsPerCore}`);
  t.ok(r.cpuSeconds > 0);
  // Where the ceiling's time goes: the pipeline's own stage timings of the timed answers.
  t.ok(r.stagesMs.retrieval.mean > 0 && r.stagesMs.ranking.mean > 0 && r.stagesMs.userState.mean > 0, `stage means ${JSON.stringify(r.stagesMs)}`);
  const parts = r.stagesMs.admission.mean + r.stagesMs.userState.mean + r.stagesMs.retrieval.mean + r.stagesMs.ranking.mean + r.stagesMs.policy.mean;
  t.ok(parts <= r.stagesMs.total.mean + 1e-6, `the stages (${parts} ms) run inside the total (${r.stagesMs.total.mean} ms)`);
  t.ok(r.stagesMs.total.mean >= 0.5 * (1000 / r.qpsPerCore), `the pipeline total (${r.stagesMs.total.mean} ms) is most of the CPU per request (${1000 / r.qpsPerCore} ms)`);
  t.ok(r.stagesMs.total.p50 > 0 && r.stagesMs.total.p50 <= r.p99Ms, 'the total median is a latency of this run');
  await t.rejects(runCeiling(inProcess, queries, { concurrency: 0 }), TypeError);
});

t.test('the ceiling answers exactly what the cluster answers for the same requests', async (t) => {
  const runDir = await mkdtemp(path.join(tmpdir(), 'upnext-bench-ceiling-'));
  const cluster = await startLocalCluster({ runDir, worldDir: assets.worldDir, modelDir: assets.modelDir, grpcPort: 0, config });
  const client = connectRecommender(cluster.grpcAddress);
  t.teardown(async () => {
    client.close();
    await cluster.stop();
    await rm(runDir, { recursive: true, force: true });
  });
  const picked = queries.slice(0, 8);
  t.ok(picked.some((q) => q.userId < 2 ** 52), 'known users among the requests');
  let retrieved = 0;
  for (const q of picked) {
    const call = { userId: q.userId, k: q.k, context: q.context, surface: q.surface, requestId: q.requestId };
    // The first call fills the coordinator's popular cache for this (country, device); the
    // in-process ports answer from the lists directly, as a warm cache does.
    await client.recommend(call);
    const remote = await client.recommend(call);
    const local = await recommendInProcess(inProcess, q);
    t.same(remote.degraded, [], `cluster answer for ${q.requestId} not degraded`);
    t.same(local.degraded, [], `ceiling answer for ${q.requestId} not degraded`);
    t.same(
      remote.items.map((i) => [i.videoId, i.source, i.shard]),
      local.items.map((i) => [i.videoId, Source[i.source], i.shard]),
      `${q.requestId} (user ${q.userId}, k ${q.k}, ${q.surface}): same items, sources and shards in the same order`,
    );
    const worst = Math.max(0, ...remote.items.map((i, n) => Math.abs(i.score - (local.items[n]?.score ?? NaN))));
    t.ok(worst < 1e-5, `${q.requestId}: scores equal up to float32 rounding (max diff ${worst})`);
    t.equal(remote.coverage, local.coverage);
    retrieved += local.items.filter((i) => i.source === Source.RETRIEVAL).length;
  }
  t.ok(retrieved > 0, 'the compared answers include retrieval candidates, not only popular ones');
});

t.test('sharded recall against brute force: exact shards give recall 1, and the merge is checked per query', async (t) => {
  const tower = await ItemTower.load(assets.modelDir);
  t.teardown(() => tower.close());
  const enc = await buildEncodedShards({ worldDir: assets.worldDir, tower, shardCount: 2 });
  const users = await sampleUserVectors(inProcess.userState, assets.worldDir, 20);
  t.equal(users.length, 20 * enc.dim);
  const exactShards = measureShardedRecall(enc, users, { k: 100, perShardK: 100 });
  t.equal(exactShards.items, 2000);
  t.equal(exactShards.recallAtK, 1, 'Flat shards, k per shard = k: the union holds the exact top 100');
  t.ok(exactShards.qpsPerCore > 0);
  // Asking each shard for fewer than k cannot recover a top 100 concentrated in one shard.
  const short = measureShardedRecall(enc, users, { k: 100, perShardK: 30 });
  t.ok(short.recallAtK < 0.61, `30 per shard × 2 shards covers at most 60 of 100 (recall ${short.recallAtK})`);
});
