// The node's reconciliation against a real nats-server KV, with fake actors (the real ones are
// covered by test/integration/cluster.test.ts): it starts what the map assigns, stops what it no
// longer owns, registers its addresses in its own KV key (never the map key), serves /metrics, and
// stops cleanly.
import t from 'tap';
import { natsFixture } from '../fixtures/nats.js';
import { resolveConfig } from '../../cluster/config.js';
import { startNode } from '../../cluster/node/node.js';
import { FakeLauncher } from '../fixtures/fake-launcher.js';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';

const { nc } = await natsFixture(t, 'upnext-node');

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('runs its assignment, registers addresses, follows map changes, stops cleanly', async (t) => {
  const config = resolveConfig({ cluster: { name: 'node-a', nodes: 2 }, node: { loadReportIntervalMs: 50 } });
  const store = await ShardMapStore.open(nc, 'node-a');
  await store.put(createShardMap({ cluster: 'node-a', itemShards: 2, userPartitions: 4, replicas: 1, nodes: ['n1', 'n2'] }));
  const launcher = new FakeLauncher();
  const node = await startNode({ name: 'n1', nc, config, launcher, modelVersion: 'v-test', log: () => {} });
  const ready = await node.ready;
  t.same(ready.actors, ['coordinator', 'item:0', 'popular', 'ranker', 'user:0', 'user:2'].sort());
  t.ok(ready.recommendAddress && ready.rankerAddress);
  t.equal(launcher.log[0], 'start ranker', 'ranker starts before the coordinator that calls it');
  t.equal(launcher.log[launcher.log.length - 1], 'start coordinator');

  // the addresses are in the map as read (the node's own record), and the coordinator sees the live ranker list
  await until(async () => (await store.read())?.nodes.n1?.recommendAddress === ready.recommendAddress, 'registration');
  const stored = await store.read();
  t.equal(stored?.nodes.n1?.rankerAddress, ready.rankerAddress);
  t.same(await store.readAddresses('n1'), { rankerAddress: ready.rankerAddress, recommendAddress: ready.recommendAddress }, 'registered in its own key');
  t.equal(stored?.version, ready.mapVersion, 'registering did not write the map key');
  await until(() => launcher.rankerAddressesSeen?.().length === 1, 'ranker list');
  await store.update((m) => withNodeInfo(m, 'n2', { rankerAddress: '10.0.0.2:7000' }));
  await until(() => launcher.rankerAddressesSeen?.().includes('10.0.0.2:7000') === true, 'second ranker seen');
  // a peer's own record (no map change) reaches the ranker list too, and wins over the map's copy
  const reconciledTo = (await store.read())!.version;
  await until(() => node.mapVersion() === reconciledTo, 'reconciled to the admin update');
  await store.putAddresses('n2', { rankerAddress: '10.0.0.2:7001' });
  await until(() => launcher.rankerAddressesSeen?.().includes('10.0.0.2:7001') === true, 'peer record seen');
  t.notOk(launcher.rankerAddressesSeen?.().includes('10.0.0.2:7000'), 'the record replaced the map\'s copy');
  t.equal(node.mapVersion(), reconciledTo, 'an address change is not an assignment change');

  // /metrics over HTTP
  const res = await fetch(`http://${node.metricsAddress}/metrics`);
  const text = await res.text();
  t.equal(res.status, 200);
  t.match(text, /upnext_node_info\{cluster="node-a",node="n1",model_version="v-test"\} 1/);
  t.match(text, /upnext_item_shard_items\{cluster="node-a",node="n1",index="0"\} 10/);
  t.match(text, /process_resident_memory_bytes/);
  t.match(text, /nodejs_gc_pause_seconds_count\{cluster="node-a",node="n1",kind="major"\} \d+/, 'the stall watch runs: GC pauses');
  t.match(text, /nodejs_eventloop_window_max_delay_seconds_bucket\{cluster="node-a",node="n1",le="\+Inf"\} \d+/, 'and event-loop windows');
  t.equal((await fetch(`http://${node.metricsAddress}/healthz`)).status, 200);

  // the load report reaches KV
  await until(async () => (await store.readLoads(['n1'])).get('n1')?.recommends === 2, 'load report');
  t.equal((await store.readLoads(['n1'])).get('n1')?.items, 10);

  // move item shard 0 to n2 and give n1 item shard 1: n1 stops item:0 and starts item:1
  await store.update((m) => ({ ...m, itemShardOwners: [['n2'], ['n1']] }));
  await until(() => node.actors().includes('item:1') && !launcher.live.has('item:0'), 'item shard move');
  t.same(node.actors(), ['coordinator', 'item:1', 'popular', 'ranker', 'user:0', 'user:2'].sort());
  // take the coordinator away: popular goes with it (popularOn = coordinators), address withdrawn
  await store.update((m) => ({ ...m, coordinators: ['n2'] }));
  await until(() => !launcher.live.has('coordinator') && !launcher.live.has('popular'), 'coordinator removal');
  await until(async () => (await store.read())?.nodes.n1?.recommendAddress === undefined, 'address withdrawn');
  t.ok(node.mapVersion() > ready.mapVersion);

  await node.stop();
  await node.stop();
  t.same([...launcher.live], [], 'every actor stopped');
  await t.rejects(fetch(`http://${node.metricsAddress}/metrics`), 'metrics server closed');
  t.equal((await store.read())?.nodes.n1?.rankerAddress, undefined, 'ranker address withdrawn on stop');
});

t.test('a failing actor start rejects ready', async (t) => {
  const config = resolveConfig({ cluster: { name: 'node-b', nodes: 1 }, node: { loadReportIntervalMs: 0 } });
  const store = await ShardMapStore.open(nc, 'node-b');
  await store.put(createShardMap({ cluster: 'node-b', itemShards: 1, userPartitions: 1, replicas: 1, nodes: ['n1'] }));
  const launcher = new FakeLauncher();
  launcher.failOn = 'user:0';
  const node = await startNode({ name: 'n1', nc, config, launcher, log: () => {} });
  await t.rejects(node.ready, /cannot start user:0/);
  await node.stop();
  t.same([...launcher.live], [], 'what did start was stopped');
});

t.test('no map in KV: ready rejects after mapWaitMs', async (t) => {
  const config = resolveConfig({ cluster: { name: 'node-c', nodes: 1 }, node: { loadReportIntervalMs: 0 } });
  const node = await startNode({ name: 'n1', nc, config, launcher: new FakeLauncher(), log: () => {}, mapWaitMs: 100 });
  await t.rejects(node.ready, /no shard map for cluster node-c/);
  await node.stop();
});
