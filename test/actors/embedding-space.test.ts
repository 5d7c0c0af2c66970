/**
 * Embedding spaces (actors/model/embedding-space.ts): the id is a content hash of both towers, and a
 * real item shard and user partition (trained tiny models, real nats-server) refuse to mix spaces:
 * a search naming another space is FAILED_PRECONDITION naming the field, a user-state read naming
 * another space gets the profile without an embedding.
 */
import t from 'tap';
import { copyFile, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../../cluster/nats/server.js';
import { userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { StatusCode } from '../../core/status.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { Codecs } from '../../protos/codec.js';
import { readUsers } from '../../offline/world/reader.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import { EMBEDDING_SPACE_CHARS, embeddingSpaceOf, readEmbeddingSpace, spacesAgree, towerHashes } from '../../actors/model/embedding-space.js';
import { ensureTinyAssets } from '../fixtures/assets.js';

t.test('the space id: a hash of both towers, stable, and different when either tower differs', async (t) => {
  const a = embeddingSpaceOf({ userTower: 'u1', itemTower: 'i1' });
  t.match(a, new RegExp(`^[0-9a-f]{${EMBEDDING_SPACE_CHARS}}$`));
  t.equal(embeddingSpaceOf({ userTower: 'u1', itemTower: 'i1' }), a, 'deterministic');
  t.not(embeddingSpaceOf({ userTower: 'u2', itemTower: 'i1' }), a, 'a new user tower is a new space');
  t.not(embeddingSpaceOf({ userTower: 'u1', itemTower: 'i2' }), a, 'a new item tower is a new space');
  t.not(embeddingSpaceOf({ userTower: 'i1', itemTower: 'u1' }), a, 'the towers are not interchangeable');
  t.ok(spacesAgree('', 'x'), 'an actor with no space accepts anything');
  t.ok(spacesAgree('x', ''), 'an unstated request is accepted (tools, older builds)');
  t.ok(spacesAgree('x', undefined));
  t.ok(spacesAgree('x', 'x'));
  t.notOk(spacesAgree('x', 'y'));

  const assets = await ensureTinyAssets();
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-space-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const own = await readEmbeddingSpace(assets.modelDir);
  t.equal(own, embeddingSpaceOf(await towerHashes(assets.modelDir)));
  // A copy of the same towers is the same space; changing one byte of a tower makes another.
  for (const f of [MODEL_FILES.userTower, MODEL_FILES.itemTower]) await copyFile(path.join(assets.modelDir, f), path.join(dir, f));
  t.equal(await readEmbeddingSpace(dir), own, 'same tower bytes, same space (content-addressed)');
  await writeFile(path.join(dir, MODEL_FILES.itemTower), 'another tower');
  t.not(await readEmbeddingSpace(dir), own);
  await t.rejects(readEmbeddingSpace(path.join(dir, 'missing')), { code: StatusCode.NOT_FOUND });
});

t.test('a real item shard and user partition answer only their own space', async (t) => {
  const assets = await ensureTinyAssets();
  const space = await readEmbeddingSpace(assets.modelDir);
  const root = await mkdtemp(path.join(tmpdir(), 'upnext-space-'));
  const nats = await startNatsServer({ dataDir: path.join(root, 'nats') });
  const nc = await connect({ servers: nats.url });
  t.teardown(async () => {
    await nc.close();
    await nats.stop();
    await rm(root, { recursive: true, force: true });
  });
  const cluster = `sp${process.pid}`;
  const P = 2;
  const shard = await startItemShard({ nc, cluster, shard: 0, shardCount: 1, worldDir: assets.worldDir, modelDir: assets.modelDir, space });
  t.teardown(() => shard.stop());
  t.equal(shard.info.space, space, 'the shard reports the space it checks');
  let userId = -1;
  for await (const u of readUsers(assets.worldDir)) {
    userId = u.userId;
    break;
  }
  const p = userPartitionOf(userId, P);
  const partition = await startUserPartition({ nc, cluster, partition: p, partitionCount: P, worldDir: assets.worldDir, modelDir: assets.modelDir, space });
  t.teardown(() => partition.stop());

  const ask = async (requestSpace: string | undefined) =>
    Codecs.userStateReply.decode(
      (
        await nc.request(
          Subjects.userGet(cluster, p),
          Codecs.userStateRequest.encode({ userId, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 5000, ...(requestSpace !== undefined ? { space: requestSpace } : {}) }),
          { timeout: 5000 },
        )
      ).data,
    );
  const mine = await ask(space);
  t.equal(mine.embedding.length, assets.manifest.featureSpec.embeddingDim, 'own space: an embedding');
  t.equal(mine.space, space, 'and the space it is in');
  const unstated = await ask(undefined);
  t.same(unstated.embedding, mine.embedding, 'an unstated space gets the own embedding');
  const foreign = await ask('0123456789abcdef');
  t.equal(foreign.embedding.length, 0, 'another space: no embedding');
  t.equal(foreign.space, '', 'and no space');
  t.equal(foreign.known, mine.known, 'the profile is still answered');
  t.same(foreign.recentVideoIds, mine.recentVideoIds);
  t.equal(partition.stats().spaceMismatches, 1, 'counted');

  const search = async (requestSpace: string) =>
    Codecs.shardSearchReply.decode(
      (await nc.request(Subjects.itemSearch(cluster, 0), Codecs.shardSearchRequest.encode({ userVector: mine.embedding, k: 20, excludeVideoIds: [], deadlineMs: Date.now() + 5000, space: requestSpace }), { timeout: 5000 })).data,
    );
  const hit = await search(space);
  t.equal(hit.status?.code ?? 0, 0);
  t.equal(hit.candidates?.videoIds.length, 20);
  const refused = await search('0123456789abcdef');
  t.equal(refused.status?.code, StatusCode.FAILED_PRECONDITION);
  t.match(refused.status?.message, /^space: .*0123456789abcdef.*shard 0 serves space/, 'the message names the field and both spaces');
  t.equal(refused.candidates?.videoIds.length ?? 0, 0, 'no candidates from the wrong space');
});

t.test('a partition embeds with the requester\'s user tower when that version is in its models root', async (t) => {
  const assets = await ensureTinyAssets();
  const space = await readEmbeddingSpace(assets.modelDir);
  // Another version with another user tower: the same graph re-encoded with a new doc string, so
  // its bytes (and space) differ while it computes the same vectors.
  const modelsRoot = path.dirname(assets.modelDir);
  const v2 = `sp-v2-${process.pid}`;
  const v2Dir = path.join(modelsRoot, v2);
  await cp(assets.modelDir, v2Dir, { recursive: true });
  t.teardown(() => rm(v2Dir, { recursive: true, force: true }));
  const manifest = JSON.parse(await readFile(path.join(v2Dir, 'manifest.json'), 'utf8')) as ModelManifest;
  await writeFile(path.join(v2Dir, 'manifest.json'), JSON.stringify({ ...manifest, version: v2 }));
  const { onnx } = onnxProto;
  const graph = onnx.ModelProto.decode(await readFile(path.join(v2Dir, MODEL_FILES.userTower)));
  graph.docString = `${graph.docString} (re-encoded for ${v2})`;
  await writeFile(path.join(v2Dir, MODEL_FILES.userTower), onnx.ModelProto.encode(graph).finish());
  const space2 = await readEmbeddingSpace(v2Dir);
  t.not(space2, space, 'the re-encoded tower is another space');

  const root = await mkdtemp(path.join(tmpdir(), 'upnext-space-'));
  const nats = await startNatsServer({ dataDir: path.join(root, 'nats') });
  const nc = await connect({ servers: nats.url });
  t.teardown(async () => {
    await nc.close();
    await nats.stop();
    await rm(root, { recursive: true, force: true });
  });
  const cluster = `sb${process.pid}`;
  let userId = -1;
  for await (const u of readUsers(assets.worldDir)) {
    userId = u.userId;
    break;
  }
  const partition = await startUserPartition({ nc, cluster, partition: 0, partitionCount: 1, worldDir: assets.worldDir, modelDir: assets.modelDir, space });
  t.teardown(() => partition.stop());
  const ask = async (requestSpace: string, modelVersion: string) =>
    Codecs.userStateReply.decode(
      (
        await nc.request(
          Subjects.userGet(cluster, 0),
          Codecs.userStateRequest.encode({ userId, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 10_000, space: requestSpace, modelVersion }),
          { timeout: 10_000 },
        )
      ).data,
    );
  const own = await ask(space, assets.manifest.version);
  const bridged = await ask(space2, v2);
  t.equal(bridged.space, space2, 'answered in the requester\'s space');
  t.equal(bridged.embedding.length, own.embedding.length);
  t.same(bridged.embedding, own.embedding, 'by the v2 user tower (same graph here, so the same vector)');
  const wrongVersion = await ask('0011223344556677', v2);
  t.equal(wrongVersion.embedding.length, 0, 'a version whose towers are not the named space: no embedding');
  t.equal(wrongVersion.space, '');
  const again = await ask(space2, 'any-version');
  t.equal(again.space, space2, 'a loaded space is found by its id (the version only says where to load it from)');
  const missing = await ask('fedcba9876543210', 'no-such-version');
  t.equal(missing.embedding.length, 0, 'a version not in the models root: no embedding');
  const bad = await ask('fedcba9876543210', '../escape');
  t.equal(bad.embedding.length, 0, 'a version that is not a plain directory name: no embedding');
  const stats = partition.stats();
  t.equal(stats.spaceBridged, 2);
  t.equal(stats.spaceMismatches, 3);
});
