import t from 'tap';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import { formatRanges, formatShardMap } from '../../shardmap/format.js';
import { nodeRows, routeUser, routeVideo, underReplicated, validateShardMap } from '../../shardmap/route.js';
import { assignmentOf, rankerAddresses } from '../../shardmap/snapshot.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import { itemShardOf, userPartitionOf } from '../../core/hash.js';
import { parseFlags } from '../../shardmap/cli.js';

const base = { cluster: 'unit', itemShards: 8, userPartitions: 64, replicas: 2, nodes: ['n3', 'n1', 'n2', 'n4'] };

function counts(owners: readonly (readonly string[])[], nodes: readonly string[]): number[] {
  return nodes.map((n) => owners.filter((o) => o.includes(n)).length);
}

t.test('each shard and partition sits on R distinct nodes', async (t) => {
  const map = createShardMap(base);
  t.equal(map.itemShardOwners.length, 8);
  t.equal(map.partitionOwners.length, 64);
  for (const owners of [...map.itemShardOwners, ...map.partitionOwners]) {
    t.equal(owners.length, 2);
    t.equal(new Set(owners).size, 2, `distinct owners ${owners.join(',')}`);
  }
  t.same(underReplicated(map), { itemShards: [], userPartitions: [] });
});

t.test('assignment is balanced: per-node counts differ by at most one', async (t) => {
  for (const [S, P, R, N] of [
    [8, 64, 2, 4],
    [2, 16, 1, 3],
    [5, 37, 3, 7],
    [1, 1, 1, 5],
    [3, 256, 2, 5],
  ] as const) {
    const nodes = Array.from({ length: N }, (_, i) => `node-${i}`);
    const map = createShardMap({ cluster: 'c', itemShards: S, userPartitions: P, replicas: R, nodes });
    const items = counts(map.itemShardOwners, nodes);
    const parts = counts(map.partitionOwners, nodes);
    t.ok(Math.max(...items) - Math.min(...items) <= 1, `S=${S} R=${R} N=${N}: item shards ${items}`);
    t.ok(Math.max(...parts) - Math.min(...parts) <= 1, `P=${P} R=${R} N=${N}: partitions ${parts}`);
    t.equal(items.reduce((a, b) => a + b, 0), S * R);
    t.equal(parts.reduce((a, b) => a + b, 0), P * R);
  }
});

t.test('partitions prefer nodes without item shards when counts tie', async (t) => {
  const map = createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 16, replicas: 1, nodes: ['n1', 'n2', 'n3'] });
  const a3 = assignmentOf(map, 'n3');
  t.same(a3.itemShards, [], 'n3 holds no item shard');
  t.equal(a3.userPartitions.length, 6, 'so it takes the extra partition');
});

t.test('deterministic and independent of the order nodes are listed in', async (t) => {
  const a = createShardMap(base);
  const b = createShardMap({ ...base, nodes: ['n4', 'n2', 'n1', 'n3'] });
  t.same(a, b);
});

t.test('defaults: rankers on every node, one coordinator on the first node by name', async (t) => {
  const map = createShardMap(base);
  t.same(map.rankers, ['n1', 'n2', 'n3', 'n4']);
  t.same(map.coordinators, ['n1']);
  t.equal(map.version, 0);
  const custom = createShardMap({ ...base, rankers: ['n2'], coordinators: ['n2', 'n3'] });
  t.same(custom.rankers, ['n2']);
  t.same(assignmentOf(custom, 'n3').coordinator, true);
  t.same(assignmentOf(custom, 'n1').ranker, false);
});

t.test('validation names the bad field', async (t) => {
  const cases: [Partial<typeof base> & Record<string, unknown>, RegExp][] = [
    [{ itemShards: 0 }, /^itemShards/],
    [{ itemShards: 1.5 }, /^itemShards/],
    [{ userPartitions: 0 }, /^userPartitions/],
    [{ replicas: 0 }, /^replicas/],
    [{ replicas: 5 }, /^replicas must be ≤ the number of nodes \(4\)/],
    [{ nodes: [] }, /^nodes/],
    [{ nodes: ['a', 'a'] }, /^nodes lists "a" twice/],
    [{ nodes: ['bad name'] }, /^nodes entries/],
    [{ cluster: 'a.b' }, /^cluster/],
    [{ rankers: ['n9'] }, /^rankers names "n9"/],
    [{ coordinators: [] }, /^coordinators/],
  ];
  for (const [patch, re] of cases) {
    t.throws(() => createShardMap({ ...base, ...patch } as typeof base), { name: 'TypeError', message: re }, JSON.stringify(patch));
  }
});

t.test('routes keys to the owners of their shard, and rejects when no owner is left', async (t) => {
  const map = createShardMap(base);
  for (const id of [0, 1, 12345, 2 ** 40 + 3]) {
    const r = routeVideo(map, id);
    t.equal(r.kind, 'target');
    t.equal(r.shard, itemShardOf(id, 8));
    if (r.kind === 'target') {
      t.same(r.owners, map.itemShardOwners[r.shard]);
      t.equal(r.subject, `upnext.unit.item.${r.shard}.search`);
    }
    const u = routeUser(map, id);
    t.equal(u.shard, userPartitionOf(id, 64));
    t.equal(u.kind === 'target' && u.subject, `upnext.unit.user.${u.shard}.get`);
  }
  // A map whose owners list a node that has been removed: the route says why instead of throwing.
  const { n1: _gone, ...rest } = map.nodes;
  const orphan: ShardMapSnapshot = {
    ...map,
    nodes: rest,
    itemShardOwners: map.itemShardOwners.map((o) => o.filter((n) => n !== 'n2')),
  };
  const target = [0, 1, 2, 3, 4, 5, 6, 7].find((s) => map.itemShardOwners[s]!.every((n) => n === 'n1' || n === 'n2'));
  t.not(target, undefined, 'some shard is owned only by n1 and n2');
  if (target !== undefined) {
    let id = 0;
    while (itemShardOf(id, 8) !== target) id++;
    const r = routeVideo(orphan, id);
    t.equal(r.kind, 'reject');
    t.match(r.kind === 'reject' ? r.reason : '', /item shard \d+ has no owner/);
  }
});

t.test('under-replicated: a draining owner does not count', async (t) => {
  const map = withNodeInfo(createShardMap(base), 'n1', { state: 'draining' });
  const under = underReplicated(map);
  t.same(under.itemShards, map.itemShardOwners.flatMap((o, i) => (o.includes('n1') ? [i] : [])));
  t.ok(under.userPartitions.length > 0);
});

t.test('withNodeInfo registers addresses without touching the assignment', async (t) => {
  const map = createShardMap(base);
  const next = withNodeInfo(withNodeInfo(map, 'n2', { rankerAddress: '127.0.0.1:7001' }), 'n1', {
    rankerAddress: '127.0.0.1:7000',
    recommendAddress: '127.0.0.1:50051',
  });
  t.same(rankerAddresses(next), ['127.0.0.1:7000', '127.0.0.1:7001']);
  t.same(next.itemShardOwners, map.itemShardOwners);
  t.equal(map.nodes.n1?.rankerAddress, undefined, 'the input snapshot is not mutated');
  t.throws(() => withNodeInfo(map, 'nx', {}), TypeError);
  const row = nodeRows(next).find((r) => r.name === 'n1');
  t.equal(row?.recommendAddress, '127.0.0.1:50051');
});

t.test('validateShardMap accepts a created map and names broken fields', async (t) => {
  const map = createShardMap(base);
  t.same(validateShardMap(JSON.parse(JSON.stringify(map))), map);
  t.throws(() => validateShardMap({ ...map, itemShardOwners: map.itemShardOwners.slice(1) }), /itemShardOwners must have 8 entries/);
  t.throws(() => validateShardMap({ ...map, partitionOwners: map.partitionOwners.map(() => ['ghost']) }), /partitionOwners\[0\]/);
  t.throws(() => validateShardMap({ ...map, userPartitions: 0 }), /userPartitions/);
  t.throws(() => validateShardMap({ ...map, rankers: ['ghost'] }), /rankers/);
  t.throws(() => validateShardMap(null), /object/);
});

t.test('formatting: ranges and the per-node table', async (t) => {
  t.equal(formatRanges([0, 1, 2, 5, 7, 8]), '0-2,5,7-8');
  t.equal(formatRanges([]), '-');
  t.equal(formatRanges([4]), '4');
  const map = withNodeInfo(createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 16, replicas: 1, nodes: ['n1', 'n2', 'n3'] }), 'n1', {
    recommendAddress: '127.0.0.1:50051',
  });
  const text = formatShardMap(map);
  t.match(text, /S=2 +user partitions P=16 +replicas R=1/);
  t.match(text, /n1 +active +0 +/);
  t.match(text, /127\.0\.0\.1:50051/);
  t.notMatch(text, /under-replicated/);
  const withLoad = formatShardMap(map, new Map([['n1', { atMs: 1, cpuCores: 0.5, rssBytes: 200 * 2 ** 20, items: 1000, recommends: 7 }]]));
  t.match(withLoad, /cpu +rss MiB/);
  t.match(withLoad, /0\.50 +200 +1000 +7/);
});

t.test('CLI flag parsing', async (t) => {
  const f = parseFlags(['--nats', 'nats://x:1', '--json', '--cluster', 'c']);
  t.equal(f.get('nats'), 'nats://x:1');
  t.equal(f.get('json'), 'true');
  t.equal(f.get('cluster'), 'c');
  t.throws(() => parseFlags(['oops']), /unexpected argument/);
});
