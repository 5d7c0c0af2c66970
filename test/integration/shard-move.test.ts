// Live moves (shardmap/move.ts) on a real local cluster: a user partition and an item shard move
// between nodes while Recommend calls for that partition's user run without pause; none fails or
// degrades, the map ends with the new owner only, and events keep reaching the user afterwards.
import t from 'tap';
import { backToBackCalls, startTinyCluster } from '../fixtures/tiny-cluster.js';
import { userPartitionOf } from '../../core/hash.js';
import { drainNode, pickDestination, withExtraOwner, withoutOwner } from '../../shardmap/move.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import { assignmentOf } from '../../shardmap/snapshot.js';
import { connect } from '@nats-io/transport-node';

const P = 4; // startTinyCluster's partitions
const { cluster, client } = await startTinyCluster(t, 'mv');
const ctx = { device: 'ios', country: 'US', localHour: 20 };

/** Recommend for `userId` back to back until `stop()` resolves; every reply kept, with when it was answered. */
function hammer(userId: number) {
  return backToBackCalls(client, [userId], ctx);
}

t.test('the map edits of a move refuse what would break the map', async (t) => {
  const map = cluster.initialMap;
  const owner = map.partitionOwners[0]![0]!;
  const other = owner === 'n1' ? 'n2' : 'n1';
  const warm = withExtraOwner(map, 'user', 0, other);
  t.same(warm.partitionOwners[0], ['n1', 'n2']);
  t.same(withoutOwner(warm, 'user', 0, owner).partitionOwners[0], [other]);
  t.throws(() => withoutOwner(map, 'user', 0, owner), /no owner left/);
  t.throws(() => withExtraOwner(map, 'user', 0, owner), /already hosts/);
  t.throws(() => withExtraOwner(map, 'user', P, other), /partition must be an integer in 0\.\.3/);
  t.throws(() => withExtraOwner(map, 'item', 0, 'n9'), /not in the shard map/);
});

t.test('a user partition moves under load: no failed or degraded call, events follow it', async (t) => {
  let userId = 1;
  while (userPartitionOf(userId, P) !== 1) userId++;
  const before = cluster.initialMap.partitionOwners[1]![0]!;
  const load = hammer(userId);
  await load.firstAnswer;
  await new Promise((r) => setTimeout(r, 300));
  const moveStart = Date.now();
  const moved = await cluster.moveShard('user', 1);
  const moveEnd = Date.now();
  await new Promise((r) => setTimeout(r, 300));
  const { replies, errors, answeredAtMs } = await load.stop();
  t.equal(moved.from, before);
  t.not(moved.to, before);
  t.same(errors, [], 'no call failed');
  const degraded = replies.filter((r) => r.degraded.some((d) => /user state/.test(d)));
  t.equal(degraded.length, 0, `no call lost its user state (${replies.length} calls across the move)`);
  // Calls before, during and after the move (a count would depend on the machine's speed).
  t.ok(answeredAtMs.some((x) => x < moveStart), 'calls answered before the move');
  t.ok(answeredAtMs.some((x) => x >= moveStart && x <= moveEnd), `calls answered during the move (${moveEnd - moveStart} ms, ${replies.length} calls in all)`);
  t.ok(answeredAtMs.some((x) => x > moveEnd), 'calls answered after it');
  t.comment(`warm ${moved.result.warmMs} ms, drain ${moved.result.drainMs} ms`);

  // A click logged after the move reaches the new owner.
  const clicked = replies[replies.length - 1]!.items[0]!.videoId;
  await client.logEvents([{ eventId: `mv-${process.pid}`, userId, videoId: clicked, type: 'CLICK', context: ctx }]);
  let seen = true;
  for (let i = 0; i < 100 && seen; i++) {
    seen = (await client.recommend({ userId, k: 10, context: ctx })).items.some((x) => x.videoId === clicked);
    if (seen) await new Promise((r) => setTimeout(r, 50));
  }
  t.notOk(seen, 'the clicked video left the list: the new owner applies the stream');
});

t.test('an item shard moves under load: coverage stays 1', async (t) => {
  const load = hammer(7);
  await load.firstAnswer;
  await new Promise((r) => setTimeout(r, 300));
  const moved = await cluster.moveShard('item', 0);
  await new Promise((r) => setTimeout(r, 300));
  const { replies, errors } = await load.stop();
  t.same(errors, []);
  t.ok(replies.every((r) => r.coverage === 1), `every call saw every shard (${replies.length} calls; min coverage ${Math.min(...replies.map((r) => r.coverage))})`);
  t.comment(`item shard 0 ${moved.from} → ${moved.to}: warm ${moved.result.warmMs} ms, drain ${moved.result.drainMs} ms`);
});

t.test('draining a node under load hands everything it hosts to the others without a failed call', async (t) => {
  const nc = await connect({ servers: cluster.natsUrl });
  t.teardown(() => nc.close());
  const store = await ShardMapStore.open(nc, cluster.cluster);
  const before = (await store.read())!;
  const victim = 'n2';
  const hosted = assignmentOf(before, victim);
  t.ok(hosted.itemShards.length + hosted.userPartitions.length > 0, `n2 hosts something (${JSON.stringify(hosted)})`);
  let user = 1;
  while (!hosted.userPartitions.includes(userPartitionOf(user, P))) user++;
  const load = hammer(user);
  await load.firstAnswer;
  await new Promise((r) => setTimeout(r, 300));
  const steps = await drainNode({ nc, store, cluster: cluster.cluster, node: victim });
  await new Promise((r) => setTimeout(r, 300));
  const { replies, errors } = await load.stop();
  const after = (await store.read())!;
  t.same(errors, [], 'no call failed');
  t.equal(replies.filter((r) => r.degraded.length > 0).length, 0, `no call degraded (${replies.length} calls, ${steps.length} steps)`);
  t.same(assignmentOf(after, victim).itemShards, [], 'n2 hosts no item shard');
  t.same(assignmentOf(after, victim).userPartitions, [], 'n2 hosts no partition');
  t.equal(after.nodes[victim]?.state, 'draining');
  t.ok(steps.length === hosted.itemShards.length + hosted.userPartitions.length, 'one step per shard or partition');
  t.throws(() => pickDestination(after, 'user', 0, 'n1') ?? (() => { throw new Error('nowhere'); })(), /nowhere/, 'a draining node is never a destination');
});
