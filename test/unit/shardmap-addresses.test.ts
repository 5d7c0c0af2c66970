/**
 * The pure merge of per-node address records into the shard map (shardmap/snapshot.ts): a record
 * decides its node's addresses (over an older build's copy in the map), nodes without one keep the
 * map's, records of nodes outside the map are ignored, the version is the map's; the write path's
 * stripping; and the record's validation. The KV adapter's use of them is in
 * test/integration/shardmap-kv.test.ts.
 */
import t from 'tap';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import {
  addressesOf,
  rankerAddresses,
  sameAddresses,
  validateNodeAddresses,
  withAdvertisedAddresses,
  withoutAddresses,
} from '../../shardmap/snapshot.js';
import type { NodeAddresses } from '../../shardmap/snapshot.js';
import { nodeAddressKey } from '../../shardmap/kv-store.js';

const base = { ...createShardMap({ cluster: 'unit', itemShards: 2, userPartitions: 4, replicas: 1, nodes: ['n1', 'n2', 'n3'], rankers: ['n1', 'n2', 'n3'] }), version: 7 };

t.test('a record gives its node its addresses; the version and the assignments stay the map\'s', async (t) => {
  const merged = withAdvertisedAddresses(base, new Map<string, NodeAddresses>([['n1', { rankerAddress: '10.0.0.1:7000', recommendAddress: '10.0.0.1:50051' }]]));
  t.equal(merged.version, 7);
  t.same(merged.nodes.n1, { name: 'n1', state: 'active', rankerAddress: '10.0.0.1:7000', recommendAddress: '10.0.0.1:50051' });
  t.same(merged.itemShardOwners, base.itemShardOwners);
  t.same(rankerAddresses(merged), ['10.0.0.1:7000'], 'the read API sees it');
  t.same(base.nodes.n1, { name: 'n1', state: 'active' }, 'the input is not mutated');
});

t.test('old-format maps: addresses in the map key stay unless the node has a record, which wins', async (t) => {
  const legacy = withNodeInfo(withNodeInfo(base, 'n1', { rankerAddress: 'old:1', recommendAddress: 'old:2' }), 'n2', { rankerAddress: 'old:3' });
  const merged = withAdvertisedAddresses(legacy, new Map<string, NodeAddresses>([['n1', { rankerAddress: 'new:1' }]]));
  t.same(addressesOf(merged.nodes.n1), { rankerAddress: 'new:1' }, 'the record decides both fields: the stale Recommend address is gone');
  t.same(addressesOf(merged.nodes.n2), { rankerAddress: 'old:3' }, 'no record: the map\'s address');
  const withdrawn = withAdvertisedAddresses(legacy, new Map<string, NodeAddresses>([['n2', {}]]));
  t.same(addressesOf(withdrawn.nodes.n2), {}, 'an empty record withdraws even an old-format address');
  t.equal(withAdvertisedAddresses(legacy, new Map()), legacy, 'no records: the same snapshot');
});

t.test('records of nodes outside the map are ignored', async (t) => {
  const merged = withAdvertisedAddresses(base, new Map<string, NodeAddresses>([['n9', { rankerAddress: 'x:1' }]]));
  t.equal(merged, base);
  t.equal(merged.nodes.n9, undefined);
});

t.test('withoutAddresses strips exactly the named nodes (what the map key stores for them)', async (t) => {
  const full = withNodeInfo(withNodeInfo(base, 'n1', { rankerAddress: 'a:1', recommendAddress: 'a:2' }), 'n2', { rankerAddress: 'b:1' });
  const stored = withoutAddresses(full, new Set(['n1']));
  t.same(stored.nodes.n1, { name: 'n1', state: 'active' });
  t.same(addressesOf(stored.nodes.n2), { rankerAddress: 'b:1' });
  t.equal(stored.nodes.n1?.state, 'active');
});

t.test('sameAddresses and addressesOf', async (t) => {
  t.ok(sameAddresses({}, { rankerAddress: undefined }));
  t.ok(sameAddresses({ rankerAddress: 'a:1' }, { rankerAddress: 'a:1' }));
  t.notOk(sameAddresses({ rankerAddress: 'a:1' }, { rankerAddress: 'a:1', recommendAddress: 'a:2' }));
  t.same(addressesOf(undefined), {});
});

t.test('record validation names the bad field; unknown fields are dropped', async (t) => {
  t.same(validateNodeAddresses({ rankerAddress: 'h:1', extra: 1 }), { rankerAddress: 'h:1' });
  t.same(validateNodeAddresses({}), {});
  for (const bad of [null, [], 'h:1', 3]) t.throws(() => validateNodeAddresses(bad), { name: 'TypeError', message: /must be an object/ });
  for (const v of ['', 'a b:1', 7, 'x'.repeat(257)]) {
    t.throws(() => validateNodeAddresses({ recommendAddress: v }), { name: 'TypeError', message: /recommendAddress/ }, JSON.stringify(v).slice(0, 20));
  }
});

t.test('address keys: one KV token per node', async (t) => {
  t.equal(nodeAddressKey('n1'), 'addr.n1');
  t.equal(nodeAddressKey('node_7-b'), 'addr.node_7-b');
  for (const bad of ['', 'a.b', 'a*', 'a>', 'x'.repeat(65)]) t.throws(() => nodeAddressKey(bad), TypeError, bad);
});
