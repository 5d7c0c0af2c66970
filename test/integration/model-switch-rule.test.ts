// The live-switch rule (cluster/node/model.ts) without a cluster: which versions can replace the
// served one live, the checks on a model directory, and what a starting node serves given the key.
import { appendFile, cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { checkLiveSwitch, checkModelVersionName, liveSwitchKind, readModelDir, readModelDirAt, resolveStartModel } from '../../cluster/node/model.js';
import type { ModelDirInfo } from '../../cluster/node/model.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { copyModelVersion } from '../fixtures/model-versions.js';
import { StatusCode, toStatus } from '../../core/status.js';

const assets = await ensureTinyAssets();
const root = await mkdtemp(path.join(tmpdir(), 'upnext-msr-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const base = assets.manifest.version;
await cp(assets.modelDir, path.join(root, base), { recursive: true });

const copyAs = (name: string, edit: (m: ModelManifest) => ModelManifest) => copyModelVersion(assets.modelDir, root, name, edit);

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return StatusCode.OK;
  } catch (err) {
    return toStatus(err).code;
  }
};
const rejection = (p: Promise<unknown>) => p.then(() => ({ code: StatusCode.OK, message: '' }), (e: unknown) => toStatus(e));

t.test('version names are one safe path segment', async (t) => {
  for (const bad of ['', '.', '..', '../x', 'a/b', 'a b', 'x'.repeat(129)]) t.equal(codeOf(() => checkModelVersionName(bad)), StatusCode.INVALID_ARGUMENT, JSON.stringify(bad));
  t.equal(checkModelVersionName('2024-06-01.a_b'), '2024-06-01.a_b');
});

t.test('readModelDir: NOT_FOUND without the folder, FAILED_PRECONDITION when the manifest names another version', async (t) => {
  t.equal((await rejection(readModelDir(root, 'absent'))).code, StatusCode.NOT_FOUND);
  await copyAs('renamed', (m) => ({ ...m, version: base }));
  const e = await rejection(readModelDir(root, 'renamed'));
  t.equal(e.code, StatusCode.FAILED_PRECONDITION);
  t.match(e.message, /manifest of version tiny, not renamed/);
  await copyAs('badspec', (m) => ({ ...m, version: 'badspec', featureSpecHash: '0000000000000000' }));
  t.equal((await rejection(readModelDir(root, 'badspec'))).code, StatusCode.FAILED_PRECONDITION, 'feature-spec hash refused by this build');
});

t.test('liveSwitchKind and checkLiveSwitch: same towers switch the ranker, other towers rebuild the shards; spec or ranker width differing are refused, named', async (t) => {
  const served = await readModelDirAt(path.join(root, base));
  await copyAs('cal', (m) => ({ ...m, version: 'cal', calibration: { click: { type: 'identity' } } }));
  const cal = await readModelDir(root, 'cal');
  t.same(cal.towers, served.towers, 'copied towers hash the same');
  t.doesNotThrow(() => checkLiveSwitch(served, cal));
  t.equal(liveSwitchKind(served, cal), 'ranker');
  const other = (towers: Partial<ModelDirInfo['towers']>, rest: Partial<ModelDirInfo> = {}): ModelDirInfo => ({ ...cal, ...rest, towers: { ...cal.towers, ...towers } });
  t.equal(liveSwitchKind(served, other({ userTower: 'ff' })), 'towers', 'another user tower: a tower switch');
  t.equal(liveSwitchKind(served, other({ itemTower: 'ff' })), 'towers', 'another item tower too');
  // A ranker-only switch (what train-logged publishes) needs the same towers.
  t.throws(() => checkLiveSwitch(served, other({ userTower: 'ff' })), { code: StatusCode.FAILED_PRECONDITION, message: /user_tower\.onnx.*not a ranker-only switch/ });
  t.throws(() => checkLiveSwitch(served, other({ itemTower: 'ff' })), { code: StatusCode.FAILED_PRECONDITION, message: /item_tower\.onnx/ });
  for (const kind of [liveSwitchKind, checkLiveSwitch]) {
    t.throws(() => kind(served, other({}, { manifest: { ...cal.manifest, featureSpecHash: 'x' } })), { code: StatusCode.FAILED_PRECONDITION, message: /feature spec/ });
    t.throws(() => kind(served, other({ userTower: 'ff' }, { rankerWidth: served.rankerWidth + 1 })), { code: StatusCode.FAILED_PRECONDITION, message: /features per row/ });
  }
});

t.test('a starting node serves the key version when it can, else its own with the reason', async (t) => {
  const own = await readModelDirAt(path.join(root, base));
  const log: Record<string, unknown>[] = [];
  const args = { own, modelsRoot: root, node: 'n1', log: (e: Record<string, unknown>) => void log.push(e) };
  t.equal((await resolveStartModel({ ...args, key: null })).served.manifest.version, base);
  const follow = await resolveStartModel({ ...args, key: { revision: 3, version: 'cal' } });
  t.equal(follow.served.manifest.version, 'cal');
  t.equal(follow.keyRevision, 3);
  // The key's version with other towers: followed too (the node builds its shards for them).
  await copyAs('towers2', (m) => ({ ...m, version: 'towers2' }));
  await appendFile(path.join(root, 'towers2', 'item_tower.onnx'), new Uint8Array([0]));
  const towers = await resolveStartModel({ ...args, key: { revision: 5, version: 'towers2' } });
  t.equal(towers.served.manifest.version, 'towers2');
  t.not(towers.served.space, own.space);
  const refused = await resolveStartModel({ ...args, key: { revision: 4, version: 'absent' } });
  t.equal(refused.served.manifest.version, base);
  t.equal(refused.refused?.code, 'NOT_FOUND');
  t.same(log.map((e) => e.event), ['model_switched', 'model_switched', 'model_switch_refused']);
});
