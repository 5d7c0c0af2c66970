/**
 * The user-routing table (shardmap/routing-table.ts) as a coordinator builds it from the shard map
 * and a client reads it back: partition → Recommend addresses of the coordinators on its owners
 * (nodes without a coordinator or without an address yet are left out), and the client's check of
 * a reply names the field it refuses.
 */
import t from 'tap';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import { routingTableFromWire, routingTableOf, routingTableToWire } from '../../shardmap/routing-table.js';

const base = {
  ...createShardMap({ cluster: 'unit', itemShards: 2, userPartitions: 6, replicas: 2, nodes: ['n1', 'n2', 'n3'], coordinators: ['n1', 'n2'] }),
  version: 11,
};
const map = withNodeInfo(withNodeInfo(withNodeInfo(base, 'n1', { recommendAddress: 'h1:50051' }), 'n2', { recommendAddress: 'h2:50051' }), 'n3', { recommendAddress: 'h3:50051' });

t.test('each partition lists the coordinators hosted by its owners, nothing else', async (t) => {
  const table = routingTableOf(map);
  t.equal(table.cluster, 'unit');
  t.equal(table.mapVersion, 11);
  t.equal(table.userPartitions, 6);
  t.equal(table.partitions.length, 6);
  const addressOf: Record<string, string> = { n1: 'h1:50051', n2: 'h2:50051' };
  for (let p = 0; p < 6; p++) {
    // n3 owns partitions but runs no coordinator: its (advertised) address must not appear.
    const want = map.partitionOwners[p]!.filter((n) => n !== 'n3').map((n) => addressOf[n]!);
    t.same(table.partitions[p], want, `partition ${p} (owners ${map.partitionOwners[p]!.join(',')})`);
  }
  t.same(table.coordinators, ['h1:50051', 'h2:50051']);
});

t.test('a coordinator without an address yet is left out', async (t) => {
  const table = routingTableOf(withNodeInfo(base, 'n1', { recommendAddress: 'h1:50051' }));
  t.same(table.coordinators, ['h1:50051']);
  for (let p = 0; p < 6; p++) {
    t.same(table.partitions[p], base.partitionOwners[p]!.includes('n1') ? ['h1:50051'] : [], `partition ${p}`);
  }
});

t.test('the wire form reads back to the same table (numbers or decimal strings for the version)', async (t) => {
  const table = routingTableOf(map);
  const wire = routingTableToWire(table);
  t.same(routingTableFromWire(wire), table);
  t.equal(routingTableFromWire({ ...wire, mapVersion: '11' }).mapVersion, 11);
  const partitionZero = { ...wire, partitions: wire.partitions.map((e) => (e.partition === 0 ? { recommendAddresses: e.recommendAddresses } : e)) };
  t.same(routingTableFromWire(partitionZero), table, 'proto3 leaves partition 0 out of the wire: it reads as 0');
});

t.test('a malformed reply is refused with the field named', async (t) => {
  const wire = routingTableToWire(routingTableOf(map));
  t.throws(() => routingTableFromWire({ ...wire, userPartitions: 0 }), /^user_partitions must be an integer in 1\.\.65536, got 0/);
  t.throws(() => routingTableFromWire({ ...wire, partitions: wire.partitions.slice(1) }), /partitions must hold one entry per partition \(6\), got 5/);
  const swapped = [wire.partitions[1]!, wire.partitions[0]!, ...wire.partitions.slice(2)];
  t.throws(() => routingTableFromWire({ ...wire, partitions: swapped }), /partitions\[0\]\.partition must be 0, got 1/);
  const badAddr = wire.partitions.map((e, i) => (i === 2 ? { ...e, recommendAddresses: ['a b'] } : e));
  t.throws(() => routingTableFromWire({ ...wire, partitions: badAddr }), /partitions\[2\]\.recommend_addresses\[0\] must be a host:port string/);
  t.throws(() => routingTableFromWire({ ...wire, coordinators: 'h1:1' }), /coordinators must be a list/);
});
