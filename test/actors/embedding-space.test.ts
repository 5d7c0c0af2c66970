/**
 * Embedding spaces (actors/model/embedding-space.ts): the id is a content hash of both towers, and a
 * real item shard and user partition (trained tiny models, real nats-server) refuse to mix spaces:
 * a search naming another space is FAILED_PRECONDITION naming the field, a user-state read naming
 * another space gets the profile without an embedding.
 */
import t from 'tap';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../../cluster/nats/server.js';
import { userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { StatusCode } from '../../core/status.js';
import { MODEL_FILES } from '../../core/model/contract.js';
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
