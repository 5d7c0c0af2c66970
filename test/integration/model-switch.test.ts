// Live model switch (shardmap/model-switch.ts, cluster/node/node.ts) on the real tiny cluster: a
// second version with the same towers and another calibration is switched in under back-to-back
// Recommend calls (none fails, answers carry the new version, every node reports it, /metrics
// follows); the CLI switches back and shows the key; a version whose ranker takes rows of another
// width is refused (by the CLI before the key is written, and by the nodes themselves when the key
// is written without local checks) and the cluster keeps serving the old version; an unknown version
// is NOT_FOUND before anything is written. (Switching to other towers: tower-switch.test.ts.)
import { rm } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { backToBackCalls, metricsText, shardmapModel, startTinyCluster } from '../fixtures/tiny-cluster.js';
import { copyModelVersion } from '../fixtures/model-versions.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import { switchModel } from '../../shardmap/model-switch.js';
import { servingModelDir } from '../../offline/logged/serving-version.js';
import { nodeStatus } from '../../shardmap/move.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { StatusCode, toStatus } from '../../core/status.js';

const { assets, cluster, client } = await startTinyCluster(t, 'msw');
const modelsRoot = path.dirname(assets.modelDir);
const base = assets.manifest.version;
const v2 = `msw-v2-${process.pid}`;
const badWidth = `msw-width-${process.pid}`;

const makeVersion = (name: string, edit?: (m: ModelManifest) => ModelManifest) => copyModelVersion(assets.modelDir, modelsRoot, name, edit);
t.teardown(async () => {
  await rm(path.join(modelsRoot, v2), { recursive: true, force: true });
  await rm(path.join(modelsRoot, badWidth), { recursive: true, force: true });
});
// Same towers and ranker bytes, another calibration: what the switch path must carry.
await makeVersion(v2, (m) => ({ ...m, calibration: { click: { type: 'temperature', temperature: 1.7 } } }));
// A ranker declared to take one feature more per row than the coordinators write.
await makeVersion(badWidth, (m) => ({
  ...m,
  tensors: { ...m.tensors, ranker: { ...m.tensors.ranker, inputs: m.tensors.ranker.inputs.map((i) => (i.name === 'features' ? { ...i, shape: [i.shape[0] ?? -1, Number(i.shape[1]) + 1] } : i)) } },
}));

const nc = await connect({ servers: cluster.natsUrl });
t.teardown(() => nc.close());
const store = await ShardMapStore.open(nc, cluster.cluster, { create: false });
const nodes = cluster.nodes.map((n) => n.name).sort();
const users = [1, 2, 3, 4, 5, 6, 7, 8];

async function servedVersions(): Promise<string[]> {
  return Promise.all(nodes.map(async (n) => (await nodeStatus(nc, cluster.cluster, n))?.model?.version ?? '?'));
}


const cli = (...args: string[]) => shardmapModel(cluster, ...args);

t.test('an unknown version is NOT_FOUND before the key is written', async (t) => {
  const err = await switchModel({ nc, store, cluster: cluster.cluster, version: `nope-${process.pid}`, modelsDir: modelsRoot }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.equal(err === undefined ? undefined : toStatus(err).code, StatusCode.NOT_FOUND, 'NOT_FOUND');
  t.match(toStatus(err).message, /not found: no directory/);
  t.equal(await store.readModelKey(), null, 'the key was not written');
  t.same(await servedVersions(), nodes.map(() => base));
});

const ctx = { device: 'ios', country: 'US', localHour: 20 };
/** P(click) by video of one user's answer: the calibration shows in it. */
async function pClicks(userId: number): Promise<Map<number, number>> {
  const reply = await client.recommend({ userId, k: 10, context: ctx });
  return new Map(reply.items.map((i) => [i.videoId, i.pClick]));
}

t.test('a same-towers version switches live under load: no failed call, answers and nodes on v2', async (t) => {
  const pBefore = await pClicks(1);
  const load = backToBackCalls(client, users);
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  const r = await switchModel({ nc, store, cluster: cluster.cluster, version: v2, modelsDir: modelsRoot, by: 'model-switch.test' });
  const switchedAt = Date.now();
  await new Promise((r) => setTimeout(r, 300));
  const { replies, errors, answeredAtMs, startedAtMs } = await load.stop();
  t.ok(r.ok, 'every node switched');
  t.same(r.nodes.map((n) => [n.node, n.state, n.serving]), nodes.map((n) => [n, 'switched', v2]));
  t.same(errors, [], `no call failed (${replies.length} calls, switch took ${switchedAt - t0} ms)`);
  const degraded = replies.filter((x) => x.degraded.length > 0);
  t.equal(degraded.length, 0, `no call degraded${degraded.length ? `: ${JSON.stringify(degraded[0]!.degraded)}` : ''}`);
  t.ok(answeredAtMs.some((x) => x < t0), 'calls answered before the switch');
  t.ok(answeredAtMs.some((x) => x >= t0 && x <= switchedAt), 'calls answered during the switch');
  t.equal(replies[0]!.modelVersion, base, 'answers carried the old version before');
  // Sent after the switch: a call in flight across a node's flip keeps the version it started with.
  const after = replies.filter((_, i) => startedAtMs[i]! > switchedAt);
  t.ok(after.length > 0, 'calls sent after the switch');
  t.same([...new Set(after.map((x) => x.modelVersion))], [v2], 'answers to calls sent after the switch carry v2');
  t.same(await servedVersions(), nodes.map(() => v2), 'every node status says v2');
  const pAfter = await pClicks(1);
  const common = [...pBefore.keys()].filter((v) => pAfter.has(v));
  t.ok(common.length > 0 && common.every((v) => pAfter.get(v) !== pBefore.get(v)), `v2's calibration applies (p_click of ${common.length} common videos changed)`);
  const key = await store.readModelKey();
  t.equal(key?.value.version, v2);
  t.equal(key?.value.by, 'model-switch.test');
  for (const n of cluster.nodes) t.match(await metricsText(n.metricsAddress), new RegExp(`upnext_node_info\\{[^}]*model_version="${v2}"\\} 1`), `${n.name} /metrics follows`);
  // train-logged without --from-model retrains what the key says is served.
  t.same(await servingModelDir({ nc, cluster: cluster.cluster, modelsDir: modelsRoot }), { dir: path.join(modelsRoot, v2), version: v2, source: 'model key', keyRevision: (await store.readModelKey())?.revision });
});

t.test('the CLI switches back, shows the key, and refuses another ranker width before writing', async (t) => {
  const back = await cli('--version', base, '--models-dir', modelsRoot);
  t.equal(back.code, 0, back.stderr);
  t.match(back.stdout, `every node serves ${base}`);
  for (const n of nodes) t.match(back.stdout, `${n}: serving ${base}`);
  const reply = await client.recommend({ userId: 1, k: 10, context: ctx });
  t.equal(reply.modelVersion, base);

  const shown = await cli();
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, `model key: ${base} (revision`);
  for (const n of nodes) t.match(shown.stdout, `${n}: serving ${base}`);

  const revision = (await store.readModelKey())?.revision;
  const refused = await cli('--version', badWidth, '--models-dir', modelsRoot);
  t.equal(refused.code, 1, 'exits non-zero');
  t.match(refused.stderr, /FAILED_PRECONDITION: .*features per row/);
  t.equal((await store.readModelKey())?.revision, revision, 'the key was not changed');
  t.same(await servedVersions(), nodes.map(() => base));
});

t.test('nodes refuse another ranker width themselves; the key is put back and the cluster keeps serving', async (t) => {
  // No modelsDir: no local checks, the key is written and each node decides.
  const r = await switchModel({ nc, store, cluster: cluster.cluster, version: badWidth, timeoutMs: 20_000 });
  t.notOk(r.ok);
  for (const n of r.nodes) {
    t.equal(n.state, 'refused', `${n.node} refused`);
    t.equal(n.code, 'FAILED_PRECONDITION');
    t.match(n.message, /features per row/);
    t.equal(n.serving, base);
  }
  t.equal(r.rollback?.version, base, 'key put back to the previous version');
  t.same(r.rollback?.nodes.map((n) => n.state), nodes.map(() => 'switched'));
  t.equal((await store.readModelKey())?.value.version, base);
  const reply = await client.recommend({ userId: 2, k: 10, context: ctx });
  t.equal(reply.modelVersion, base, 'answers still carry the old version');
  t.same(await servedVersions(), nodes.map(() => base));
});
