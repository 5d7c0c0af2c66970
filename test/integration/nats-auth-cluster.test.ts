/**
 * The tiny local cluster with `nats.auth` on: the launcher generates per-role NKeys, nats-server
 * refuses unauthenticated clients, the node processes sign in as `node` (seed file path on their
 * command line, never the seed) and serve Recommend and LogEvents with the feature log on, and
 * nats-server logs no permission violation while they do: the node role's grants cover everything
 * real nodes do (request/reply, queue groups, event and feature-log streams, ordered consumers,
 * KV reads, watches, address registration in their own `addr.<node>` keys, load reports) while the
 * map key stays admin-only.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { startTinyCluster } from '../fixtures/tiny-cluster.js';
import { isAuthorizationRefused, natsAuthOptions, permissionDenial } from '../../cluster/nats/auth.js';
import { Kvm } from '@nats-io/kv';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import { addressesOf } from '../../shardmap/snapshot.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import { readStreamSnapshot } from '../../offline/skew/reader.js';
import { Subjects, clusterKvBucket, eventStreamName, servedStreamName } from '../../core/subjects.js';

const OFFLINE_CLI = fileURLToPath(new URL('../../offline/cli.js', import.meta.url));
const SHARDMAP_CLI = fileURLToPath(new URL('../../shardmap/cli.js', import.meta.url));
const run = promisify(execFile);
const { assets, cluster, client, runDir } = await startTinyCluster(t, 'nauth', {
  coordinator: { featureLog: { sampleRate: 1 } },
  node: { loadReportIntervalMs: 200 },
  nats: { auth: true },
});
const ctx = { device: 'ios', country: 'US', localHour: 20 };

t.test('Recommend and LogEvents are served with every process signed in by role', async (t) => {
  const creds = cluster.natsCredentials;
  if (creds === undefined) throw new Error('nats.auth is on: the handle must carry the credential files');
  t.equal(path.dirname(creds.creds.node), path.join(runDir, 'nats-auth'));
  const reply = await client.recommend({ userId: 7, k: 10, context: ctx }, { deadlineMs: 20_000 });
  t.equal(reply.items.length, 10);
  t.same(reply.degraded, [], 'nothing degraded: item shards and user partitions answered over NATS');
  t.equal(reply.coverage, 1);
  const logged = await client.logEvents([{ eventId: `auth-${process.pid}-1`, userId: 7, videoId: reply.items[0]!.videoId, type: 'CLICK', position: 0, context: ctx, requestId: reply.requestId }]);
  t.equal(logged.accepted, 1, 'the event stream took the event');
  const again = await client.recommend({ userId: 7, k: 10, context: ctx }, { deadlineMs: 20_000 });
  t.equal(again.items.length, 10);

  // nodes wrote their load reports (KV put as node) and the admin/reader can read the map
  const reader = await connect({ servers: cluster.natsUrl, reconnect: false, ...natsAuthOptions(creds.creds.reader) });
  t.teardown(() => reader.close());
  const store = await ShardMapStore.open(reader, cluster.cluster, { create: false });
  const map = await store.read();
  t.ok(map?.nodes.n1?.recommendAddress, 'n1 registered its Recommend address as node');
  t.same(cluster.grpcAddresses, map!.coordinators.map((n) => map!.nodes[n]?.recommendAddress), 'the launcher found every coordinator\'s address');
  t.ok(cluster.grpcAddresses.includes(cluster.grpcAddress));
  for (const n of ['n1', 'n2']) {
    t.same(await store.readAddresses(n), addressesOf(map!.nodes[n]), `${n}'s addresses come from its own record`);
  }
  t.ok(Object.values(map!.nodes).some((n) => n.rankerAddress), 'ranker addresses registered too');
  const rawMap = (await (await new Kvm(reader).open(clusterKvBucket(cluster.cluster))).get('map'))!.json<ShardMapSnapshot>();
  t.same(Object.values(rawMap.nodes).map((n) => addressesOf(n)), [{}, {}], 'the map key itself holds no address');
  const shown = await run(process.execPath, [SHARDMAP_CLI, 'show', '--nats', cluster.natsUrl, '--cluster', cluster.cluster, '--creds', creds.creds.reader]);
  t.ok(shown.stdout.includes(map!.nodes.n1!.recommendAddress!), `shardmap show prints n1's Recommend address:\n${shown.stdout}`);
  const until = Date.now() + 10_000;
  let loads = await store.readLoads(['n1', 'n2']);
  while (loads.size < 2 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    loads = await store.readLoads(['n1', 'n2']);
  }
  t.equal(loads.size, 2, 'both nodes wrote their load report');

  // the reader role reads what the nodes published: the event and the feature log
  const read = async (stream: string, subject: string) => {
    let n = 0;
    await readStreamSnapshot({ nc: reader, stream, subject, fetchWaitMs: 1000, notFound: (s) => new Error(`no stream ${s}`) }, () => ++n > 0);
    return n;
  };
  t.equal(await read(eventStreamName(cluster.cluster), Subjects.allEvents(cluster.cluster)), 1, 'the reader reads the logged event');
  t.ok((await read(servedStreamName(cluster.cluster), Subjects.served(cluster.cluster))) >= 1, 'the reader reads the feature log the coordinator wrote (sampleRate 1)');
});

t.test('skew reads the feature log with the reader role (--creds); without credentials it is refused', async (t) => {
  const out = path.join(runDir, 'skew.json');
  const args = [OFFLINE_CLI, 'skew', '--nats', cluster.natsUrl, '--cluster', cluster.cluster, '--world', assets.worldDir, '--out', out];
  const ok = await run(process.execPath, [...args, '--creds', cluster.natsCredentials!.creds.reader]);
  t.match(ok.stdout, /wrote /);
  const report = JSON.parse(await readFile(out, 'utf8')) as { conditions: { serving_messages: number } };
  t.ok(report.conditions.serving_messages >= 1, `the feature log was read (${report.conditions.serving_messages} messages)`);
  const refused = await run(process.execPath, args).then(
    () => undefined,
    (e: { code?: number; stderr?: string }) => e,
  );
  t.not(refused?.code ?? 0, 0, 'no credentials: non-zero exit');
  t.match(refused?.stderr ?? '', /Authorization Violation/i);
});

t.test('train-logged reads the feature log and the events with the reader role (--creds)', async (t) => {
  // No --from-model: the command asks the cluster which version it serves (node status; no switch
  // has written the model key) and finds it under --models.
  const args = [OFFLINE_CLI, 'train-logged', '--nats', cluster.natsUrl, '--cluster', cluster.cluster, '--models', path.dirname(assets.modelDir), '--wait-ms', '0', '--out', path.join(runDir, 'logged-models'), '--quiet'];
  const failure = (e: { code?: number; stderr?: string }) => e;
  // A handful of logged rows is below the split minimum: the command gets as far as the join (both
  // streams read under the reader role) and refuses to train, naming the minimum.
  const withCreds = await run(process.execPath, [...args, '--creds', cluster.natsCredentials!.creds.reader]).then(() => undefined, failure);
  t.not(withCreds?.code ?? 0, 0);
  t.match(withCreds?.stderr ?? '', new RegExp(`retraining ${assets.manifest.version}, the version the cluster serves \\(from its node status\\)`), 'the serving version found');
  t.match(withCreds?.stderr ?? '', /too few joined rows to split/, 'refused for too few rows, not for access');
  t.notMatch(withCreds?.stderr ?? '', /Permissions Violation|Authorization Violation|permission denied/i);
  const without = await run(process.execPath, args).then(() => undefined, failure);
  t.match(without?.stderr ?? '', /Authorization Violation/i, 'no credentials: refused');
});

t.test('shardmap model (show) with the reader role: the key and what each node serves', async (t) => {
  const shown = await run(process.execPath, [SHARDMAP_CLI, 'model', '--nats', cluster.natsUrl, '--cluster', cluster.cluster, '--creds', cluster.natsCredentials!.creds.reader]);
  t.match(shown.stdout, new RegExp(`n1: serving ${assets.manifest.version}`), 'n1 answered the reader\'s status query');
  t.match(shown.stdout, new RegExp(`n2: serving ${assets.manifest.version}`), 'n2 too');
});

t.test('the cluster refuses unauthenticated NATS clients', async (t) => {
  const err = await connect({ servers: cluster.natsUrl, reconnect: false, timeout: 5000 }).then(
    async (nc) => {
      await nc.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  t.ok(isAuthorizationRefused(err), `refused: ${String(err)}`);
});

t.test('each node signs in with its own identity: the seed file path on its command line, never the seed', async (t) => {
  for (const n of cluster.nodes) {
    const file = cluster.natsCredentials!.nodes[n.name];
    if (file === undefined) throw new Error(`no identity written for ${n.name}`);
    const seed = (await readFile(file, 'utf8')).split('\n').find((l) => l.startsWith('SU'))!;
    const cmdline = (await readFile(`/proc/${n.pid}/cmdline`, 'utf8')).split('\0').join(' ');
    t.ok(cmdline.includes(`nats.credsFile=${file}`), `${n.name} gets its own file`);
    t.notOk(cmdline.includes(seed), `${n.name}'s command line holds no seed`);
  }
});

t.test("a node's own identity writes its address record, not another node's (refused by the server)", async (t) => {
  const nc = await connect({ servers: cluster.natsUrl, reconnect: false, ...natsAuthOptions(cluster.natsCredentials!.nodes['n1']) });
  t.teardown(() => nc.close());
  const store = await ShardMapStore.open(nc, cluster.cluster, { create: false });
  const mine = await store.readAddresses('n1');
  await store.putAddresses('n1', mine ?? {});
  t.pass('n1 rewrote its own record');
  const err = await store.putAddresses('n2', { recommendAddress: '127.0.0.1:1' }).then(() => undefined, (e: unknown) => e);
  t.ok(permissionDenial(err) !== undefined, `n1 writing n2's record is denied: ${String(err)}`);
  t.notSame(await store.readAddresses('n2'), { recommendAddress: '127.0.0.1:1' }, "n2's record is unchanged");
  // Nor can it answer n2's status queries (what `shardmap model` and train-logged trust).
  const subErr = await new Promise<unknown>((resolve) => {
    nc.subscribe(Subjects.nodeStatus(cluster.cluster, 'n2'), { callback: (e) => resolve(e) });
  });
  t.same(permissionDenial(subErr), { operation: 'subscription', subject: Subjects.nodeStatus(cluster.cluster, 'n2') }, "n1's key cannot subscribe to n2's status");
});

t.test('nats-server logged no permission violation while the cluster worked and stopped', async (t) => {
  await cluster.stop(); // idempotent; the drain (consumer deletes, last load reports) is checked too
  const log = await readFile(path.join(runDir, 'logs', 'nats-server.log'), 'utf8');
  t.ok(log.includes('Server is ready'), 'the server log is kept in <runDir>/logs/nats-server.log');
  const violations = log.split('\n').filter((l) => /Permissions? Violation|Publish Violation|Subscription Violation/i.test(l));
  // The two the test above provoked (n1 writing n2's address record, subscribing to n2's status);
  // nothing the cluster did itself.
  t.equal(violations.length, 2, violations.join('\n'));
  t.match(violations.join('\n'), /addr\.n2/);
  t.match(violations.join('\n'), /node\.n2\.status/);
});
