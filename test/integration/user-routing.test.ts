/**
 * Routing by user on a real cluster (tiny world, 2 nodes, both coordinators, P = 4, R = 1): every
 * coordinator's GetRouting answers the table of the shard map in NATS KV (each partition → the
 * Recommend address of the node hosting it), and a client routing by it lands every user on the
 * coordinator that reads the user's state in its own process: the coordinators' user-state reads
 * over NATS stay where they were while their in-process reads grow by one per request.
 */
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { metricsText, startTinyCluster } from '../fixtures/tiny-cluster.js';
import { RecommenderClientPool } from '../../loadtest/client/recommender-client.js';
import { SERVER_STAGES, classify } from '../../loadtest/measure/outcome.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import { routingTableOf } from '../../shardmap/routing-table.js';
import { userPartitionOf } from '../../core/hash.js';

const { cluster } = await startTinyCluster(t, 'route', { coordinators: 'n1,n2' });
const ctx = { device: 'ios', country: 'US', localHour: 20 };

/** User-state reads of `node`'s coordinator, in process and over NATS (from its /metrics). */
async function userStateReads(node: string): Promise<{ local: number; nats: number }> {
  const info = cluster.nodes.find((n) => n.name === node);
  if (info === undefined) throw new Error(`no node ${node}`);
  const text = await metricsText(info.metricsAddress);
  const value = (name: string): number => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    if (m === null) throw new Error(`${node} /metrics has no ${name}`);
    return Number(m[1]);
  };
  const prefix = 'upnext_coordinator_local_paths_user_state';
  return { local: value(`${prefix}_local`), nats: value(`${prefix}_nats_no_local`) + value(`${prefix}_nats_overloaded`) + value(`${prefix}_nats_local_failed`) };
}

t.test('every coordinator answers GetRouting with the shard map\'s table', async (t) => {
  t.equal(cluster.grpcAddresses.length, 2, 'two coordinators');
  const nc = await connect({ servers: cluster.natsUrl, reconnect: false });
  t.teardown(() => nc.close());
  const store = await ShardMapStore.open(nc, cluster.cluster, { create: false });
  const map = await store.read();
  if (map == null) throw new Error('no shard map');
  const want = routingTableOf(map);
  t.equal(want.userPartitions, 4);
  t.ok(want.partitions.every((a) => a.length === 1), 'R = 1 and both nodes run a coordinator: one address per partition');
  t.same([...want.coordinators].sort(), [...cluster.grpcAddresses].sort());
  for (const address of cluster.grpcAddresses) {
    const pool = new RecommenderClientPool({ address, channels: 1, routing: 'user' });
    t.teardown(() => pool.close());
    t.same(await pool.refreshRouting(), want, `${address} answers the map's table`);
  }
});

t.test('a client routing by user makes every user-state read local', async (t) => {
  const pool = new RecommenderClientPool({ address: cluster.grpcAddresses[0]!, channels: 1, routing: 'user', deadlineMs: 20_000 });
  t.teardown(() => pool.close());
  await pool.waitForReady(20_000);
  const users: number[] = [];
  for (let u = 1; users.length < 12; u++) if (users.filter((x) => userPartitionOf(x, 4) === userPartitionOf(u, 4)).length < 3) users.push(u);
  t.same(new Set(users.map((u) => userPartitionOf(u, 4))).size, 4, 'users of every partition');
  // One call per user first: its answer may be the first to warm a cache; then the measured calls.
  for (const userId of users) t.ok((await pool.recommend({ userId, k: 5, context: ctx, surface: 'home' })).ok);
  const before = { n1: await userStateReads('n1'), n2: await userStateReads('n2') };
  for (const userId of users) {
    const r = await pool.recommend({ userId, k: 5, context: ctx, surface: 'home' });
    t.ok(r.ok && r.value.items.length === 5 && r.value.degraded.length === 0, `user ${userId} answered in full`);
  }
  const after = { n1: await userStateReads('n1'), n2: await userStateReads('n2') };
  t.equal(after.n1.nats - before.n1.nats + (after.n2.nats - before.n2.nats), 0, 'no user-state read went over NATS');
  t.equal(after.n1.local - before.n1.local + (after.n2.local - before.n2.local), users.length, 'every read was in-process');
  t.ok(after.n1.local > before.n1.local && after.n2.local > before.n2.local, 'both coordinators served their own users');
  t.equal(pool.routingStats().routed, 2 * users.length);
  t.equal(pool.routingStats().spread, 0);

  // The same users spread over both coordinators: about half of the reads cross to the other node.
  const spread = new RecommenderClientPool({ address: [...cluster.grpcAddresses], channels: 1, deadlineMs: 20_000 });
  t.teardown(() => spread.close());
  const b1 = { n1: await userStateReads('n1'), n2: await userStateReads('n2') };
  for (const userId of users) t.ok((await spread.recommend({ userId, k: 5, context: ctx, surface: 'home' })).ok);
  const a1 = { n1: await userStateReads('n1'), n2: await userStateReads('n2') };
  t.ok(a1.n1.nats - b1.n1.nats + (a1.n2.nats - b1.n2.nats) > 0, 'spread over both, some reads cross nodes: the local-only check above is not vacuous');
});

t.test('a real coordinator answers a debug request with its stage timings, which the load test reads', async (t) => {
  const pool = new RecommenderClientPool({ address: cluster.grpcAddresses[0]!, channels: 1, deadlineMs: 20_000 });
  t.teardown(() => pool.close());
  await pool.waitForReady(20_000);
  const timed = classify(await pool.recommend({ userId: 3, k: 5, context: ctx, surface: 'home', debug: true }));
  t.equal(timed.outcome, 'ranked');
  const ms = timed.stageMs;
  t.ok(ms !== undefined, 'debug answer carries timings');
  for (const stage of SERVER_STAGES) t.ok(Number.isFinite(ms![stage]) && ms![stage] >= 0, `${stage} ${ms![stage]} ms`);
  t.ok(ms!.retrieval > 0 && ms!.ranking > 0, 'retrieval and ranking took time');
  const parts = ms!.admission + ms!.userState + ms!.retrieval + ms!.ranking + ms!.policy;
  t.ok(ms!.total >= parts - 0.01, `total ${ms!.total} ms covers the stages (${parts.toFixed(3)} ms)`);
  t.equal(classify(await pool.recommend({ userId: 3, k: 5, context: ctx, surface: 'home' })).stageMs, undefined, 'no debug, no timings');
});
