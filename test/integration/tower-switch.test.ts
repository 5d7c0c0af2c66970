// A live switch to a model with other towers (DESIGN §5 "rankers and shards hot-swap on change";
// cluster/node/real-launcher.ts switchTowers) on the real tiny cluster, where each node hosts one of
// the two item shards (so the scatter crosses nodes over NATS): `shardmap model --version v2` under
// back-to-back Recommend calls. Every node rebuilds its shard on v2's towers beside the serving one,
// waits until every shard and partition answers in v2's embedding space, then flips. No call fails,
// no answer misses a shard or searches a vector of other towers, answers after carry v2, nodes report
// v2's space, item admin works again afterwards (it is refused, retryable, only while a node copies
// its items), and a restarted node comes back on the key's v2 towers.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { backToBackCalls, shardmapModel, startTinyCluster } from '../fixtures/tiny-cluster.js';
import { otherTowersVersion } from '../fixtures/model-versions.js';
import { nodeStatus } from '../../shardmap/move.js';
import { readEmbeddingSpace } from '../../actors/model/embedding-space.js';
import { itemShardOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { itemSnapshotPath } from '../../actors/item-shard/snapshot.js';

const { assets, cluster, client, runDir } = await startTinyCluster(t, 'tsw');
const modelsRoot = path.dirname(assets.modelDir);
const v2 = `tsw-v2-${process.pid}`;
// v2 = the tiny model's ranker and calibration with other (untrained) towers of the same spec.
const spaces = { v1: await readEmbeddingSpace(assets.modelDir), v2: (await otherTowersVersion(t, assets, v2)).space };

const nc = await connect({ servers: cluster.natsUrl });
t.teardown(() => nc.close());
const nodes = cluster.nodes.map((n) => n.name).sort();
const cli = (...args: string[]) => shardmapModel(cluster, ...args);

let coldStart = 9_000_001;
while (itemShardOf(coldStart, 2) !== 0) coldStart++;
const upsert = async () =>
  Codecs.itemAdminReply.decode(
    (await nc.request(Subjects.itemAdmin(cluster.cluster, 0), Codecs.itemAdminRequest.encode({ upserts: [{ videoId: coldStart, creatorId: 1, category: 2, durationS: 60, uploadTsMs: Date.now() }], removeVideoIds: [] }), { timeout: 10_000 })).data,
  );

t.test('shardmap model switches the cluster to other towers live', async (t) => {
  t.not(spaces.v2, spaces.v1);
  const first = await upsert();
  t.equal(first.upserted, 1, 'a cold-start upsert before the switch');
  const calls = backToBackCalls(client, Array.from({ length: 16 }, (_, i) => i + 1));
  await calls.firstAnswer;
  const startedAt = Date.now();
  const r = await cli('--version', v2, '--models-dir', modelsRoot, '--by', 'tower-switch.test');
  const switchedAt = Date.now();
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `every node serves ${v2}`);
  await new Promise((res) => setTimeout(res, 2000));
  const log = await calls.stop();
  t.equal(log.errors.length, 0, `no call failed${log.errors.length ? `: ${String(log.errors[0])}` : ''}`);
  t.ok(log.replies.length > 20, `${log.replies.length} calls answered`);
  const partial = log.replies.filter((x) => x.coverage < 1);
  t.equal(partial.length, 0, `every answer had full coverage${partial.length ? `: ${JSON.stringify(partial[0]!.degraded)}` : ''}`);
  const spaceNotes = log.replies.flatMap((x) => x.degraded).filter((d) => d.includes('embedding space'));
  t.same(spaceNotes, [], 'no answer met a vector of other towers');
  // Sent after the switch: a call in flight across a node's flip keeps the version it started with.
  const after = log.replies.filter((_, i) => log.startedAtMs[i]! > switchedAt);
  t.ok(after.length > 0);
  t.same([...new Set(after.map((x) => x.modelVersion))], [v2], 'answers to calls sent after the switch carry v2');
  const during = log.replies.filter((_, i) => log.answeredAtMs[i]! > startedAt && log.answeredAtMs[i]! < switchedAt);
  t.ok(during.length > 0, `${during.length} calls answered during the switch`);

  for (const n of nodes) {
    const s = await nodeStatus(nc, cluster.cluster, n);
    t.equal(s?.model?.version, v2, `${n} serves v2`);
    t.equal(s?.model?.space, spaces.v2, `${n} reports v2's space`);
  }
  const shown = await cli();
  t.match(shown.stdout, `(embedding space ${spaces.v2})`);
  // The flip prunes superseded snapshots but keeps the served version and the one it replaced.
  const v1Version = (JSON.parse(await readFile(path.join(assets.modelDir, 'manifest.json'), 'utf8')) as { version: string }).version;
  for (let s = 0; s < 2; s++) {
    for (const v of [v1Version, v2]) {
      t.ok(existsSync(itemSnapshotPath(path.join(runDir, 'snapshots'), { shard: s, shardCount: 2, modelVersion: v })), `shard ${s}'s snapshot of ${v} is kept`);
    }
  }

  // Admin works on the new towers, and the item upserted before the switch was carried over: upserting
  // it again replaces it, so the shard does not grow.
  const again = await upsert();
  t.equal(again.status?.code ?? 0, 0, again.status?.message ?? 'admin accepted after the switch');
  t.equal(again.shardSize, first.shardSize, 'the pre-switch upsert is in the new index');

  // The old instances retire once no old-space search comes (5 s idle): nobody answers v1 any more.
  await new Promise((res) => setTimeout(res, 7000));
  for (const s of [0, 1]) {
    await t.rejects(nc.request(Subjects.itemSearchInSpace(cluster.cluster, s, spaces.v1), new Uint8Array(0), { timeout: 2000 }), `shard ${s}: no replica left in v1's space`);
  }
});

t.test('a node restarted after the switch comes back on the key\'s towers', async (t) => {
  const other = nodes.find((n) => n !== cluster.initialMap.coordinators[0])!;
  await cluster.restartNode(other);
  const s = await nodeStatus(nc, cluster.cluster, other);
  t.equal(s?.model?.version, v2);
  t.equal(s?.model?.space, spaces.v2);
  const reply = await client.recommend({ userId: 3, k: 10, context: { device: 'ios', country: 'US', localHour: 20 } });
  t.equal(reply.modelVersion, v2);
  t.equal(reply.coverage, 1, JSON.stringify(reply.degraded));
});
