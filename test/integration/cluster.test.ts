// End to end, real everything: nats-server, node processes, faiss item shards, ONNX user towers and
// rankers, the coordinator's public gRPC server — started by the local launcher on a tiny world.
import t from 'tap';
import type { Test } from 'tap';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { RecommendReply } from '../../cluster/local/client.js';
import { startTinyCluster } from '../fixtures/tiny-cluster.js';
import { readEvents, readVideos } from '../../offline/world/reader.js';
import { DEFAULT_FEATURE_SPEC, applyEventToUser, newUserProfile } from '../../core/features/index.js';
import type { UserProfile } from '../../core/features/index.js';
import { assignmentOf } from '../../shardmap/snapshot.js';

// One replica per item shard (the default is every node), so losing a node loses a shard below,
// and n1's coordinator has one shard in-process and one over NATS.
const { assets, cluster, client } = await startTinyCluster(t, 'e2e');

// The user's recent watches, replayed with the same feature code the user-state actor runs.
const videos = new Map<number, { category: number; creatorId: number }>();
for await (const v of readVideos(assets.worldDir)) videos.set(v.videoId, { category: v.category, creatorId: v.creatorId });
const profiles = new Map<number, UserProfile>();
for await (const e of readEvents(assets.worldDir)) {
  let p = profiles.get(e.userId);
  if (!p) profiles.set(e.userId, (p = newUserProfile(e.userId, DEFAULT_FEATURE_SPEC)));
  applyEventToUser(p, e, videos.get(e.videoId), DEFAULT_FEATURE_SPEC);
}
const [userId, profile] = [...profiles].sort((a, b) => b[1].recentVideoIds.length - a[1].recentVideoIds.length)[0]!;
const ctx = { device: 'ios', country: 'US', localHour: 20 };

function checkList(t: Test, r: RecommendReply, k: number, banned: ReadonlySet<number>): void {
  t.equal(r.items.length, k, `exactly k=${k} items`);
  const ids = r.items.map((i) => i.videoId);
  t.equal(new Set(ids).size, ids.length, 'distinct');
  for (let i = 1; i < r.items.length; i++) {
    if (r.items[i]!.score > r.items[i - 1]!.score) t.fail(`not sorted by score at ${i}`);
  }
  const bad = ids.filter((id) => banned.has(id));
  t.same(bad, [], 'none watched or excluded');
  for (const it of r.items) t.ok(['RETRIEVAL', 'TRENDING', 'EXPLORATION', 'FALLBACK'].includes(it.source), `source ${it.source}`);
}

t.test('Recommend: k distinct items sorted by score, none watched or excluded, coverage 1', async (t) => {
  t.ok(profile.recentVideoIds.length > 0, `user ${userId} has history`);
  const first = await client.recommend({ userId, k: 10, context: ctx, surface: 'home', debug: true });
  checkList(t, first, 10, new Set(profile.recentVideoIds));
  t.equal(first.coverage, 1);
  t.same(first.degraded, []);
  t.equal(first.modelVersion, assets.manifest.version);
  t.ok(first.timings && first.timings.totalMs! > 0, 'debug timings');
  t.ok(first.items.some((i) => i.source === 'RETRIEVAL'), 'retrieval candidates present');
  // Excluding the first answer's top 3 removes exactly them.
  const exclude = first.items.slice(0, 3).map((i) => i.videoId);
  const second = await client.recommend({ userId, k: 25, context: ctx, excludeVideoIds: exclude });
  checkList(t, second, 25, new Set([...profile.recentVideoIds, ...exclude]));
  // An unknown user is normal: a full answer.
  const unknown = await client.recommend({ userId: 987_654_321_987, k: 5, context: ctx });
  checkList(t, unknown, 5, new Set());
});

t.test('a click logged through LogEvents shows in the next recommendations (watched videos are not recommended again)', async (t) => {
  const r0 = await client.recommend({ userId, k: 10, context: ctx });
  const clicked = r0.items[0]!.videoId;
  const t0 = Date.now();
  t.same(await client.logEvents([{ eventId: `e2e-click-${process.pid}`, userId, videoId: clicked, type: 'CLICK', context: ctx, surface: 'home' }]), { accepted: 1, duplicates: 0 });
  let seen = true;
  let tries = 0;
  while (seen && Date.now() - t0 < 10_000) {
    tries++;
    seen = (await client.recommend({ userId, k: 10, context: ctx })).items.some((i) => i.videoId === clicked);
    if (seen) await new Promise((res) => setTimeout(res, 20));
  }
  t.notOk(seen, `the clicked video ${clicked} left the list (the event reached the user's partition through the stream)`);
  t.comment(`click visible after ${Date.now() - t0} ms, ${tries} Recommend call(s)`);
});

t.test('bad requests are INVALID_ARGUMENT naming the field', async (t) => {
  const cases: [Parameters<typeof client.recommend>[0], RegExp][] = [
    [{ userId, k: 0 }, /k/],
    [{ userId, k: 1001 }, /k/],
    [{ userId, k: 5, context: { localHour: 24 } }, /local_?[hH]our/],
    [{ userId, k: 5, excludeVideoIds: Array.from({ length: 1001 }, (_, i) => i + 1) }, /exclude_?[vV]ideo_?[iI]ds/],
    [{ userId, k: 5, surface: 'x'.repeat(65) }, /surface/],
  ];
  for (const [req, field] of cases) {
    await t.rejects(client.recommend(req), { code: grpc.status.INVALID_ARGUMENT, details: field }, JSON.stringify(req).slice(0, 80));
  }
});

t.test('health is SERVING and reflection lists upnext.v1.Recommender', async (t) => {
  const require = createRequire(import.meta.url);
  const healthDef = protoLoader.loadSync(require('grpc-health-check').protoPath as string, { enums: String });
  const Health = (grpc.loadPackageDefinition(healthDef) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } }).grpc.health.v1.Health;
  const health = new Health(cluster.grpcAddress, grpc.credentials.createInsecure());
  for (const service of ['', 'upnext.v1.Recommender']) {
    const r = await new Promise<{ status: string }>((resolve, reject) =>
      (health as unknown as { check: (req: unknown, cb: (e: Error | null, r: { status: string }) => void) => void }).check({ service }, (e, r) => (e ? reject(e) : resolve(r))),
    );
    t.equal(r.status, 'SERVING', `health "${service}"`);
  }
  health.close();
  const reflPath = path.join(path.dirname(require.resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
  const reflDef = protoLoader.loadSync(reflPath, { keepCase: true, defaults: true, oneofs: true });
  const Reflection = (grpc.loadPackageDefinition(reflDef) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } }).grpc.reflection.v1.ServerReflection;
  const refl = new Reflection(cluster.grpcAddress, grpc.credentials.createInsecure());
  const list = await new Promise<{ list_services_response?: { service: { name: string }[] } }>((resolve, reject) => {
    const stream = (refl as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, never> }).ServerReflectionInfo();
    stream.on('data', (d) => {
      resolve(d);
      stream.end();
    });
    stream.on('error', reject);
    stream.write({ list_services: '' });
  });
  const names = list.list_services_response?.service.map((s) => s.name) ?? [];
  t.ok(names.includes('upnext.v1.Recommender'), `services: ${names.join(', ')}`);
  refl.close();
});

t.test('/metrics of the coordinator node shows outcomes and shard sizes', async (t) => {
  const n1 = cluster.nodes.find((n) => n.name === 'n1')!;
  const text = await (await fetch(`http://${n1.metricsAddress}/metrics`)).text();
  t.match(text, /^upnext_coordinator_requests_ok\{[^}]*\} [1-9]\d*$/m, 'ok outcomes counted');
  t.match(text, /^upnext_coordinator_feature_completeness_requests\{[^}]*\} [1-9]\d*$/m, 'feature completeness counted');
  t.match(text, /^upnext_coordinator_feature_completeness_item_mean\{[^}]*\} (0\.\d+|1)$/m, 'mean item completeness exported');
  t.match(text, /^upnext_item_shard_items\{[^}]*index="0"\} [1-9]\d*$/m, 'item shard 0 size');
  t.match(text, new RegExp(`^upnext_node_info\\{[^}]*model_version="${assets.manifest.version}"\\} 1$`, 'm'));
  t.match(text, /^process_resident_memory_bytes\{[^}]*\} \d+$/m);
  // n1 hosts item shard 0 (searched in-process) but not shard 1 (over NATS): both paths answered.
  t.same(assignmentOf(cluster.initialMap, 'n1').itemShards, [0]);
  t.match(text, /^upnext_coordinator_local_paths_item_shards_local\{[^}]*\} [1-9]\d*$/m, 'local item-shard searches counted');
  t.match(text, /^upnext_coordinator_local_paths_item_shards_nats_no_local\{[^}]*\} [1-9]\d*$/m, 'NATS searches of the other shard counted');
  t.match(text, /^upnext_coordinator_local_paths_user_state_(local|nats_no_local)\{[^}]*\} [1-9]\d*$/m, 'user-state paths counted');
});

t.test('killing the node of one item shard (R=1): still answers, coverage (S-1)/S, degraded', async (t) => {
  const victim = 'n2';
  const lost = assignmentOf(cluster.initialMap, victim).itemShards;
  t.same(lost, [1], 'n2 hosts item shard 1 and not the coordinator');
  await cluster.killNode(victim);
  // Until nats-server has seen n2's connection drop (a moment, longer on a loaded CI box), a search
  // can still be delivered to n2's subscription and get no reply: the coordinator then answers,
  // degraded, at its retrieval budget (5 s in this fixture), so the client allows more than that.
  // (A CI run failed this call at the default 5 s deadline.)
  const r = await client.recommend({ userId, k: 10, context: ctx }, { deadlineMs: 20_000 });
  checkList(t, r, 10, new Set(profile.recentVideoIds));
  t.equal(r.coverage, 0.5, 'coverage (S-1)/S');
  t.ok(r.degraded.some((d) => /shard 1\b/.test(d)), `degraded names shard 1: ${r.degraded.join('; ')}`);
  t.ok(r.items.every((i) => i.source === 'FALLBACK' || i.shard !== 1 || i.source !== 'RETRIEVAL'), 'no retrieval result from the lost shard');

  // Restart: the node rebuilds (or restores) its shard and coverage returns to 1.
  await cluster.restartNode(victim);
  let coverage = 0;
  for (let i = 0; i < 50 && coverage < 1; i++) {
    coverage = (await client.recommend({ userId, k: 10, context: ctx })).coverage;
    if (coverage < 1) await new Promise((res) => setTimeout(res, 100));
  }
  t.equal(coverage, 1, 'full coverage after restart');
});
