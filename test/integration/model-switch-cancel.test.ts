// Cancelling a model switch in progress (shardmap/model-switch.ts cancelModelSwitch, the node's
// side in cluster/node/node.ts), against a real nats-server KV with two nodes whose actors are faked
// (the real tower switch and its abort are covered by tower-switch.test.ts and
// tower-switch-abort.test.ts): n1 switches at once, n2 is still "rebuilding" (its switch waits for
// its abort signal). The cancel puts the key back, n2 gives up with the reason, n1 switches back,
// and the first switch's waiter reports n2's abandonment without putting the key back over the cancel.
// Then what a cancel refuses: a key value that already undoes a switch, and no switch in progress;
// and that the key's history, not the nodes, names the version to go back to.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { natsFixture } from '../fixtures/nats.js';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { copyModelVersion, replaceTowers } from '../fixtures/model-versions.js';
import { FakeLauncher } from '../fixtures/fake-launcher.js';
import { resolveConfig } from '../../cluster/config.js';
import { startNode } from '../../cluster/node/node.js';
import type { NodeHandle } from '../../cluster/node/node.js';
import { readModelDir } from '../../cluster/node/model.js';
import type { ModelDirInfo } from '../../cluster/node/model.js';
import { createShardMap } from '../../shardmap/assign.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import { cancelModelSwitch, formatModelSwitch, showModel, switchModel } from '../../shardmap/model-switch.js';
import { StatusCode, UpnextError, toStatus } from '../../core/status.js';

const assets = await ensureTinyAssets();
const root = await mkdtemp(path.join(tmpdir(), 'upnext-cancel-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
await copyModelVersion(assets.modelDir, root, 'v1');
await copyModelVersion(assets.modelDir, root, 'v1b'); // the same towers: a ranker-only switch from v1
await replaceTowers(await copyModelVersion(assets.modelDir, root, 'v2'), assets.manifest.featureSpec, 7);

const { nc } = await natsFixture(t, 'upnext-cancel');
const cluster = `cancel${process.pid}`;
const store = await ShardMapStore.open(nc, cluster);
await store.put(createShardMap({ cluster, itemShards: 1, userPartitions: 2, replicas: 1, nodes: ['n1', 'n2'] }));

const rejection = (p: Promise<unknown>) => p.then(() => ({ code: StatusCode.OK, message: '' }), (e: unknown) => toStatus(e));

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The versions each node's apply was asked for, and whether n2's v2 switch is waiting. */
const asked: Record<string, string[]> = { n1: [], n2: [] };
let n2Rebuilding = false;
const events: Record<string, unknown>[] = [];

async function node(name: 'n1' | 'n2'): Promise<NodeHandle> {
  const served = await readModelDir(root, 'v1');
  const h = await startNode({
    name,
    nc,
    config: resolveConfig({ cluster: { name: cluster, nodes: 2 } }),
    launcher: new FakeLauncher(),
    log: (e) => void events.push(e),
    model: {
      modelsRoot: root,
      served,
      apply: (next: ModelDirInfo, _kind, signal) => {
        asked[name]!.push(next.manifest.version);
        if (name === 'n2' && next.manifest.version === 'v1b') return Promise.reject(new UpnextError(StatusCode.FAILED_PRECONDITION, 'n2 refuses v1b'));
        if (name === 'n1' || next.manifest.version !== 'v2') return Promise.resolve();
        // n2's rebuild for v2 does not end by itself: only its signal (a cancel, or the node stopping) ends it.
        n2Rebuilding = true;
        return new Promise<void>((_, reject) =>
          signal.addEventListener('abort', () => {
            n2Rebuilding = false;
            reject(signal.reason);
          }, { once: true }),
        );
      },
    },
  });
  await h.ready;
  t.teardown(() => h.stop());
  return h;
}
const n1 = await node('n1');
const n2 = await node('n2');

t.test('nothing to cancel without a model key', async (t) => {
  const e = await rejection(cancelModelSwitch({ nc, store, cluster, modelsDir: root }));
  t.equal(e.code, StatusCode.FAILED_PRECONDITION);
  t.match(e.message, /no model key/);
});

// Twice: first with no earlier key value (the nodes started from --models: the version the
// unswitched node serves is the way back), then with the history holding v1.
for (const round of [1, 2]) {
  t.test(`round ${round}: a cancel mid-switch puts every node back on v1, the rebuilding one gives up`, async (t) => {
    asked.n1 = [];
    asked.n2 = [];
    events.length = 0;
    const switching = switchModel({ nc, store, cluster, version: 'v2', modelsDir: root, timeoutMs: 30_000 });
    await until(() => n1.modelVersion() === 'v2' && n2Rebuilding, 'n1 on v2 and n2 rebuilding');
    t.equal(n2.modelVersion(), 'v1', 'n2 still serves v1 while it rebuilds');

    const c = await cancelModelSwitch({ nc, store, cluster, modelsDir: root, timeoutMs: 30_000 });
    t.ok(c.ok, formatModelSwitch(c));
    t.equal(c.cancelled, 'v2');
    t.equal(c.version, 'v1', 'the key went back to v1');
    t.same(c.nodes.map((n) => [n.node, n.state, n.serving]), [['n1', 'switched', 'v1'], ['n2', 'switched', 'v1']]);
    t.equal(n1.modelVersion(), 'v1', 'n1 switched back');
    t.equal(n2.modelVersion(), 'v1');
    t.same(asked, { n1: ['v2', 'v1'], n2: ['v2'] }, 'n1 applied v2 then v1; n2 abandoned v2 and had nothing to do for v1');
    t.notOk(n2Rebuilding, 'n2\'s rebuild was aborted');
    const abandoned = events.filter((e) => e['event'] === 'model_switch_abandoned' && e['node'] === 'n2').pop();
    t.match(abandoned?.['message'], /switch to v2 abandoned: the model key moved to v1 .*cancel of v2/, 'n2 logs why it gave up');
    t.equal(abandoned?.['code'], 'ABORTED');

    const r = await switching;
    t.notOk(r.ok, 'the cancelled switch reports failure');
    const n2Outcome = r.nodes.find((n) => n.node === 'n2');
    t.equal(n2Outcome?.state, 'refused');
    t.equal(n2Outcome?.code, 'ABORTED');
    t.equal(r.rollback, undefined, 'the waiter did not write over the cancel (the key had moved on)');
    t.equal((await store.readModelKey())?.value.version, 'v1');
  });
}

t.test('the key history lists the switches and the cancels in order', async (t) => {
  const history = await store.readModelKeyHistory();
  t.same(history.map((e) => e.value.version), ['v2', 'v1', 'v2', 'v1']);
  t.match(history[1]?.value.by, /cancel of v2/);
  t.ok(history.every((e, i) => i === 0 || e.revision > history[i - 1]!.revision), 'oldest first');
});

t.test('a key value that already undoes a switch is not cancelled (that would restart the switch)', async (t) => {
  const before = await store.readModelKey();
  t.equal(before?.value.revertOf, 'v2', 'the cancel marked its value');
  const e = await rejection(cancelModelSwitch({ nc, store, cluster, modelsDir: root }));
  t.equal(e.code, StatusCode.FAILED_PRECONDITION);
  t.match(e.message, /already goes back from v2 to v1/);
  t.equal((await store.readModelKey())?.revision, before?.revision, 'the key stays');
});

t.test('the key history names the version to go back to, not what the switching nodes serve', async (t) => {
  // v1b is accepted by n1 and refused by n2 (which stays on v1); then v2: n1 flips, n2 rebuilds.
  // The key said v1b before v2, so the cancel goes back to v1b (the switching node serves v1).
  const r1b = await store.writeModelKey({ version: 'v1b', requestedAt: new Date().toISOString() }, (await store.readModelKey())?.revision ?? null);
  await until(() => n1.modelVersion() === 'v1b', 'n1 on v1b');
  const r2 = await store.writeModelKey({ version: 'v2', requestedAt: new Date().toISOString() }, r1b);
  await until(() => n1.modelVersion() === 'v2' && n2Rebuilding, 'n1 on v2 and n2 rebuilding');
  t.equal(n2.modelVersion(), 'v1');
  const c = await cancelModelSwitch({ nc, store, cluster, modelsDir: root, timeoutMs: 30_000 });
  t.equal(c.revision > r2, true);
  t.equal(c.version, 'v1b', 'back to the key\'s previous version');
  t.same(c.nodes.map((n) => [n.node, n.state, n.serving]), [['n1', 'switched', 'v1b'], ['n2', 'refused', 'v1']], 'n2 refuses v1b again, as before the switch');
  t.notOk(c.ok);
  t.equal((await store.readModelKey())?.value.version, 'v1b', 'a cancel that a node refuses is not undone');
});

t.test('no switch in progress: a cancel is refused and the key stays', async (t) => {
  // Every node acts on a plain value (n1 switches to v1, n2 serves it already).
  const rev = await store.writeModelKey({ version: 'v1', requestedAt: new Date().toISOString() }, (await store.readModelKey())?.revision ?? null);
  for (let i = 0; i < 200; i++) {
    const v = await showModel({ nc, store, cluster });
    if (v.nodes.every((n) => (n.status?.model?.keyRevision ?? 0) >= rev)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(n1.modelVersion(), 'v1');
  const e = await rejection(cancelModelSwitch({ nc, store, cluster, modelsDir: root }));
  t.equal(e.code, StatusCode.FAILED_PRECONDITION);
  t.match(e.message, /no switch in progress: every node that answers has acted on the model key/);
  t.equal((await store.readModelKey())?.revision, rev, 'the key stays');
});
