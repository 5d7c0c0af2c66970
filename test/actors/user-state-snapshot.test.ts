/**
 * User-state snapshots and the shared catalogue: a restart restores the profiles from the snapshot
 * and answers exactly as the replayed build did; a snapshot of another world or feature spec is
 * refused and rebuilt; the node-wide catalogue is loaded once and freed with its last user.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventType } from '../../core/events.js';
import { specHash } from '../../core/features/index.js';
import { userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import type { UserStateReplyMsg } from '../../protos/codec.js';
import { ItemCatalogue, buildCatalogueColumns, worldIdentity } from '../../actors/user-state/catalogue.js';
import { acquireCatalogue, heldCatalogues } from '../../actors/user-state/catalogue-cache.js';
import { UserStatePartition } from '../../actors/user-state/partition.js';
import { readUserSnapshot, writeUserSnapshot } from '../../actors/user-state/snapshot.js';
import { startUserPartition } from '../../actors/user-state/user-state.js';
import { UserTower } from '../../actors/user-state/user-tower.js';
import { TINY_SPEC, writeTinyModel, writeTinyWorld } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const P = 2;
const PART = 1;

t.test('user partition snapshots', async (t) => {
  const { root, nc } = await natsFixture(t, 'upnext-usersnap');
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 200, numUsers: 30, days: 2 });
  const modelDir = await writeTinyModel(path.join(root, 'model'));
  const snapshotDir = path.join(root, 'snapshots');
  const users = [...Array(32).keys()].map((i) => i + 1).filter((u) => userPartitionOf(u, P) === PART);
  let cn = 0;

  const answers = async (thread: 'worker' | 'inline') => {
    const cluster = `usnap${process.pid}x${cn++}`;
    const h = await startUserPartition({ nc, cluster, partition: PART, partitionCount: P, worldDir: world.dir, modelDir, snapshotDir, thread });
    const replies: UserStateReplyMsg[] = [];
    try {
      for (const userId of users) {
        const req = { userId, context: { device: 'ios', country: 'BR', localHour: 20 }, deadlineMs: Date.now() + 5000 };
        const m = await nc.request(Subjects.userGet(cluster, PART), Codecs.userStateRequest.encode(req), { timeout: 5000 });
        replies.push(Codecs.userStateReply.decode(m.data));
      }
    } finally {
      await h.stop();
    }
    return { info: h.info, replies };
  };

  const built = await answers('worker');
  t.equal(built.info.snapshot, 'built', 'first start replays the world and writes a snapshot');
  t.equal(built.info.snapshotRefused, 'no snapshot');
  t.ok(built.info.replayedEvents > 0);
  t.ok(built.replies.some((r) => r.known && r.recentVideoIds.length > 0), 'known users have histories');

  const restored = await answers('worker');
  t.equal(restored.info.snapshot, 'restored', 'second start restores the snapshot');
  t.equal(restored.info.replayedEvents, 0, 'no event replayed');
  t.equal(restored.info.users, built.info.users);
  t.same(restored.replies, built.replies, 'identical replies (profiles, counters, affinities, embeddings)');
  const inline = await answers('inline');
  t.equal(inline.info.snapshot, 'restored');
  t.same(inline.replies, built.replies, 'inline host restores the same state');
  t.equal(heldCatalogues(), 0, 'catalogue released when the last partition stopped');

  await t.test('a snapshot of another feature spec is refused and rebuilt', async (t) => {
    const key = { partition: PART, partitionCount: P, source: await worldIdentity(world.dir), featureSpecHash: 'other-spec' };
    const read = await readUserSnapshot(snapshotDir, { ...key, featureSpecHash: specHash(TINY_SPEC) });
    t.ok(read.columns, 'the current snapshot reads back');
    await writeUserSnapshot(snapshotDir, key, read.columns!);
    const again = await answers('inline');
    t.equal(again.info.snapshot, 'built');
    t.match(again.info.snapshotRefused, /featureSpecHash/);
    t.same(again.replies, built.replies, 'rebuilt state answers the same');
    t.equal((await answers('inline')).info.snapshot, 'restored', 'and the rewritten snapshot is used next time');
  });

  await t.test('a snapshot of another world is refused and rebuilt', async (t) => {
    const manifestPath = path.join(world.dir, 'world.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
    // Same name, new createdAt: a regenerated world must not restore the old world's profiles.
    await writeFile(manifestPath, JSON.stringify({ ...manifest, createdAt: '2031-01-01T00:00:00.000Z' }));
    const key = { partition: PART, partitionCount: P, source: await worldIdentity(world.dir), featureSpecHash: specHash(TINY_SPEC) };
    const cols = (await readUserSnapshot(snapshotDir, { ...key, source: `${String(manifest.name)}@${String(manifest.createdAt)}` })).columns;
    t.ok(cols, 'the old world’s snapshot exists');
    const read = await readUserSnapshot(snapshotDir, key);
    t.equal(read.columns, undefined, 'not found for the new world');
    const again = await answers('inline');
    t.equal(again.info.snapshot, 'built', 'rebuilt from the new world');
  });

  await t.test('another partition count does not see the snapshot', async (t) => {
    const key = { partition: PART, partitionCount: P + 2, source: await worldIdentity(world.dir), featureSpecHash: specHash(TINY_SPEC) };
    t.equal((await readUserSnapshot(snapshotDir, key)).columns, undefined);
  });
});

t.test('exportProfiles / restoreProfiles round trip and seq de-duplication', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'upnext-userexp-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 100, numUsers: 20, days: 2 });
  const tower = await UserTower.load(await writeTinyModel(path.join(root, 'model')));
  t.teardown(() => tower.close());
  const a = new UserStatePartition({ partition: 0, partitionCount: 2, embedder: tower });
  await a.loadWorld(world.dir);
  const user = [...Array(20).keys()].map((i) => i + 1).find((u) => userPartitionOf(u, 2) === 0)!;
  const ev = { eventId: 'x1', userId: user, videoId: 7, type: EventType.CLICK, tsMs: Date.UTC(2026, 0, 9), position: 0, watchSeconds: 0, context: { device: 'ios', country: 'BR', localHour: 1 }, surface: 'home', requestId: '' };
  a.applyEvents([{ seq: 41, event: ev }]);
  const b = new UserStatePartition({ partition: 0, partitionCount: 2, embedder: tower });
  b.restoreProfiles(a.exportProfiles());
  t.equal(b.appliedSeq, 41, 'appliedSeq travels with the snapshot');
  for (let u = 1; u <= 20; u++) t.same(b.profile(u), a.profile(u), `profile of user ${u}`);
  t.equal(b.applyEvents([{ seq: 41, event: ev }]).applied, 0, 'an event at or below the snapshot’s seq is not applied again');
  const wrong = new UserStatePartition({ partition: 1, partitionCount: 2, embedder: tower });
  t.throws(() => wrong.restoreProfiles(a.exportProfiles()), TypeError, 'another partition’s profiles are refused');
});

t.test('catalogue: compact lookups and one shared copy per world', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'upnext-cat-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const world = await writeTinyWorld(path.join(root, 'world'), { numVideos: 50, numUsers: 4, days: 1 });
  const cat = new ItemCatalogue(await buildCatalogueColumns(world.dir, false));
  t.equal(cat.size, world.videos.length);
  for (const v of world.videos) t.same(cat.meta(v.videoId), { videoId: v.videoId, creatorId: v.creatorId, category: v.category, durationS: v.durationS, uploadTsMs: v.uploadTsMs });
  t.equal(cat.eventInfo(999_999), undefined, 'unknown video');
  const snapshotDir = path.join(root, 'snap');
  const a = await acquireCatalogue(world.dir, snapshotDir);
  const b = await acquireCatalogue(world.dir, snapshotDir);
  t.equal(a.catalogue, b.catalogue, 'the second lease shares the first one’s catalogue');
  t.equal(a.fromFile, false, 'first load parses the world and writes the file');
  t.ok(a.catalogue.columns.ids.buffer instanceof SharedArrayBuffer, 'backed by SharedArrayBuffers (shared with workers)');
  a.release();
  a.release();
  t.equal(heldCatalogues(), 1, 'still held by the second lease (release is idempotent)');
  b.release();
  t.equal(heldCatalogues(), 0);
  const c = await acquireCatalogue(world.dir, snapshotDir);
  t.equal(c.fromFile, true, 'a later load reads the catalogue file');
  t.same(Array.from(c.catalogue.columns.categories), Array.from(cat.columns.categories));
  c.release();
});
