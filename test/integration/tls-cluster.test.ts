/**
 * End to end over TLS: the tiny local cluster with the config's `tls` set. The local nats-server
 * serves TLS only and verifies client certificates, so the launcher and both node processes must
 * connect with the TLS files; the coordinator ranks over gRPC only (localRanker "off"), so its
 * ranker client dials both replicas' KServe ports with mutual TLS; the public Recommend port
 * answers the fixture's mTLS client and refuses a plaintext one.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { reloadBySignal } from '../../cluster/nats/rotate.js';
import https from 'node:https';
import { connect } from '@nats-io/transport-node';
import { StatusCode } from '../../core/status.js';
import { connectRecommender } from '../../cluster/local/client.js';
import { natsTlsOptions } from '../../cluster/tls.js';
import { startTinyCluster } from '../fixtures/tiny-cluster.js';
import { makeTestCerts } from '../fixtures/tls-certs.js';

const certs = await makeTestCerts();
t.teardown(() => certs.remove());
const { cluster, client, assets, runDir } = await startTinyCluster(t, 'tls', { tls: certs.node, localRanker: 'off', itemReplicas: 'all' });

t.test('Recommend over mTLS, ranked over mTLS gRPC, with NATS over TLS', async (t) => {
  const reply = await client.recommend({ userId: 1, k: 10, context: { device: 'ios', country: 'US', localHour: 20 } }, { deadlineMs: 20_000 });
  t.equal(reply.items.length, 10, 'k items');
  t.same(reply.degraded, [], 'nothing degraded: retrieval over NATS/TLS and ranking over gRPC/mTLS both answered');
  t.equal(reply.coverage, 1);
  t.equal(reply.modelVersion, assets.manifest.version);
  t.ok(reply.items.some((i) => i.source === 'RETRIEVAL'), 'retrieved and ranked items, not only the fallback list');
});

/** GET over HTTPS trusting the test CA, with `files`' client certificate when given. */
function httpsGet(url: string, files?: { certFile: string; keyFile: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: readFileSync(certs.node.caFile), ...(files ? { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

t.test('/metrics over HTTPS needs a client certificate from the cluster CA; /healthz does not', async (t) => {
  const address = cluster.nodes[0]!.metricsAddress;
  const withCert = await httpsGet(`https://${address}/metrics`, certs.client);
  t.equal(withCert.status, 200);
  t.match(withCert.body, /^upnext_node_info\{/m, 'the Prometheus text');
  const noCert = await httpsGet(`https://${address}/metrics`);
  t.equal(noCert.status, 403, 'no client certificate: refused');
  t.match(noCert.body, /client certificate/);
  t.equal((await httpsGet(`https://${address}/healthz`)).status, 200, 'health without a client certificate');
  await t.rejects(fetch(`http://${address}/metrics`), 'plain HTTP is not served');
});

t.test('plaintext clients are refused: gRPC UNAVAILABLE, NATS connect fails', async (t) => {
  const plain = connectRecommender(cluster.grpcAddress);
  t.teardown(() => plain.close());
  const code = await plain.recommend({ userId: 1, k: 5 }, { deadlineMs: 5000 }).then(() => undefined, (e: { code?: number }) => e.code);
  t.equal(code, StatusCode.UNAVAILABLE);
  const failed = await connect({ servers: cluster.natsUrl, reconnect: false, timeout: 5000 }).then(
    async (nc) => {
      await nc.close();
      return false;
    },
    () => true,
  );
  t.ok(failed, 'a NATS client without TLS cannot connect');
  const noCert = await connect({ servers: cluster.natsUrl, reconnect: false, timeout: 5000, tls: { caFile: certs.node.caFile } }).then(
    async (nc) => {
      await nc.close();
      return false;
    },
    () => true,
  );
  t.ok(noCert, 'a NATS client with TLS but no client certificate cannot connect');
  const nc = await connect({ servers: cluster.natsUrl, reconnect: false, ...natsTlsOptions(certs.client) });
  t.ok(nc.info?.tls_required, 'the NATS server requires TLS');
  await nc.close();
});

t.test('the local nats-server takes its TLS from a config file, so a reload (new certificate files) works', async (t) => {
  t.match(await readFile(path.join(runDir, 'nats-server.conf'), 'utf8'), /^tls \{[^}]*verify: true/m);
  const logFile = path.join(runDir, 'logs', 'nats-server.log');
  const before = (await readFile(logFile, 'utf8')).length;
  await reloadBySignal(path.join(runDir, 'nats-server.pid'))();
  let log = '';
  for (let i = 0; i < 50 && !/Reloaded server configuration/.test(log); i++) {
    await new Promise((r) => setTimeout(r, 100));
    log = (await readFile(logFile, 'utf8')).slice(before);
  }
  t.match(log, /Reloaded server configuration/, 'nats-server reloaded');
  t.notMatch(log, /Failed to reload/);
  const reply = await client.recommend({ userId: 2, k: 5, context: { device: 'ios', country: 'US', localHour: 20 } }, { deadlineMs: 20_000 });
  t.equal(reply.items.length, 5, 'and the cluster still answers');
});
