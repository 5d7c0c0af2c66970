// add-node on a real local cluster (nats-server, node processes, faiss, ONNX Runtime, gRPC): a
// third node process starts into a 2-node cluster (item shards on every node), waits unassigned,
// then addNode gives it a copy of every item shard and its share of user partitions while
// Recommend calls for every partition run back to back; none fails or degrades. Then: running it
// again changes nothing, and bad input gets clear errors.
import t from 'tap';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { backToBackCalls, startTinyCluster } from '../fixtures/tiny-cluster.js';
import { userPartitionOf } from '../../core/hash.js';
import { Subjects } from '../../core/subjects.js';
import { addNode } from '../../shardmap/add-node.js';
import { drainNode, withNodeState } from '../../shardmap/move.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import type { NodeStatus } from '../../shardmap/move.js';
import { assignmentOf } from '../../shardmap/snapshot.js';

const P = 4;
// Item shards on every node (the default "all", which the fixture turns off unless asked): the
// case where add-node copies every item shard to the new node.
const { cluster, client } = await startTinyCluster(t, 'addnode', { itemReplicas: 'all' });
const nc = await connect({ servers: cluster.natsUrl });
t.teardown(() => nc.close());
const store = await ShardMapStore.open(nc, cluster.cluster, { create: false });
const ctx = { device: 'ios', country: 'US', localHour: 20 };

// One user per partition, so whichever partition moves is under load.
const users: number[] = [];
for (let u = 1; users.length < P; u++) if (!users.some((x) => userPartitionOf(x, P) === userPartitionOf(u, P))) users.push(u);

/** Recommend calls back to back, cycling over `users`, until `stop()`. */
function hammer() {
  return backToBackCalls(client, users, ctx);
}

async function status(node: string): Promise<NodeStatus> {
  const m = await nc.request(Subjects.nodeStatus(cluster.cluster, node), new Uint8Array(), { timeout: 2000 });
  return JSON.parse(new TextDecoder().decode(m.data)) as NodeStatus;
}

function metrics(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${address}/metrics`, (res) => {
        let body = '';
        res.on('data', (b: Buffer) => (body += b.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const main = fileURLToPath(new URL('../../shardmap/cli.js', import.meta.url));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

t.test('a third node joins under load: every item shard, its share of partitions, no failed or degraded call', async (t) => {
  const before = (await store.read())!;
  t.same(before.itemShardOwners, [['n1', 'n2'], ['n1', 'n2']], 'item shards on every node to begin with');
  const load = hammer();
  await load.firstAnswer;
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  // A started-but-unassigned node: ready, running nothing, answering its status, not in the map.
  const n3 = await cluster.startExtraNode('n3');
  t.same(n3.actors, [], 'the new process runs no actor before the map names it');
  t.equal((await store.read())!.nodes.n3, undefined, 'starting it does not put it in the map');
  t.same((await status('n3')).actors, []);
  const t1 = Date.now();
  const steps: string[] = [];
  const result = await addNode({ nc, store, cluster: cluster.cluster, node: 'n3', log: (s) => steps.push(s.action) });
  const t2 = Date.now();
  await new Promise((r) => setTimeout(r, 300));
  const { replies, errors, answeredAtMs } = await load.stop();

  t.same(errors, [], 'no call failed');
  const degraded = replies.filter((r) => r.degraded.length > 0 || r.coverage !== 1);
  t.equal(degraded.length, 0, `no call degraded (${replies.length} calls; first: ${JSON.stringify(degraded[0]?.degraded ?? [])})`);
  t.ok(answeredAtMs.some((x) => x < t0), 'calls answered before');
  t.ok(answeredAtMs.some((x) => x >= t1 && x <= t2), 'calls answered while addNode ran');
  t.ok(answeredAtMs.some((x) => x > t2), 'calls answered after');

  const after = (await store.read())!;
  t.equal(after.nodes.n3?.state, 'active');
  t.same(after.itemShardOwners, [['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']], 'n3 owns every item shard; the old owners stay');
  t.equal(after.itemReplicas, 3, 'R_items follows "every node"');
  t.ok(after.rankers.includes('n3'), 'a ranker, like every other node');
  const parts = ['n1', 'n2', 'n3'].map((n) => assignmentOf(after, n).userPartitions.length);
  t.equal(parts.reduce((a, b) => a + b, 0), P);
  t.ok(parts.every((c) => c - parts[2]! <= 1) && parts[2]! >= 1, `n3 has its share of partitions (n1,n2,n3: ${parts.join(',')})`);
  t.same(steps, ['register', 'replicate', 'replicate', 'item-replicas', 'move'], 'register, copy both item shards, one partition move');
  t.notOk(result.noop);
  t.same(result.itemShards, [0, 1]);

  // The node says it serves them: status subject and /metrics.
  const s = await status('n3');
  const mine = assignmentOf(after, 'n3');
  for (const k of [...mine.itemShards.map((x) => `item:${x}`), ...mine.userPartitions.map((x) => `user:${x}`)]) t.ok(s.actors.includes(k), `n3 runs ${k}`);
  const text = await metrics(n3.metricsAddress);
  t.match(text, /upnext_actors\{[^}]*kind="item_shard"[^}]*\} 2\b/, '/metrics: 2 item shards');
  t.match(text, new RegExp(`upnext_actors\\{[^}]*kind="user_partition"[^}]*\\} ${mine.userPartitions.length}\\b`), '/metrics: its partitions');
  for (const n of ['n1', 'n2']) {
    const a = assignmentOf(after, n);
    const st = await status(n);
    t.notOk(
      st.actors.some((k) => k.startsWith('user:') && !a.userPartitions.includes(Number(k.slice(5)))),
      `${n} stopped the partition it gave away`,
    );
  }
  t.comment(`addNode: ${t2 - t1} ms for ${result.steps.length} steps; ${replies.length} Recommend calls across it`);
});

t.test('running it again changes nothing', async (t) => {
  const v = (await store.read())!.version;
  const again = await addNode({ nc, store, cluster: cluster.cluster, node: 'n3' });
  t.ok(again.noop);
  t.same(again.steps, []);
  t.equal((await store.read())!.version, v, 'the map was not written');
  const out = await cli(['add-node', '--nats', cluster.natsUrl, '--cluster', cluster.cluster, '--node', 'n3']);
  t.equal(out.code, 0, out.err);
  t.match(out.out, /n3 is already in the map, active, with its share .*nothing to do/);
  const n1 = await cli(['add-node', '--nats', cluster.natsUrl, '--cluster', cluster.cluster, '--node', 'n1']);
  t.equal(n1.code, 0, n1.err);
  t.match(n1.out, /n1 is already in the map, active, with its share/, 'an original node with its share: a no-op');
  t.equal((await store.read())!.version, v, 'still not written');
});

t.test('bad input: clear errors naming the flag, the map untouched', async (t) => {
  const v = (await store.read())!.version;
  const unknown = await cli(['add-node', '--nats', cluster.natsUrl, '--cluster', `nope-${process.pid}`, '--node', 'n3']);
  t.equal(unknown.code, 1);
  t.match(unknown.err, /--cluster nope-\d+: no shard map for this cluster/);
  const bad = await cli(['add-node', '--nats', cluster.natsUrl, '--cluster', cluster.cluster, '--node', 'n 4']);
  t.equal(bad.code, 1);
  t.match(bad.err, /--node must match \[A-Za-z0-9_-\]\{1,64\}, got "n 4"/);
  const missing = await cli(['add-node', '--nats', cluster.natsUrl, '--cluster', cluster.cluster]);
  t.match(missing.err, /--node is required/);
  // The unknown cluster was not created by asking about it.
  await t.rejects(ShardMapStore.open(nc, `nope-${process.pid}`, { create: false }), /no shard-map bucket/);
  // A node whose process is not running: refused after the wait, and taken out of the map again.
  await t.rejects(addNode({ nc, store, cluster: cluster.cluster, node: 'n9', timeoutMs: 1500 }), /start the node process.*taken out of the map again/);
  const m = (await store.read())!;
  t.equal(m.nodes.n9, undefined);
  t.notOk(m.rankers.includes('n9'));
  t.ok(m.version > v, 'it was registered, then removed');
});

t.test('a drained node comes back with add-node; one still draining is refused', async (t) => {
  const load = hammer();
  await load.firstAnswer;
  await store.update((m) => withNodeState(m, 'n3', 'draining'));
  await t.rejects(addNode({ nc, store, cluster: cluster.cluster, node: 'n3' }), /draining and still hosts/, 'a drain in progress is not undone');
  await drainNode({ nc, store, cluster: cluster.cluster, node: 'n3' });
  const drained = (await store.read())!;
  t.same(assignmentOf(drained, 'n3').userPartitions, []);
  const back = await addNode({ nc, store, cluster: cluster.cluster, node: 'n3' });
  const { replies, errors } = await load.stop();
  t.same(back.steps.map((s) => s.action), ['reactivate', 'replicate', 'replicate', 'move']);
  const m = (await store.read())!;
  t.equal(m.nodes.n3?.state, 'active');
  t.same(m.itemShardOwners, [['n1', 'n2', 'n3'], ['n1', 'n2', 'n3']]);
  t.equal(assignmentOf(m, 'n3').userPartitions.length, 1);
  t.same(errors, [], 'no call failed');
  t.equal(replies.filter((r) => r.degraded.length > 0 || r.coverage !== 1).length, 0, `no call degraded (${replies.length} calls)`);
});

t.test("the launcher's addNode starts a fourth node process and adds it in one call", async (t) => {
  const { node, result } = await cluster.addNode('n4');
  t.same(node.actors, [], 'it started unassigned');
  t.same(result.itemShards, [0, 1]);
  const m = result.map;
  const parts = ['n1', 'n2', 'n3', 'n4'].map((n) => assignmentOf(m, n).userPartitions.length);
  t.same(parts, [1, 1, 1, 1], 'P = 4 over 4 nodes: one each');
  t.same(cluster.nodes.map((n) => n.name), ['n1', 'n2', 'n3', 'n4'], 'the handle lists it (restartNode and stop cover it)');
  await t.rejects(cluster.startExtraNode('n4'), /already part of this cluster/);
  t.ok((await cluster.addNode('n4')).result.noop, 'again: nothing to do');
});
