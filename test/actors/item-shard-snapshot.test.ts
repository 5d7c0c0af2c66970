/**
 * Item-shard snapshots that survive admin changes: the build facts in the snapshot meta (a shard
 * whose upserts crossed an index-kind boundary restores its own snapshot), the snapshot written
 * after admin changes (debounced, kept across a worker crash and a stop/start, flushed at a
 * graceful stop), the refusal of a snapshot of another feature spec, and the pruning of snapshots
 * that newer model versions superseded (`snapshotsKept`). Real faiss, real worker
 * thread, real nats-server, tiny untrained model and world (test/actors/fixtures.ts).
 */
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { itemShardOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { ItemMeta } from '../../core/features/item.js';
import { faissBuild } from '../../actors/item-shard/faiss.js';
import { autoCouldPick, factoryFor, resolveIndexOptions } from '../../actors/item-shard/index-options.js';
import { ItemShardIndex } from '../../actors/item-shard/shard-index.js';
import type { ItemShardSnapshotMeta } from '../../actors/item-shard/snapshot.js';
import { ITEM_SNAPSHOT_FORMAT, itemSnapshotPath, restoreItemSnapshot, snapshotRefusal, writeItemSnapshot } from '../../actors/item-shard/snapshot.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';
import { startItemShard } from '../../actors/item-shard/item-shard.js';
import type { ItemShardHandle, ItemShardOptions } from '../../actors/item-shard/item-shard.js';
import { ItemTower } from '../../actors/item-shard/item-tower.js';
import { syntheticItems, TINY_SPEC, writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const dim = 64;
const KEY = { shard: 0, shardCount: 1, modelVersion: 'v1', featureSpecHash: 'spec-a', source: 'w@0' };

t.test("'auto' could pick every factory factoryFor picks, on both faiss builds", async (t) => {
  const opts = resolveIndexOptions({ flatMaxItems: 100 });
  for (const build of ['debian', 'avx2'] as const) {
    for (const n of [1, 100, 101, 5000, 300_000, 5_000_000]) {
      const f = factoryFor(n, opts, build, dim);
      t.ok(autoCouldPick(f, build, dim), `${build} n=${n}: ${f}`);
    }
  }
  t.notOk(autoCouldPick('IDMap,IVF512,PQ64x4fs,RFlat', 'debian', dim), "the AVX2 build's fast-scan index is not Debian's 'auto'");
  t.notOk(autoCouldPick('IVF512,Flat', 'avx2', dim), "IVF Flat is not the AVX2 build's 'auto' above flatMaxItems");
  t.notOk(autoCouldPick('IDMap,HNSW32', 'debian', dim));
});

t.test('snapshotRefusal: build facts instead of the current count; format 1 keeps the older rule', async (t) => {
  const opts = resolveIndexOptions({ flatMaxItems: 50 });
  const build = {
    requestedFactory: 'auto',
    flatMaxItems: 50,
    factory: 'IDMap,Flat',
    nlist: null,
    trainPerList: 64,
    faissBuild: 'debian' as const,
    itemsAtBuild: 40,
    builtAtMs: 1,
  };
  // Built Flat at 40 items, 70 rows after upserts: the options would pick IVF for 70 rows now.
  const meta: ItemShardSnapshotMeta = { format: 2, ...KEY, dim, factory: 'IDMap,Flat', rows: 70, items: 70, createdAt: '', build };
  const accept = { options: opts, faissBuild: 'debian' as const };
  t.not(factoryFor(70, opts, 'debian', dim), 'IDMap,Flat', 'precondition: the count crossed flatMaxItems');
  t.equal(snapshotRefusal(meta, KEY, accept), undefined, 'format 2: its own snapshot is accepted after crossing the boundary');
  t.equal(snapshotRefusal({ ...meta, factory: 'IVF64,Flat', build: { ...build, factory: 'IVF64,Flat', nlist: 64 } }, KEY, accept), undefined, 'an IVF snapshot of any nlist too');

  const { build: _dropped, ...v1 } = meta;
  t.match(snapshotRefusal({ ...v1, format: 1 }, KEY, accept), /format-1 snapshot \(no build facts\) holds IDMap,Flat; the options pick IVF64,Flat for 70 rows/, 'format 1 (unknown facts): the older rule, unchanged');
  t.equal(snapshotRefusal({ ...v1, format: 1, rows: 50 }, KEY, accept), undefined, 'format 1 still restores where the older rule did');

  t.match(snapshotRefusal(meta, { ...KEY, featureSpecHash: 'spec-b' }, accept), /feature spec spec-a, model v1 uses feature spec spec-b/);
  t.match(snapshotRefusal(meta, { ...KEY, modelVersion: 'v2' }, accept), /snapshot of model v1, serving model v2/);
  t.match(snapshotRefusal(meta, { ...KEY, source: 'w@9' }, accept), /built from world w@0, serving world w@9/);
  t.match(snapshotRefusal({ ...meta, space: 'aaaa' }, { ...KEY, space: 'bbbb' }, accept), /embedding space aaaa, model v1's towers are space bbbb/, 'same version name, other tower files');
  t.equal(snapshotRefusal({ ...meta, space: 'aaaa' }, { ...KEY, space: 'aaaa' }, accept), undefined);
  t.equal(snapshotRefusal(meta, { ...KEY, space: 'bbbb' }, accept), undefined, 'a snapshot from before spaces is not checked for one');
  t.match(snapshotRefusal({ ...meta, format: 7 }, KEY, accept), /snapshot format 7/);
  t.match(snapshotRefusal(meta, KEY, { ...accept, options: resolveIndexOptions({ flatMaxItems: 60 }) }), /flatMaxItems 50, the options now say 60/);
  t.match(snapshotRefusal(meta, KEY, { ...accept, options: resolveIndexOptions({ factory: 'IVF64,Flat' }) }), /index.factory "auto", the options now ask "IVF64,Flat"/);
  const fastScan = 'IDMap,IVF64,PQ64x4fs,RFlat';
  const avx2Meta = { ...meta, factory: fastScan, build: { ...build, factory: fastScan, faissBuild: 'avx2' as const } };
  t.equal(snapshotRefusal(avx2Meta, KEY, { ...accept, faissBuild: 'avx2' }), undefined, 'AVX2 snapshot on the AVX2 build');
  t.match(snapshotRefusal(avx2Meta, KEY, accept), /written by the avx2 faiss build\) is not one 'auto' picks on this process's debian build/);
  const explicit = { ...meta, factory: 'IVF64,Flat', build: { ...build, requestedFactory: 'IVF64,Flat', factory: 'IVF64,Flat', faissBuild: 'avx2' as const } };
  t.equal(snapshotRefusal(explicit, KEY, { options: resolveIndexOptions({ factory: 'IVF64,Flat' }), faissBuild: 'debian' }), undefined, 'an explicit factory reads across builds (same faiss source)');
});

t.test('a shard whose upserts crossed flatMaxItems restores its own snapshot (real faiss)', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-item-facts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const options = { flatMaxItems: 50 };
  const index = ItemShardIndex.build(syntheticItems(40), clusteredUnitVectors({ n: 40, dim, seed: 1 }), dim, options);
  t.equal(index.factory, 'IDMap,Flat');
  const added: ItemMeta[] = Array.from({ length: 30 }, (_, i) => ({ videoId: 50_000 + i, creatorId: 7, category: 3, durationS: 10, uploadTsMs: 5 }));
  const addedVecs = clusteredUnitVectors({ n: 30, dim, seed: 2 });
  index.upsert(added, addedVecs);
  t.equal(index.size, 70, 'above flatMaxItems now');
  const key = { ...KEY, modelVersion: 'v/1' };
  await writeItemSnapshot(dir, key, index);
  const meta = JSON.parse(await readFile(path.join(itemSnapshotPath(dir, key), 'meta.json'), 'utf8')) as ItemShardSnapshotMeta;
  t.equal(meta.format, ITEM_SNAPSHOT_FORMAT);
  t.match(meta.build, { requestedFactory: 'auto', flatMaxItems: 50, factory: 'IDMap,Flat', nlist: null, faissBuild: faissBuild(), itemsAtBuild: 40 }, 'build facts recorded');

  const r = await restoreItemSnapshot(dir, key, options);
  if (r.kind !== 'restored') throw new Error(`not restored: ${JSON.stringify(r)}`);
  t.equal(r.index.size, 70);
  t.equal(r.index.factory, 'IDMap,Flat', 'the built index kind is kept');
  t.same(r.index.buildFacts, index.buildFacts, 'build facts survive the round trip');
  for (let i = 0; i < 30; i += 7) {
    const q = addedVecs.subarray(i * dim, (i + 1) * dim);
    t.equal(r.index.search(q, 1).videoIds[0], 50_000 + i, `upserted item ${i} found after the restore`);
  }

  // The same snapshot without its facts (format 1) is refused by the older rule: what the bug was.
  const { build: _dropped, ...v1 } = meta;
  await writeFile(path.join(itemSnapshotPath(dir, key), 'meta.json'), JSON.stringify({ ...v1, format: 1 }));
  const old = await restoreItemSnapshot(dir, key, options);
  t.equal(old.kind, 'refused', 'format 1 keeps the older rule');
});

/** A video id of shard `shard` of `shards`, at or above `from`, not in `taken`. */
function idOf(shard: number, shards: number, from: number, taken: Set<number>): number {
  let id = from;
  while (itemShardOf(id, shards) !== shard || taken.has(id)) id++;
  taken.add(id);
  return id;
}

async function admin(nc: NatsConnection, cluster: string, shard: number, upserts: readonly ItemMeta[], removeVideoIds: readonly number[] = []) {
  const reply = await nc.request(Subjects.itemAdmin(cluster, shard), Codecs.itemAdminRequest.encode({ upserts: [...upserts], removeVideoIds: [...removeVideoIds] }), { timeout: 5000 });
  return Codecs.itemAdminReply.decode(reply.data);
}

/** Whether each item is the top hit of a search with its own item-tower vector (local path). */
async function foundEach(shard: ItemShardHandle, tower: ItemTower, items: readonly ItemMeta[]): Promise<boolean[]> {
  const vecs = await tower.encode(items);
  const out: boolean[] = [];
  for (let i = 0; i < items.length; i++) {
    const q = Array.from(vecs.subarray(i * tower.dim, (i + 1) * tower.dim));
    const reply = Codecs.shardSearchReply.decode(await shard.local.search(Codecs.shardSearchRequest.encode({ userVector: q, k: 5, excludeVideoIds: [], deadlineMs: 0 })));
    out.push(reply.candidates?.videoIds.includes(items[i]!.videoId) ?? false);
  }
  return out;
}

/** Polls `ok` every 20 ms; throws after `limitMs` (a hang guard, not an assertion on speed). */
async function until(what: string, ok: () => boolean, limitMs = 30_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('item shard worker: snapshots after admin changes survive a crash and a restart; another spec is refused', async (t) => {
  const SHARDS = 2;
  const SHARD = 1;
  const { root, nc } = await natsFixture(t, 'upnext-item-snapafter');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 200, numUsers: 10, days: 2 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const tower = await ItemTower.load(modelDir);
  t.teardown(() => tower.close());
  const own = world.videos.filter((v) => itemShardOf(v.videoId, SHARDS) === SHARD).length;
  const cluster = `snap${process.pid}`;
  const base: ItemShardOptions = {
    nc,
    cluster,
    shard: SHARD,
    shardCount: SHARDS,
    worldDir: world.dir,
    modelDir,
    snapshotDir: path.join(root, 'snap'),
    // A few upserts cross the Flat ↔ IVF limit.
    index: { flatMaxItems: own + 5 },
    snapshotAfterChangesMs: 50,
  };
  const taken = new Set(world.videos.map((v) => v.videoId));
  const newItems = (n: number, category: number): ItemMeta[] =>
    Array.from({ length: n }, (_, i) => ({ videoId: idOf(SHARD, SHARDS, 900_000, taken), creatorId: 5000 + i * 13 + category, category: (category + i) % 32, durationS: 5 + i * 7, uploadTsMs: 1_700_000_000_000 + i * 86_400_000 }));

  const first = await startItemShard(base);
  t.equal(first.info.restored, false, 'first start builds');
  t.equal(first.info.factory, 'IDMap,Flat');
  t.equal(first.stats().snapshotsWritten, 1, 'the build wrote a snapshot');
  const burst = newItems(10, 1);
  // One burst: two admin requests inside the debounce window.
  t.equal((await admin(nc, cluster, SHARD, burst.slice(0, 5))).upserted, 5);
  t.equal((await admin(nc, cluster, SHARD, burst.slice(5))).upserted, 5);
  t.equal(first.stats().items, own + 10, 'crossed flatMaxItems');
  await until('the debounced snapshot', () => first.stats().snapshotsWritten >= 2 && first.stats().changesSinceSnapshot === 0);
  const s1 = first.stats();
  t.equal(s1.lastSnapshotItems, own + 10, 'the snapshot holds the upserts');
  t.equal(s1.snapshotFailures, 0);
  t.ok(s1.lastSnapshotAtMs > 0 && s1.lastSnapshotCaptureMs >= 0 && s1.lastSnapshotWriteMs >= s1.lastSnapshotCaptureMs, 'timings reported');
  t.comment(`tiny shard (${own + 10} items, dim ${tower.dim}): capture ${s1.lastSnapshotCaptureMs.toFixed(2)} ms, write ${s1.lastSnapshotWriteMs.toFixed(2)} ms`);

  // A worker crash cannot flush: only the debounced snapshot can bring the upserts back.
  first.crashForTest();
  await until('the reopen', () => first.stats().restarts === 1);
  t.same(await foundEach(first, tower, burst), burst.map(() => true), 'upserts found after the worker crash');
  t.equal(first.stats().items, own + 10);
  await first.stop();

  // Stop + start: restores its own snapshot although the count crossed flatMaxItems.
  const second = await startItemShard(base);
  t.equal(second.info.restored, true, 'restored after crossing the Flat ↔ IVF limit');
  t.equal(second.info.snapshotRefused, undefined);
  t.equal(second.info.factory, 'IDMap,Flat', 'the built index kind is kept');
  t.equal(second.info.items, own + 10);
  t.same(await foundEach(second, tower, burst), burst.map(() => true), 'upserts found after the restart');

  // Changes not yet written by the debounce are written at a graceful stop.
  await second.stop();
  const slow = await startItemShard({ ...base, snapshotAfterChangesMs: 600_000 });
  const late = newItems(3, 2);
  await admin(nc, cluster, SHARD, late, [burst[0]!.videoId]);
  t.equal(slow.stats().changesSinceSnapshot, 4, 'unsaved changes counted');
  const written = slow.stats().snapshotsWritten;
  await slow.stop();
  t.equal(slow.stats().snapshotsWritten, written + 1, 'the stop wrote them');
  const third = await startItemShard({ ...base, snapshotAfterChangesMs: 0 });
  t.equal(third.info.restored, true);
  t.same(await foundEach(third, tower, late), late.map(() => true), 'changes flushed at stop survive the restart');
  t.same(await foundEach(third, tower, burst.slice(0, 1)), [false], 'the removal too');

  // snapshotAfterChangesMs 0: nothing is written after changes, not even at stop.
  const never = newItems(2, 3);
  await admin(nc, cluster, SHARD, never);
  await third.stop();
  t.equal(third.stats().snapshotsWritten, 0, 'no write with snapshotAfterChangesMs 0');
  const fourth = await startItemShard(base);
  t.same(await foundEach(fourth, tower, never), [false, false], 'so those changes are lost, as documented');
  await fourth.stop();

  // A model with the same version but another feature spec: the snapshot is refused, the shard rebuilds.
  const otherSpec = await writeTinyModel(path.join(root, 'model-b'), 'test-v1', 3, { ...TINY_SPEC, videoIdBuckets: 2048 });
  const rebuilt = await startItemShard({ ...base, modelDir: otherSpec });
  t.teardown(() => rebuilt.stop());
  t.equal(rebuilt.info.restored, false, 'rebuilt');
  t.match(rebuilt.info.snapshotRefused, /snapshot vectors come from feature spec \w+, model test-v1 uses feature spec \w+/, 'refused with a message naming the cause');
  t.equal(rebuilt.info.items, own, 'built from the world (the upserts belonged to the other model)');
  t.equal(rebuilt.stats().snapshotsWritten, 1, 'and wrote its own snapshot');
});

t.test('a failed snapshot after changes is counted, logged and retried', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-item-snapfail');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 60, numUsers: 5, days: 1 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const snapshotDir = path.join(root, 'snap');
  const cluster = `snapfail${process.pid}`;
  const shard = await startItemShard({ nc, cluster, shard: 0, shardCount: 1, worldDir: world.dir, modelDir, snapshotDir, snapshotAfterChangesMs: 30 });
  t.teardown(() => shard.stop());
  // The snapshot folder becomes a file: the next write cannot create its temporary folder.
  await rm(snapshotDir, { recursive: true, force: true });
  await writeFile(snapshotDir, 'not a folder');
  const taken = new Set(world.videos.map((v) => v.videoId));
  await admin(nc, cluster, 0, [{ videoId: idOf(0, 1, 70_000, taken), creatorId: 1, category: 1, durationS: 9, uploadTsMs: 1 }]);
  await until('a failure', () => shard.stats().snapshotFailures >= 1);
  t.equal(shard.stats().snapshotsWritten, 1, 'only the build was written');
  t.equal(shard.stats().changesSinceSnapshot, 1, 'the change is still unsaved');
  await rm(snapshotDir, { force: true });
  await until('the retry', () => shard.stats().snapshotsWritten === 2);
  t.equal(shard.stats().changesSinceSnapshot, 0, 'saved by the retry');
  t.equal(shard.stats().lastSnapshotItems, world.videos.length + 1);
});

t.test('pruneSnapshots: a switch keeps the served and the replaced version; a start removes only garbage', async (t) => {
  const SHARDS = 2;
  const SHARD = 1;
  const { root, nc } = await natsFixture(t, 'upnext-item-prune');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 120, numUsers: 10, days: 2 });
  const models: string[] = [];
  for (const v of ['prune-v1', 'prune-v2', 'prune-v3']) models.push(await writeTinyModel(path.join(root, v), v));
  const snapshotDir = path.join(root, 'snap');
  const cluster = `prune${process.pid}`;
  const base = { nc, cluster, shard: SHARD, shardCount: SHARDS, worldDir: world.dir, snapshotDir };
  const dirOf = (v: string, shard = SHARD) => itemSnapshotPath(snapshotDir, { shard, shardCount: SHARDS, modelVersion: v });
  const open = async (model: number, extra: Partial<ItemShardOptions> = {}) => {
    const h = await startItemShard({ ...base, modelDir: models[model]!, ...extra });
    t.teardown(() => h.stop());
    return h;
  };

  for (const m of [0, 1, 2]) await (await open(m)).stop(); // snapshots of v1, v2, v3 on disk
  // Garbage beside them: a dead writer's unfinished folder, an old folder of this shard with no
  // meta.json, a fresh one (it may be mid-replace), and a complete snapshot of the other shard.
  const deadTmp = `${dirOf('prune-v1')}.tmp-999999999-1-1`;
  const liveTmp = `${dirOf('prune-v1')}.tmp-${process.pid}-1-1`;
  const broken = dirOf('broken');
  const fresh = dirOf('fresh');
  const otherShard = dirOf('prune-v0', 0);
  for (const d of [deadTmp, liveTmp, broken, fresh, otherShard]) await mkdir(d, { recursive: true });
  await writeFile(path.join(otherShard, 'meta.json'), JSON.stringify({ shard: 0, shardCount: SHARDS, modelVersion: 'prune-v0', createdAt: '2020-01-01T00:00:00Z' }));
  const hourAgo = new Date(Date.now() - 3_600_000);
  await utimes(broken, hourAgo, hourAgo);

  const v3 = await open(2);
  t.equal(v3.info.restored, true);
  t.same((await v3.pruneSnapshots()).sort(), [broken, deadTmp].sort(), 'no version named: only garbage goes');
  t.ok(existsSync(liveTmp), "a live process's unfinished folder stays");
  t.ok(existsSync(fresh), 'a fresh folder without meta.json stays (a write may be putting it in place)');
  for (const v of ['prune-v1', 'prune-v2', 'prune-v3']) t.ok(existsSync(dirOf(v)), `${v} stays`);

  // As after a switch v2 -> v3: v1 goes (the versions kept are named, never ranked by write time).
  t.same(await v3.pruneSnapshots('prune-v2'), [dirOf('prune-v1')], 'every version but the served and the replaced one');
  t.ok(existsSync(dirOf('prune-v2')) && existsSync(dirOf('prune-v3')));
  t.ok(existsSync(otherShard), "the other shard's snapshot is untouched");
  t.equal(v3.stats().snapshotsPruned, 3, 'counted');
  t.same(readdirSync(snapshotDir).filter((n) => n.includes('.trash-')), [], 'nothing claimed is left behind');

  // snapshotsKept 1: only the served version; 0: every version stays.
  const keepAll = await open(1, { snapshotsKept: 0 });
  t.same(await keepAll.pruneSnapshots('prune-v3'), [], 'kept 0');
  const keepOne = await open(1, { snapshotsKept: 1 });
  t.same(await keepOne.pruneSnapshots('prune-v3'), [dirOf('prune-v3')], 'kept 1: the replaced version goes too');
  t.ok(existsSync(dirOf('prune-v2')), 'never its own');
  await t.rejects(startItemShard({ ...base, modelDir: models[1]!, snapshotsKept: 3 }), /snapshotsKept must be an integer in 0\.\.2, got 3/);
  await rm(liveTmp, { recursive: true, force: true });
});
