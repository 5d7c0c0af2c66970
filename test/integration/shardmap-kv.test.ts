import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { natsFixture } from '../fixtures/nats.js';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import { StatusCode } from '../../core/status.js';

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

t.test('watch delivers the current map, then every new version in order', async (t) => {
  const cluster = 'kv-watch';
  const store = await ShardMapStore.open(nc, cluster);
  const v1 = await store.put(createShardMap({ cluster, ...spec }));
  const seen: ShardMapSnapshot[] = [];
  const errors: unknown[] = [];
  let wake: (() => void) | undefined;
  const watch = await store.watch(
    (m) => {
      seen.push(m);
      wake?.();
    },
    (e) => errors.push(e),
  );
  const waitFor = async (n: number) => {
    while (seen.length < n) await new Promise<void>((r) => (wake = r));
  };
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
