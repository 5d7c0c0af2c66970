// A tower switch the node abandons (cluster/node/real-launcher.ts switchTowers with an AbortSignal,
// what a node stop fires): with a real nats-server, faiss and ONNX Runtime, the launcher's item shard
// copies its items to an instance on other towers, then waits at the barrier for a user partition
// that never answers; aborting there rejects ABORTED, and the node keeps what it served: the old
// shard answers searches in the old space and accepts admin again, and the prepared copy retires.
import path from 'node:path';
import t from 'tap';
import { createRealLauncher } from '../../cluster/node/real-launcher.js';
import { resolveConfig } from '../../cluster/config.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import { StatusCode } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { readEmbeddingSpace } from '../../actors/model/embedding-space.js';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { natsFixture } from '../fixtures/nats.js';
import { otherTowersVersion } from '../fixtures/model-versions.js';

t.test('an aborted tower switch leaves the node serving what it served', async (t) => {
  const assets = await ensureTinyAssets();
  const { root, nc } = await natsFixture(t, 'upnext-tsw-abort');
  const cluster = `ta${process.pid}`;
  const v2 = await otherTowersVersion(t, assets, `abort-v2-${process.pid}`);
  const v1Space = await readEmbeddingSpace(assets.modelDir);
  const launcher = createRealLauncher({
    nc,
    config: resolveConfig({ cluster: { name: cluster } }),
    node: 'n1',
    worldDir: assets.worldDir,
    modelDir: assets.modelDir,
    runDir: root,
    model: assets.manifest,
    log: () => {},
  });
  // One item shard here; two user partitions in the map, only one running: the barrier cannot pass.
  const map = { itemShards: 1, userPartitions: 2 } as ShardMapSnapshot;
  const shard = await launcher.itemShard(0, map);
  t.teardown(() => shard.stop());
  const partition = await launcher.userPartition(0, map);
  t.teardown(() => partition.stop());

  const abort = new AbortController();
  const switching = launcher.switchTowers(v2.dir, { ...assets.manifest, version: path.basename(v2.dir) }, v2.space, abort.signal);
  // Wait until the copy answers in v2's space (so the switch is at its barrier), then abort.
  const probe = Codecs.shardSearchRequest.encode({ userVector: [], k: 1, excludeVideoIds: [], deadlineMs: 0, space: v2.space });
  for (let i = 0; i < 300; i++) {
    if (await nc.request(Subjects.itemSearchInSpace(cluster, 0, v2.space), probe, { timeout: 1000 }).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  abort.abort();
  await t.rejects(switching, { code: StatusCode.ABORTED }, 'the switch gives up');

  const vec = Array.from({ length: assets.manifest.featureSpec.embeddingDim }, (_, i) => (i === 0 ? 1 : 0));
  const reply = Codecs.shardSearchReply.decode(
    (await nc.request(Subjects.itemSearchInSpace(cluster, 0, v1Space), Codecs.shardSearchRequest.encode({ userVector: vec, k: 5, excludeVideoIds: [], deadlineMs: 0, space: v1Space }), { timeout: 10_000 })).data,
  );
  t.equal(reply.candidates?.videoIds.length, 5, 'the old shard still serves its space');
  const admin = Codecs.itemAdminReply.decode(
    (await nc.request(Subjects.itemAdmin(cluster, 0), Codecs.itemAdminRequest.encode({ upserts: [{ videoId: 8_000_001, creatorId: 1, category: 2, durationS: 60, uploadTsMs: Date.now() }], removeVideoIds: [] }), { timeout: 10_000 })).data,
  );
  t.equal(admin.status?.code ?? 0, 0, admin.status?.message ?? 'admin accepted again');
  // The prepared copy retires once no v2 search comes for 5 s.
  await new Promise((r) => setTimeout(r, 7000));
  await t.rejects(nc.request(Subjects.itemSearchInSpace(cluster, 0, v2.space), probe, { timeout: 2000 }), 'the prepared copy is gone');
});
