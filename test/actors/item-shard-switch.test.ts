/**
 * What a live tower switch asks of an item shard (actors/item-shard/item-shard.ts), on the tiny world
 * over a real nats-server: admin can be paused with a reason; the live items, admin upserts included,
 * seed an instance on other towers; that instance answers only its space's subject until it joins
 * the shared ones; a retired instance leaves the shared subjects, answers its space while searches
 * come, then stops.
 */
import t from 'tap';
import path from 'node:path';
import { natsFixture } from '../fixtures/nats.js';
import { Subjects } from '../../core/subjects.js';
import { StatusCode } from '../../core/status.js';
import { Codecs } from '../../protos/codec.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import { readEmbeddingSpace } from '../../actors/model/embedding-space.js';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { writeTinyModel } from './fixtures.js';

t.test('pause admin, seed an instance on other towers, join its subjects, retire the old one', async (t) => {
  const assets = await ensureTinyAssets();
  const { root, nc } = await natsFixture(t, 'upnext-shard-switch');
  const cluster = `ss${process.pid}`;
  const v2Dir = await writeTinyModel(path.join(root, 'models', 'v2'), 'v2', 6, assets.manifest.featureSpec);
  const [spaceA, spaceB] = [await readEmbeddingSpace(assets.modelDir), await readEmbeddingSpace(v2Dir)];
  const common = { nc, cluster, shard: 0, shardCount: 1, worldDir: assets.worldDir, snapshotDir: path.join(root, 'snap') };
  const a = await startItemShard({ ...common, modelDir: assets.modelDir, space: spaceA });
  t.teardown(() => a.stop());

  const admin = async (videoId: number) =>
    Codecs.itemAdminReply.decode(
      (await nc.request(Subjects.itemAdmin(cluster, 0), Codecs.itemAdminRequest.encode({ upserts: [{ videoId, creatorId: 1, category: 2, durationS: 60, uploadTsMs: Date.now() }], removeVideoIds: [] }), { timeout: 10_000 })).data,
    );
  const before = a.info.items;
  t.equal((await admin(7_000_001)).upserted, 1, 'an upsert before the switch');
  a.freezeAdmin('item admin paused: switching; retry shortly');
  const paused = await admin(7_000_002);
  t.equal(paused.status?.code, StatusCode.UNAVAILABLE);
  t.match(paused.status?.message, /paused: switching; retry shortly/);
  t.equal(paused.upserted, 0);

  const seed = await a.exportItems();
  const b = await startItemShard({ ...common, modelDir: v2Dir, space: spaceB, subscribe: 'space', seed });
  t.teardown(() => b.stop());
  t.equal(b.info.items, before + 1, 'the new instance holds every live item, the upsert included');
  t.equal(b.info.restored, false, 'built from the seed, not restored');

  const search = async (subject: string, vector: readonly number[]) =>
    Codecs.shardSearchReply.decode((await nc.request(subject, Codecs.shardSearchRequest.encode({ userVector: [...vector], k: 5, excludeVideoIds: [], deadlineMs: 0, space: '' }), { timeout: 10_000 })).data);
  const vec = Array.from({ length: assets.manifest.featureSpec.embeddingDim }, (_, i) => (i === 0 ? 1 : 0));
  t.equal((await search(Subjects.itemSearchInSpace(cluster, 0, spaceB), vec)).candidates?.videoIds.length, 5, 'the new instance answers its space at once');
  t.equal((await search(Subjects.itemSearchInSpace(cluster, 0, spaceA), vec)).candidates?.videoIds.length, 5, 'the old one its own');
  const searchesB = b.stats().searches;
  for (let i = 0; i < 6; i++) await search(Subjects.itemSearch(cluster, 0), vec);
  t.equal(b.stats().searches, searchesB, 'the shared subject reaches only the serving instance before subscribe()');

  // The flip: the new instance joins the shared subjects, the old one retires.
  b.subscribe();
  a.freezeAdmin(undefined);
  // Idle time long enough that the checks below (a few requests) never outlast it on a loaded machine.
  const retired = a.retire(3000, 30_000);
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 4; i++) t.equal((await admin(7_000_010 + i)).status?.code ?? 0, 0, 'admin goes to the new instance');
  t.equal((await search(Subjects.itemSearchInSpace(cluster, 0, spaceA), vec)).candidates?.videoIds.length, 5, 'the retiring instance still answers its space');
  await retired;
  await t.rejects(nc.request(Subjects.itemSearchInSpace(cluster, 0, spaceA), new Uint8Array(0), { timeout: 2000 }), 'gone once no search came for the idle time');
  t.equal((await search(Subjects.itemSearch(cluster, 0), vec)).candidates?.videoIds.length, 5, 'the new instance serves the shared subject');
  t.equal(b.stats().items, before + 1 + 4);
});
