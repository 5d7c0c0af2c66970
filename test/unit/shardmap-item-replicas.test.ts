// R_items (item-shard replicas) separate from R (user-partition replicas): shardmap/assign.ts,
// snapshot.ts (itemReplicasOf), route.ts (under-replication, validation), format.ts, cli.ts.
import t from 'tap';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import { itemReplicasFlag } from '../../shardmap/cli.js';
import { formatShardMap } from '../../shardmap/format.js';
import { underReplicated, validateShardMap } from '../../shardmap/route.js';
import { assignmentOf, itemReplicasOf } from '../../shardmap/snapshot.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';

function counts(owners: readonly (readonly string[])[], nodes: readonly string[]): number[] {
  return nodes.map((n) => owners.filter((o) => o.includes(n)).length);
}

/** A map as stored before itemReplicas existed: the same JSON without the field. */
function oldFormat(map: ShardMapSnapshot): unknown {
  const { itemReplicas: _dropped, ...rest } = JSON.parse(JSON.stringify(map)) as ShardMapSnapshot;
  return rest;
}

const nodes3 = ['n1', 'n2', 'n3'];

t.test('S=2 on 3 nodes with itemReplicas 3: every node owns both shards, partitions stay at R=1 and balanced', async (t) => {
  const map = createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 16, replicas: 1, itemReplicas: 3, nodes: nodes3 });
  t.equal(map.itemReplicas, 3);
  t.equal(itemReplicasOf(map), 3);
  for (const n of nodes3) t.same(assignmentOf(map, n).itemShards, [0, 1], `${n} hosts both item shards`);
  for (const owners of map.itemShardOwners) t.same(owners, nodes3);
  for (const owners of map.partitionOwners) t.equal(owners.length, 1, 'each partition on exactly R=1 node');
  const parts = counts(map.partitionOwners, nodes3);
  t.ok(Math.max(...parts) - Math.min(...parts) <= 1, `partitions balanced: ${parts}`);
  t.equal(parts.reduce((a, b) => a + b, 0), 16);
  t.same(underReplicated(map), { itemShards: [], userPartitions: [] });
});

t.test('balance holds per kind when R_items ≠ R', async (t) => {
  for (const [S, P, R, RI, N] of [
    [2, 16, 1, 3, 3],
    [5, 37, 1, 3, 7],
    [8, 64, 2, 4, 4],
    [3, 256, 1, 2, 5],
    [4, 10, 3, 1, 4],
  ] as const) {
    const nodes = Array.from({ length: N }, (_, i) => `node-${i}`);
    const map = createShardMap({ cluster: 'c', itemShards: S, userPartitions: P, replicas: R, itemReplicas: RI, nodes });
    const label = `S=${S} P=${P} R=${R} R_items=${RI} N=${N}`;
    for (const o of map.itemShardOwners) t.equal(new Set(o).size, RI, `${label}: item shard on R_items distinct nodes`);
    for (const o of map.partitionOwners) t.equal(new Set(o).size, R, `${label}: partition on R distinct nodes`);
    const items = counts(map.itemShardOwners, nodes);
    const parts = counts(map.partitionOwners, nodes);
    t.ok(Math.max(...items) - Math.min(...items) <= 1, `${label}: item shards ${items}`);
    t.ok(Math.max(...parts) - Math.min(...parts) <= 1, `${label}: partitions ${parts}`);
    t.equal(items.reduce((a, b) => a + b, 0), S * RI);
    t.equal(parts.reduce((a, b) => a + b, 0), P * R);
  }
});

t.test('itemReplicas defaults to replicas, and the map records it', async (t) => {
  const spec = { cluster: 'c', itemShards: 8, userPartitions: 64, replicas: 2, nodes: ['n1', 'n2', 'n3', 'n4'] };
  const implicit = createShardMap(spec);
  t.equal(implicit.itemReplicas, 2);
  t.same(implicit, createShardMap({ ...spec, itemReplicas: 2 }), 'same map as an explicit R_items = R');
  for (const o of implicit.itemShardOwners) t.equal(o.length, 2);
});

t.test('itemReplicas out of range is a TypeError naming it', async (t) => {
  const base = { cluster: 'c', itemShards: 2, userPartitions: 16, replicas: 1, nodes: nodes3 };
  t.throws(() => createShardMap({ ...base, itemReplicas: 4 }), { name: 'TypeError', message: /^itemReplicas must be ≤ the number of nodes \(3\), got 4/ });
  t.throws(() => createShardMap({ ...base, itemReplicas: 0 }), { name: 'TypeError', message: /^itemReplicas must be an integer/ });
  t.throws(() => createShardMap({ ...base, itemReplicas: 1.5 }), { name: 'TypeError', message: /^itemReplicas/ });
  t.throws(() => createShardMap({ ...base, itemReplicas: 'all' as unknown as number }), { name: 'TypeError', message: /^itemReplicas/ });
});

t.test('an old-format snapshot without itemReplicas validates and behaves as R', async (t) => {
  const map = createShardMap({ cluster: 'c', itemShards: 8, userPartitions: 64, replicas: 2, nodes: ['n1', 'n2', 'n3', 'n4'] });
  const old = validateShardMap(oldFormat(map));
  t.equal(old.itemReplicas, undefined, 'the field really is absent');
  t.equal(itemReplicasOf(old), 2, 'absent means replicas');
  t.same(underReplicated(old), { itemShards: [], userPartitions: [] }, 'R owners per item shard is enough');
  const drained = withNodeInfo(old, 'n1', { state: 'draining' });
  t.same(
    underReplicated(drained).itemShards,
    old.itemShardOwners.flatMap((o, i) => (o.includes('n1') ? [i] : [])),
    'judged against R when R_items is absent',
  );
  t.match(formatShardMap(old), /replicas R=2\n/);
  t.notMatch(formatShardMap(old), /R_items/);
});

t.test('under-replication is judged per kind: item shards against R_items, partitions against R', async (t) => {
  const map = createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 6, replicas: 1, itemReplicas: 3, nodes: nodes3 });
  const drained = withNodeInfo(map, 'n3', { state: 'draining' });
  const under = underReplicated(drained);
  t.same(under.itemShards, [0, 1], 'two active owners < R_items=3');
  t.same(under.userPartitions, map.partitionOwners.flatMap((o, i) => (o.includes('n3') ? [i] : [])), 'only partitions on n3 are short of R=1');
  t.ok(under.userPartitions.length < 6, 'partitions with one active owner are not judged against R_items');
  // The same owners read as an old map with R=1: two active owners are plenty.
  t.same(underReplicated(withNodeInfo(validateShardMap(oldFormat(map)), 'n3', { state: 'draining' })).itemShards, []);
});

t.test('validateShardMap: itemReplicas, when present, must be an integer ≥ 1', async (t) => {
  const map = createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 4, replicas: 1, itemReplicas: 3, nodes: nodes3 });
  t.same(validateShardMap(JSON.parse(JSON.stringify(map))), map);
  t.throws(() => validateShardMap({ ...map, itemReplicas: 0 }), { name: 'TypeError', message: /shard map itemReplicas must be an integer ≥ 1/ });
  t.throws(() => validateShardMap({ ...map, itemReplicas: 'all' }), { name: 'TypeError', message: /itemReplicas/ });
});

t.test('format shows R_items and R when they differ, one R when equal', async (t) => {
  const diff = createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 16, replicas: 1, itemReplicas: 3, nodes: nodes3 });
  t.match(formatShardMap(diff), /replicas R_items=3 R=1/);
  t.match(formatShardMap(diff), /n1 +active +0-1 +/, 'every node lists both item shards');
  const same = createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 16, replicas: 1, nodes: nodes3 });
  t.match(formatShardMap(same), /replicas R=1/);
  t.notMatch(formatShardMap(same), /R_items/);
});

t.test('CLI --item-replicas: "all" is the node count, numbers pass through, absent means R, junk is refused', async (t) => {
  t.equal(itemReplicasFlag('all', 5), 5);
  t.equal(itemReplicasFlag(undefined, 5), undefined);
  t.equal(itemReplicasFlag('2', 5), 2);
  t.throws(() => itemReplicasFlag('two', 5), { name: 'TypeError', message: /--item-replicas/ });
  t.throws(() => itemReplicasFlag('-1', 5), { name: 'TypeError', message: /--item-replicas/ });
});
