/**
 * Per-role NATS credentials against a real nats-server started with the config that
 * cluster/nats/auth.ts writes: each role can do its job (node: request/reply, event publish and
 * ordered consume, feature-log publish, shard-map read/watch, its address record, load report;
 * admin: map and model writes, stream delete; reader: ordered consumers on both streams, map read),
 * each denial the design relies on is refused by the server (node writing the map key or the model
 * key, deleting a stream, sending item-admin requests, reaching another cluster; reader writing
 * anything), and
 * connections without credentials or with an unknown key are refused. The shardmap CLI exits
 * non-zero naming the missing permission.
 */
import t from 'tap';
import type { Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { nkeyAuthenticator, nkeys } from '@nats-io/nats-core';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { JsMsg } from '@nats-io/jetstream';
import { startNatsServer } from '../../cluster/nats/server.js';
import { describeNatsAccessError, isAuthorizationRefused, natsAuthOptions, permissionDenial, writeNatsCredentials } from '../../cluster/nats/auth.js';
import type { NatsRole } from '../../cluster/nats/auth.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import { createShardMap, withNodeInfo } from '../../shardmap/assign.js';
import { ensureEventStream } from '../../actors/event-stream/stream.js';
import { sequenceBeforeTime } from '../../actors/event-stream/feed.js';
import { ensureServedStream } from '../../actors/coordinator/feature-log.js';
import { readStreamSnapshot } from '../../offline/skew/reader.js';
import { Subjects, clusterKvBucket, eventStreamName, servedStreamName } from '../../core/subjects.js';

const CLI = fileURLToPath(new URL('../../shardmap/cli.js', import.meta.url));
const run = promisify(execFile);
const cluster = `auth-${process.pid}`;
const bucket = clusterKvBucket(cluster);

const root = await mkdtemp(path.join(tmpdir(), 'upnext-nats-auth-'));
const creds = await writeNatsCredentials(path.join(root, 'nats-auth'), cluster);
const serverLog: string[] = [];
const server = await startNatsServer({ dataDir: path.join(root, 'nats'), configFile: creds.serverConfig, onLog: (l) => serverLog.push(l) });
const open: NatsConnection[] = [];
t.teardown(async () => {
  for (const nc of open) await nc.close().catch(() => {});
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

async function as(role: NatsRole): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, name: `test-${role}`, reconnect: false, ...natsAuthOptions(creds.creds[role]) });
  open.push(nc);
  return nc;
}

/** The error `p` rejects with (fails the test when it resolves). */
async function rejection(t: Test, p: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  t.fail(`${what} should have been refused`);
  return undefined;
}

const map = createShardMap({ cluster, itemShards: 2, userPartitions: 4, replicas: 1, nodes: ['n1', 'n2'], rankers: ['n1', 'n2'], coordinators: ['n1'] });

t.test('credential files: seeds mode 0600 in a 0700 folder; the server config holds public keys only', async (t) => {
  t.equal((await stat(creds.dir)).mode & 0o777, 0o700);
  for (const role of ['node', 'admin', 'reader'] as const) {
    t.equal((await stat(creds.creds[role])).mode & 0o777, 0o600, `${role}.nk is 0600`);
  }
  const conf = await readFile(creds.serverConfig, 'utf8');
  for (const role of ['node', 'admin', 'reader'] as const) {
    t.ok(conf.includes(creds.publicKeys[role]), `${role}'s public key is in the server config`);
    const seed = (await readFile(creds.creds[role], 'utf8')).split('\n').find((l) => l.startsWith('SU'))!;
    t.notOk(conf.includes(seed), `${role}'s seed is not`);
  }
});

t.test('connections without credentials or with an unknown key are refused', async (t) => {
  const anon = await rejection(t, connect({ servers: server.url, reconnect: false, timeout: 5000 }), 'an unauthenticated connect');
  t.ok(isAuthorizationRefused(anon), `no credentials: authorization error (${String(anon)})`);
  const stranger = await rejection(
    t,
    connect({ servers: server.url, reconnect: false, timeout: 5000, authenticator: nkeyAuthenticator(nkeys.createUser().getSeed()) }),
    'a connect with an unknown key',
  );
  t.ok(isAuthorizationRefused(stranger), `unknown key: authorization error (${String(stranger)})`);
  t.match(describeNatsAccessError(stranger, '--creds x.nk'), /refused --creds x\.nk \(authorization violation/);
});

t.test('admin creates the bucket, writes the map and the model key, and owns the streams', async (t) => {
  const nc = await as('admin');
  const store = await ShardMapStore.open(nc, cluster);
  const stored = await store.put(map);
  t.ok(stored.version > 0, 'map written');
  const rev = await store.writeModelKey({ version: 'v1', requestedAt: new Date().toISOString(), by: 'test' }, null);
  t.ok(rev > 0, 'model key written');
  // the launcher's reset: delete the event stream
  const jsm = await jetstreamManager(nc);
  await ensureEventStream(jsm, cluster);
  t.ok(await jsm.streams.delete(eventStreamName(cluster)), 'admin deletes the event stream');
});

t.test('node: request/reply, events (publish + ordered consume), feature log, map read/watch, address record, load report', async (t) => {
  const a = await as('node');
  const b = await as('node');
  // an item shard answering on its queue group; a coordinator on another connection asking
  const sub = a.subscribe(Subjects.itemSearch(cluster, 0), { queue: Subjects.queueGroup(cluster, 'item', 0), callback: (_e, m) => void m.respond(new TextEncoder().encode('pong')) });
  await a.flush();
  const reply = await b.request(Subjects.itemSearch(cluster, 0), new Uint8Array(), { timeout: 5000 });
  t.equal(new TextDecoder().decode(reply.data), 'pong', 'request/reply between two node connections');
  sub.unsubscribe();

  // a coordinator creates the event stream and publishes; a user partition reads with an ordered consumer
  const jsm = await jetstreamManager(b);
  await ensureEventStream(jsm, cluster, { maxAgeMs: 3_600_000 });
  await ensureEventStream(jsm, cluster, { maxAgeMs: 7_200_000 }); // a retention update
  const t0 = Date.now();
  const ack = await jetstream(b).publish(Subjects.events(cluster, 1), new TextEncoder().encode('e1'), { msgID: 'e1' });
  t.ok(ack.seq > 0, 'event published with an ack');
  t.type(await sequenceBeforeTime(await jetstreamManager(a), eventStreamName(cluster), Subjects.events(cluster, 1), t0 - 60_000), 'number', 'start-time probe consumer');
  const read: string[] = [];
  const end = await readStreamSnapshot(
    { nc: a, stream: eventStreamName(cluster), subject: Subjects.events(cluster, 1), fetchWaitMs: 1000, notFound: (s) => new Error(`no ${s}`) },
    (m: JsMsg) => read.push(m.string()) > 0,
  );
  t.same(read, ['e1'], 'the node reads the event back through an ordered consumer');
  t.ok(end.caughtUp);

  // feature log: stream created/updated and a plain publish stored
  await ensureServedStream(jsm, cluster, { maxAgeMs: 3_600_000, maxBytes: 1 << 20 });
  b.publish(Subjects.served(cluster), new TextEncoder().encode('rows'));
  await b.flush();

  // the shard map: open the existing bucket, read, watch, register addresses (own key), report load
  const store = await ShardMapStore.open(a, cluster);
  const before = await store.read();
  t.equal(before?.cluster, cluster, 'map read');
  const seen: (string | undefined)[] = [];
  const watch = await store.watch((m) => seen.push(m.nodes.n1?.rankerAddress));
  await store.putAddresses('n1', { rankerAddress: '127.0.0.1:7001' });
  await store.putLoad('n1', { atMs: Date.now(), cpuCores: 0.1, rssBytes: 1, items: 0, recommends: 0 });
  const until = Date.now() + 5000;
  while (!seen.includes('127.0.0.1:7001') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  await watch.stop();
  t.ok(seen.includes('127.0.0.1:7001'), 'the watch saw the address registration');
  const after = await store.read();
  t.equal(after?.nodes.n1?.rankerAddress, '127.0.0.1:7001', 'readers see the address in the map');
  t.equal(after?.version, before?.version, 'without a map write');
  t.equal((await store.readModelKey())?.value.version, 'v1', 'the model key is readable');
  t.equal((await store.readLoads(['n1'])).size, 1, 'load report written');
});

t.test('node: the map key, the model key, stream deletion, item admin and other clusters are refused', async (t) => {
  const nc = await as('node');
  const store = await ShardMapStore.open(nc, cluster);
  const current = await store.readModelKey();
  const modelWrite = await rejection(t, store.writeModelKey({ version: 'evil', requestedAt: new Date().toISOString() }, current?.revision ?? null), 'a node writing the model key');
  t.same(permissionDenial(modelWrite), { operation: 'publish', subject: `$KV.${bucket}.model` }, 'model key: publish permission violation');
  t.match(describeNatsAccessError(modelWrite, 'the node credentials'), /permission denied: .*publish on "\$KV\.[^"]+\.model".*admin role/);
  t.equal((await store.readModelKey())?.value.version, 'v1', 'the model key is unchanged');

  // the map key (assignments) is admin-only: a node cannot reassign shards, nor plant an address there
  const mapBefore = await store.read();
  const mapWrite = await rejection(t, store.update((m) => ({ ...withNodeInfo(m, 'n1', { rankerAddress: '6.6.6.6:1' }), itemShardOwners: m.itemShardOwners.map(() => ['n1']) })), 'a node writing the map key');
  t.same(permissionDenial(mapWrite), { operation: 'publish', subject: `$KV.${bucket}.map` }, 'map key: publish permission violation');
  t.match(describeNatsAccessError(mapWrite, 'the node credentials'), /permission denied: .*publish on "\$KV\.[^"]+\.map".*admin role/);
  t.same(await store.read(), mapBefore, 'the map is unchanged');

  const jsm = await jetstreamManager(nc);
  const del = await rejection(t, jsm.streams.delete(eventStreamName(cluster)), 'a node deleting the event stream');
  t.same(permissionDenial(del), { operation: 'publish', subject: `$JS.API.STREAM.DELETE.${eventStreamName(cluster)}` });
  const purge = await rejection(t, jsm.streams.purge(`KV_${bucket}`), 'a node purging the shard-map bucket');
  t.equal(permissionDenial(purge)?.subject, `$JS.API.STREAM.PURGE.KV_${bucket}`);

  const admin = await rejection(t, nc.request(Subjects.itemAdmin(cluster, 0), new Uint8Array(), { timeout: 3000 }), 'a node sending an item-admin request');
  t.same(permissionDenial(admin), { operation: 'publish', subject: Subjects.itemAdmin(cluster, 0) });
  const other = await rejection(t, nc.request(Subjects.itemSearch('other', 0), new Uint8Array(), { timeout: 3000 }), 'a node calling another cluster');
  t.equal(permissionDenial(other)?.subject, Subjects.itemSearch('other', 0));
  t.ok(!nc.isClosed(), 'violations leave the connection open');
});

t.test('reader: ordered consumers on both streams and map reads; every write refused', async (t) => {
  const nc = await as('reader');
  const events: string[] = [];
  await readStreamSnapshot({ nc, stream: eventStreamName(cluster), subject: Subjects.allEvents(cluster), fetchWaitMs: 1000, notFound: (s) => new Error(`no ${s}`) }, (m) => events.push(m.string()) > 0);
  t.same(events, ['e1'], 'events read');
  const served: string[] = [];
  await readStreamSnapshot({ nc, stream: servedStreamName(cluster), subject: Subjects.served(cluster), fetchWaitMs: 1000, notFound: (s) => new Error(`no ${s}`) }, (m) => served.push(m.string()) > 0);
  t.same(served, ['rows'], 'feature log read');
  const store = await ShardMapStore.open(nc, cluster, { create: false });
  t.equal((await store.read())?.cluster, cluster, 'map read');

  const mapWrite = await rejection(t, store.put(map), 'a reader writing the map');
  t.equal(permissionDenial(mapWrite)?.subject, `$KV.${bucket}.map`);
  const pub = await rejection(t, jetstream(nc).publish(Subjects.events(cluster, 0), new Uint8Array(), { timeout: 3000 }), 'a reader publishing an event');
  t.equal(permissionDenial(pub)?.subject, Subjects.events(cluster, 0));
  const subErr = await new Promise<unknown>((resolve) => {
    nc.subscribe(Subjects.userGet(cluster, 0), { callback: (err) => resolve(err) });
  });
  t.same(permissionDenial(subErr), { operation: 'subscription', subject: Subjects.userGet(cluster, 0) }, 'a reader cannot subscribe to serving subjects');
});

t.test('shardmap CLI: reader may show, not write; the refusal names the permission; admin may write', async (t) => {
  const base = ['--nats', server.url, '--cluster', cluster];
  const shown = await run(process.execPath, [CLI, 'show', ...base, '--json', '--creds', creds.creds.reader]);
  t.equal((JSON.parse(shown.stdout) as { map: { cluster: string } }).map.cluster, cluster, 'show with the reader credentials');
  const init = ['init', ...base, '--nodes', 'n1,n2', '--item-shards', '2', '--partitions', '4', '--force'];
  const denied = await run(process.execPath, [CLI, ...init, '--creds', creds.creds.reader]).then(
    () => undefined,
    (e: { code?: number; stderr?: string }) => e,
  );
  t.equal(denied?.code, 1, 'exit 1');
  t.match(denied?.stderr ?? '', new RegExp(`permission denied: .*publish on "\\$KV\\.${bucket}\\.map" for --creds .*reader\\.nk.*admin role`), `stderr names the permission: ${denied?.stderr ?? ''}`);
  const anon = await run(process.execPath, [CLI, 'show', ...base]).then(
    () => undefined,
    (e: { code?: number; stderr?: string }) => e,
  );
  t.equal(anon?.code, 1);
  t.match(anon?.stderr ?? '', /refused no credentials .*authorization violation/, `no credentials: ${anon?.stderr ?? ''}`);
  const ok = await run(process.execPath, [CLI, ...init, '--creds', creds.creds.admin]);
  t.match(ok.stdout, /n1/, 'admin replaces the map');
});

t.test('the server logged exactly the refusals provoked above: no allowed step hit a silent denial', async (t) => {
  // Some allowed steps swallow errors (a consumer delete, a flow-control reply): the log shows them.
  const violated = serverLog.flatMap((l) => {
    const m = /(Publish|Subscription) Violation - .*Subject "([^"]+)"/.exec(l);
    return m ? [`${m[1]} ${m[2]}`] : [];
  });
  t.same(violated.sort(), [
    `Publish $JS.API.STREAM.DELETE.${eventStreamName(cluster)}`,
    `Publish $JS.API.STREAM.PURGE.KV_${bucket}`,
    `Publish $KV.${bucket}.map`,
    `Publish $KV.${bucket}.map`,
    `Publish $KV.${bucket}.map`,
    `Publish $KV.${bucket}.model`,
    `Publish ${Subjects.itemAdmin(cluster, 0)}`,
    `Publish ${Subjects.events(cluster, 0)}`,
    `Publish ${Subjects.itemSearch('other', 0)}`,
    `Subscription ${Subjects.userGet(cluster, 0)}`,
  ].sort());
  t.equal(serverLog.filter((l) => /authentication error/.test(l)).length, 3, 'the three refused connects are logged');
});
