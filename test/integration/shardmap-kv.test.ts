import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { natsFixture } from '../fixtures/nats.js';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import { Kvm } from '@nats-io/kv';
import { ShardMapStore, nodeAddressKey } from '../../shardmap/kv-store.js';
import { addressesOf } from '../../shardmap/snapshot.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import { StatusCode } from '../../core/status.js';
import { clusterKvBucket } from '../../core/subjects.js';

const { nc, url } = await natsFixture(t, 'upnext-shardmap');

const spec = { itemShards: 2, userPartitions: 8, replicas: 1, nodes: ['n1', 'n2'] };

t.test('read is null before a map exists; createIfAbsent stores once', async (t) => {
  const store = await ShardMapStore.open(nc, 'kv-create');
  t.equal(await store.read(), null);
  await t.rejects(store.update((m) => m), { code: StatusCode.FAILED_PRECONDITION });
  const first = await store.createIfAbsent(createShardMap({ cluster: 'kv-create', ...spec }));
  t.equal(first.created, true);
  t.ok(first.snapshot.version > 0, 'version is the KV revision');
  const second = await store.createIfAbsent(createShardMap({ cluster: 'kv-create', ...spec, userPartitions: 4 }));
  t.equal(second.created, false);
  t.equal(second.snapshot.userPartitions, 8, 'the stored map was not replaced');
  const read = await store.read();
  t.same(read, first.snapshot);
});

t.test('concurrent CAS updates from two connections never lose a write', async (t) => {
  const cluster = 'kv-cas';
  const store = await ShardMapStore.open(nc, cluster);
  await store.put(createShardMap({ cluster, ...spec, nodes: ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'] }));
  const nc2 = await connect({ servers: url });
  t.teardown(() => nc2.close());
  const store2 = await ShardMapStore.open(nc2, cluster);
  // Six registrations racing through two stores: each must survive in the final map.
  const names = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
  await Promise.all(
    names.map((n, i) => (i % 2 ? store : store2).update((m) => withNodeInfo(m, n, { rankerAddress: `127.0.0.1:${7000 + i}` }))),
  );
  const final = await store.read();
  t.same(
    names.map((n) => final?.nodes[n]?.rankerAddress),
    names.map((_, i) => `127.0.0.1:${7000 + i}`),
  );
  // a no-op change writes nothing
  const before = final!.version;
  const same = await store.update(() => null);
  t.equal(same.version, before);
});

t.test('a conflicting writer is detected; update gives up after maxAttempts with ABORTED', async (t) => {
  const cluster = 'kv-abort';
  const store = await ShardMapStore.open(nc, cluster);
  await store.put(createShardMap({ cluster, ...spec }));
  let calls = 0;
  // Every attempt, someone else writes between our read and our write.
  await t.rejects(
    store.update(
      (m) => {
        calls++;
        void store.put({ ...m });
        return withNodeInfo(m, 'n1', { state: 'draining' });
      },
      { maxAttempts: 3 },
    ),
    { code: StatusCode.ABORTED },
  );
  t.equal(calls, 3);
});

/**
 * Watches `store`, recording every snapshot and every error; `waitFor(n, list)` resolves once
 * `list` (default the snapshots) holds n entries.
 */
async function recordWatch(store: ShardMapStore) {
  const seen: ShardMapSnapshot[] = [];
  const errors: unknown[] = [];
  let wake: (() => void) | undefined;
  const watch = await store.watch(
    (m) => {
      seen.push(m);
      wake?.();
    },
    (e) => {
      errors.push(e);
      wake?.();
    },
  );
  const waitFor = async (n: number, list: readonly unknown[] = seen) => {
    while (list.length < n) await new Promise<void>((r) => (wake = r));
  };
  return { seen, errors, watch, waitFor };
}

t.test('watch delivers the current map, then every new version in order', async (t) => {
  const cluster = 'kv-watch';
  const store = await ShardMapStore.open(nc, cluster);
  const v1 = await store.put(createShardMap({ cluster, ...spec }));
  const { seen, errors, watch, waitFor } = await recordWatch(store);
  await waitFor(1);
  t.equal(seen[0]?.version, v1.version);
  const v2 = await store.update((m) => withNodeInfo(m, 'n2', { recommendAddress: '127.0.0.1:1' }));
  await waitFor(2);
  t.equal(seen[1]?.version, v2.version);
  t.equal(seen[1]?.nodes.n2?.recommendAddress, '127.0.0.1:1');
  t.ok(v2.version > v1.version);
  await watch.stop();
  await watch.stop(); // idempotent
  await store.update((m) => withNodeInfo(m, 'n1', { state: 'draining' }));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(seen.length, 2, 'nothing delivered after stop');
  t.same(errors, []);
});

/** The bucket itself, for what an older build wrote and for checking what the map key holds. */
async function rawBucket(cluster: string) {
  return new Kvm(nc).open(clusterKvBucket(cluster));
}

/** The map key's stored JSON (no merge). */
async function storedMapKey(cluster: string): Promise<ShardMapSnapshot> {
  const entry = await (await rawBucket(cluster)).get('map');
  return entry!.json<ShardMapSnapshot>();
}

t.test('address records: read merges them; the map key never holds a recorded node\'s addresses', async (t) => {
  const cluster = 'kv-addr';
  const store = await ShardMapStore.open(nc, cluster);
  const v1 = await store.put(createShardMap({ cluster, ...spec }));
  t.equal(await store.readAddresses('n1'), null, 'no record before the node registers');
  await store.putAddresses('n1', { rankerAddress: '127.0.0.1:7001', recommendAddress: '127.0.0.1:50051' });
  await store.putAddresses('n9', { rankerAddress: '127.0.0.1:7009' }); // not in the map
  const read = (await store.read())!;
  t.equal(read.version, v1.version, 'an address record is not a new map version');
  t.same(addressesOf(read.nodes.n1), { rankerAddress: '127.0.0.1:7001', recommendAddress: '127.0.0.1:50051' });
  t.equal(read.nodes.n9, undefined, 'a record of a node outside the map is ignored');
  t.same(await store.readAddresses('n1'), { rankerAddress: '127.0.0.1:7001', recommendAddress: '127.0.0.1:50051' });

  // an admin update sees the merged map and writes the assignments only
  const v2 = await store.update((m) => withNodeInfo(m, 'n2', { state: 'draining' }));
  t.ok(v2.version > v1.version);
  t.same(addressesOf(v2.nodes.n1), { rankerAddress: '127.0.0.1:7001', recommendAddress: '127.0.0.1:50051' }, 'the returned snapshot is merged');
  const stored = await storedMapKey(cluster);
  t.same(stored.nodes.n1, { name: 'n1', state: 'active' }, 'the map key holds no copy of n1\'s addresses');
  t.equal(stored.nodes.n2?.state, 'draining');
  await store.put({ ...v2 });
  t.same((await storedMapKey(cluster)).nodes.n1, { name: 'n1', state: 'active' }, 'nor after a put of a merged snapshot');

  // withdraw: an empty record, written to n1's own key (the map key's revision does not move)
  const before = (await store.read())!.version;
  await store.putAddresses('n1', {});
  const after = (await store.read())!;
  t.same(addressesOf(after.nodes.n1), {}, 'withdrawn');
  t.equal(after.version, before, 'the map key was not written');
  await t.rejects(store.putAddresses('n1', { rankerAddress: 'has space:1' }), TypeError, 'an invalid record is refused before the write');
  await t.rejects(store.putAddresses('a.b', {}), TypeError, 'a node name that is not one key token');
});

t.test('old-format maps (addresses in the map key) keep working; a record wins when both exist', async (t) => {
  const cluster = 'kv-addr-old';
  const store = await ShardMapStore.open(nc, cluster);
  // what a build before the per-node keys stored: addresses inside the map key
  const legacy = withNodeInfo(withNodeInfo(createShardMap({ cluster, ...spec }), 'n1', { rankerAddress: 'old:1', recommendAddress: 'old:2' }), 'n2', { rankerAddress: 'old:3' });
  const { version: _v, ...value } = legacy;
  await (await rawBucket(cluster)).put('map', JSON.stringify(value));
  const read = (await store.read())!;
  t.same(addressesOf(read.nodes.n1), { rankerAddress: 'old:1', recommendAddress: 'old:2' }, 'read as before');
  t.same(addressesOf(read.nodes.n2), { rankerAddress: 'old:3' });

  await store.putAddresses('n1', { rankerAddress: 'new:1' });
  const merged = (await store.read())!;
  t.same(addressesOf(merged.nodes.n1), { rankerAddress: 'new:1' }, 'the record wins, both fields (the old Recommend address is gone)');
  t.same(addressesOf(merged.nodes.n2), { rankerAddress: 'old:3' }, 'a node without a record keeps the map\'s');

  await store.update((m) => ({ ...m, coordinators: ['n2'] }));
  const stored = await storedMapKey(cluster);
  t.same(stored.nodes.n1, { name: 'n1', state: 'active' }, 'an admin update drops the copy a record overrides');
  t.equal(stored.nodes.n2?.rankerAddress, 'old:3', 'and keeps the address of a node without a record');

  // a deleted record (not a withdrawal) falls back to the map key
  await (await rawBucket(cluster)).delete(nodeAddressKey('n2'));
  await store.putAddresses('n2', { rankerAddress: 'new:3' });
  t.equal((await store.read())!.nodes.n2?.rankerAddress, 'new:3');
  await (await rawBucket(cluster)).delete(nodeAddressKey('n2'));
  t.equal(await store.readAddresses('n2'), null);
  t.equal((await store.read())!.nodes.n2?.rankerAddress, 'old:3', 'deleted record: the map key\'s address again');
});

t.test('watch: merged snapshots; an address change is a new snapshot of the same version', async (t) => {
  const cluster = 'kv-addr-watch';
  const store = await ShardMapStore.open(nc, cluster);
  const v1 = await store.put(createShardMap({ cluster, ...spec }));
  await store.putAddresses('n1', { rankerAddress: '127.0.0.1:7001' });
  const { seen, errors, watch, waitFor } = await recordWatch(store);
  t.teardown(() => watch.stop());
  await waitFor(1);
  t.equal(seen[0]?.version, v1.version);
  t.equal(seen[0]?.nodes.n1?.rankerAddress, '127.0.0.1:7001', 'the first snapshot already carries the stored records');

  await store.putAddresses('n2', { recommendAddress: '127.0.0.1:50052' });
  await waitFor(2);
  t.equal(seen[1]?.version, v1.version, 'same version: no assignment changed');
  t.equal(seen[1]?.nodes.n2?.recommendAddress, '127.0.0.1:50052');
  t.equal(seen[1]?.nodes.n1?.rankerAddress, '127.0.0.1:7001');

  // a record of a node outside the map, and a rewrite of an unchanged record: no snapshot; the
  // map update after them is the next one delivered
  await store.putAddresses('n9', { rankerAddress: '127.0.0.1:7009' });
  await store.putAddresses('n1', { rankerAddress: '127.0.0.1:7001' });
  const v2 = await store.update((m) => withNodeInfo(m, 'n2', { state: 'draining' }));
  await waitFor(3);
  t.equal(seen[2]?.version, v2.version, 'the map update is the next snapshot');
  t.equal(seen[2]?.nodes.n2?.state, 'draining');
  t.equal(seen[2]?.nodes.n1?.rankerAddress, '127.0.0.1:7001', 'addresses survive a map update');
  t.equal(seen[2]?.nodes.n9, undefined);

  // withdraw
  await store.putAddresses('n1', {});
  await waitFor(4);
  t.equal(seen[3]?.version, v2.version);
  t.same(addressesOf(seen[3]?.nodes.n1), {}, 'withdrawn');

  // a bad record is reported and reads as absent (the map has no address for n2: none)
  await (await rawBucket(cluster)).put(nodeAddressKey('n2'), '{"recommendAddress": 5}');
  await waitFor(1, errors);
  await waitFor(5);
  t.match(String(errors[0]), /address record of node n2.*recommendAddress/);
  t.same(addressesOf(seen[4]?.nodes.n2), {}, 'an invalid record is not served');
  t.ok(seen.every((m, i) => i === 0 || m.version >= seen[i - 1]!.version), 'versions never go backwards');
});

t.test('a map for another cluster is refused', async (t) => {
  const store = await ShardMapStore.open(nc, 'kv-other');
  await t.rejects(store.put(createShardMap({ cluster: 'elsewhere', ...spec })), TypeError);
});

t.test('CLI: init then show prints the map and node assignment', async (t) => {
  const cli = fileURLToPath(new URL('../../shardmap/cli.js', import.meta.url));
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      child.on('exit', (code) => resolve({ code, out, err }));
    });
  const common = ['--nats', url, '--cluster', 'kv-cli'];
  const empty = await run(['show', ...common]);
  t.equal(empty.code, 1);
  t.match(empty.err, /no shard map/);
  const init = await run(['init', ...common, '--nodes', 'n1,n2,n3', '--item-shards', '2', '--partitions', '16', '--replicas', '1']);
  t.equal(init.code, 0, init.err);
  const again = await run(['init', ...common, '--nodes', 'n1', '--item-shards', '1', '--partitions', '1']);
  t.equal(again.code, 1);
  t.match(again.err, /already has a map/);
  const store = await ShardMapStore.open(nc, 'kv-cli');
  await store.putLoad('n1', { atMs: Date.now(), cpuCores: 0.25, rssBytes: 100 * 2 ** 20, items: 42, recommends: 3 });
  const show = await run(['show', ...common]);
  t.equal(show.code, 0, show.err);
  t.match(show.out, /cluster kv-cli +version \d+ +item shards S=2 +user partitions P=16/);
  t.match(show.out, /n1 +active +0 +/);
  t.match(show.out, /n3 +active +- +/);
  t.match(show.out, /0\.25 +100 +42 +3/);
  const json = await run(['show', ...common, '--json']);
  const parsed = JSON.parse(json.out) as { map: ShardMapSnapshot; loads: Record<string, unknown> };
  t.equal(parsed.map.itemShards, 2);
  t.ok(parsed.loads.n1);
});
