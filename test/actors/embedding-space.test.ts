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
import { natsFixture } from '../fixtures/nats.js';
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
import { writeTinyModel } from './fixtures.js';
import { UserTower } from '../../actors/user-state/user-tower.js';
import { FOREIGN_IDLE_MS, FOREIGN_RETRY_MS, ForeignUserTowers, MAX_FOREIGN_TOWERS } from '../../actors/user-state/foreign-towers.js';

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
  const { nc } = await natsFixture(t, 'upnext-space');
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


t.test('a partition embeds with the requester\'s user tower once it has loaded it from the models root', async (t) => {
  const assets = await ensureTinyAssets();
  const space = await readEmbeddingSpace(assets.modelDir);
  // v2: other (untrained) towers of the same feature spec, under the same models root.
  const modelsRoot = path.dirname(assets.modelDir);
  const v2 = `sp-v2-${process.pid}`;
  const v2Dir = await writeTinyModel(path.join(modelsRoot, v2), v2, 4, assets.manifest.featureSpec);
  t.teardown(() => rm(v2Dir, { recursive: true, force: true }));
  const space2 = await readEmbeddingSpace(v2Dir);
  t.not(space2, space);

  const { nc } = await natsFixture(t, 'upnext-space');
  const cluster = `sb${process.pid}`;
  let userId = -1;
  for await (const u of readUsers(assets.worldDir)) {
    userId = u.userId;
    break;
  }
  const partition = await startUserPartition({ nc, cluster, partition: 0, partitionCount: 1, worldDir: assets.worldDir, modelDir: assets.modelDir, space });
  t.teardown(() => partition.stop());
  const ctx = { device: 'ios', country: 'BR', localHour: 20 };
  const ask = async (requestSpace: string, modelVersion: string) =>
    Codecs.userStateReply.decode(
      (await nc.request(Subjects.userGet(cluster, 0), Codecs.userStateRequest.encode({ userId, context: ctx, deadlineMs: Date.now() + 10_000, space: requestSpace, modelVersion }), { timeout: 10_000 })).data,
    );
  const own = await ask(space, assets.manifest.version);
  const first = await ask(space2, v2);
  t.equal(first.embedding.length, 0, 'the first read in a new space is answered at once, without an embedding (the tower loads in the background)');
  let bridged = first;
  for (let i = 0; i < 200 && bridged.space !== space2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    bridged = await ask(space2, v2);
  }
  t.equal(bridged.space, space2, 'then answered in the requester\'s space');
  const v2Tower = await UserTower.load(v2Dir);
  t.teardown(() => v2Tower.close());
  const view = { userId, recentVideoIds: own.recentVideoIds, recentCreatorIds: own.recentCreatorIds, categoryAffinity: Float32Array.from(own.categoryAffinity), impressions: own.impressions, clicks: own.clicks, watches: own.watches, watchSeconds: own.watchSeconds };
  const expected = Array.from(await v2Tower.embed([view], [ctx]));
  t.equal(bridged.embedding.length, expected.length);
  t.ok(bridged.embedding.every((x, i) => Math.abs(x - expected[i]!) < 1e-5), 'the v2 user tower\'s vector for the profile');
  t.ok(bridged.embedding.some((x, i) => Math.abs(x - own.embedding[i]!) > 1e-3), 'not the own tower\'s vector');
  const again = await ask(space2, 'any-version');
  t.equal(again.space, space2, 'a loaded space is found by its id (the version only says where to load it from)');
  const stats = partition.stats();
  t.ok(stats.spaceBridged >= 2);
});

t.test('ForeignUserTowers: validation, failures not retried at once, the limit and idle eviction', async (t) => {
  const assets = await ensureTinyAssets();
  const modelsRoot = await mkdtemp(path.join(tmpdir(), 'upnext-foreign-'));
  t.teardown(() => rm(modelsRoot, { recursive: true, force: true }));
  const spec = assets.manifest.featureSpec;
  const dirs = await Promise.all([1, 2, 3].map((i) => writeTinyModel(path.join(modelsRoot, `v${i}`), `v${i}`, 10 + i, spec)));
  const spaces = await Promise.all(dirs.map((d) => readEmbeddingSpace(d)));
  let now = 1_000_000;
  const towers = new ForeignUserTowers(modelsRoot, assets.manifest.featureSpecHash, () => now);

  for (const [space, version] of [['not-hex', 'v1'], [spaces[0]!, '../v1'], [spaces[0]!, '']] as const) {
    t.equal(towers.get(space, version), undefined);
    t.equal(towers.stats().loading, 0, `no load for ${JSON.stringify([space, version])}`);
  }
  // A version whose towers are not the named space: a failed load, not retried within FOREIGN_RETRY_MS.
  t.equal(towers.get(spaces[1]!, 'v1'), undefined);
  await towers.settled();
  t.equal(towers.stats().failedLoads, 1);
  towers.get(spaces[1]!, 'v1');
  t.equal(towers.stats().loading, 0, 'not retried at once');
  now += FOREIGN_RETRY_MS + 1;
  towers.get(spaces[1]!, 'v1');
  t.equal(towers.stats().loading, 1, 'retried after FOREIGN_RETRY_MS');
  await towers.settled();
  // Another feature spec: refused from the manifest alone.
  const otherSpec = new ForeignUserTowers(modelsRoot, 'another-spec-hash', () => now);
  otherSpec.get(spaces[0]!, 'v1');
  await otherSpec.settled();
  t.same(otherSpec.stats().spaces, []);

  t.equal(MAX_FOREIGN_TOWERS, 2);
  towers.get(spaces[0]!, 'v1');
  towers.get(spaces[1]!, 'v2');
  await towers.settled();
  t.same([...towers.stats().spaces].sort(), [spaces[0], spaces[1]].sort(), 'two loaded');
  t.ok(towers.get(spaces[0]!, 'v1'), 'found once loaded');
  towers.get(spaces[2]!, 'v3');
  t.equal(towers.stats().loading, 0, 'a third waits while both are in use');
  now += FOREIGN_IDLE_MS + 1;
  t.ok(towers.get(spaces[0]!, 'v1'), 'v1 used again now');
  towers.get(spaces[2]!, 'v3');
  await towers.settled();
  t.same([...towers.stats().spaces].sort(), [spaces[0], spaces[2]].sort(), 'the idle one (v2) made room');
  t.equal(towers.stats().evicted, 1);
});
