// Certificate rotation without a restart (cluster/tls-watch.ts behind cluster/tls.ts): a gRPC server
// over real sockets, its certificate files replaced while it runs. New handshakes get the new
// certificate (a client checking the new certificate's DNS name is refused before and answered after;
// one checking the old IP SAN the other way round); a half-done replacement (the certificate without
// its key) is not applied; a client's own certificate files are watched too; and the node's HTTPS
// /metrics server follows the same files.
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { copyFile, rename } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { makeTestCerts } from '../fixtures/tls-certs.js';
import { grpcServerCredentials, httpsServerOptions, resolveTlsSection, watchHttpsServer } from '../../cluster/tls.js';
import type { TlsFiles } from '../../cluster/tls.js';
import { tlsFileWatcher } from '../../cluster/tls-watch.js';
import { startRecommenderServer } from '../../actors/coordinator/server.js';
import type { RecommenderBackend } from '../../actors/coordinator/server.js';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import { connectRecommender } from '../../cluster/local/client.js';
import { Source } from '../../actors/coordinator/types.js';

const certs = await makeTestCerts();
t.teardown(() => certs.remove());
const INTERVAL_MS = 100;

/** Replaces `to` by a rename of a copy of `from` (what a careful rotation does). */
async function replace(from: string, to: string): Promise<void> {
  await copyFile(from, `${to}.new`);
  await rename(`${to}.new`, to);
}
/** Copies a certificate and its key to new paths: the "live" files a process is configured with. */
async function live(name: string, from: TlsFiles): Promise<TlsFiles> {
  const files = { certFile: path.join(certs.dir, `${name}.pem`), keyFile: path.join(certs.dir, `${name}.key`), caFile: from.caFile };
  await copyFile(from.certFile, files.certFile);
  await copyFile(from.keyFile, files.keyFile);
  return files;
}
const settle = () => new Promise((r) => setTimeout(r, INTERVAL_MS * 4));

const backend: RecommenderBackend = {
  recommend: async (q) => ({
    items: Array.from({ length: q.k }, (_, i) => ({ videoId: 100 + i, score: 1, pClick: 0.1, expectedWatchSeconds: 30, source: Source.RETRIEVAL, shard: 0 })),
    coverage: 1,
    degraded: [],
    modelVersion: 'reload-test',
    requestId: 'r1',
    outcome: 'ok',
  }),
  logEvents: async (events) => ({ accepted: events.length, duplicates: 0 }),
};
const request = { userId: 7, k: 2, context: { device: 'ios', country: 'US', localHour: 20 } };

/**
 * Whether a new client with `clientTls` gets an answer from `address` over a new connection: grpc-js
 * shares connections between channels whose credentials are equal, and a connection opened before
 * a rotation rightly carries on, so each call names the server (127.0.0.1 by default), which gives
 * its credentials their own identity check and so their own connection.
 */
async function answers(t: Test, address: string, clientTls: TlsFiles & { serverName?: string }): Promise<boolean> {
  const client = connectRecommender(address, { tls: { serverName: '127.0.0.1', ...clientTls } });
  t.teardown(() => client.close());
  return client.recommend(request, { deadlineMs: 3000 }).then(
    () => true,
    () => false,
  );
}

t.test('a server certificate replaced while serving: new handshakes use it; the certificate without its key is not applied', async (t) => {
  const serverFiles = await live('server-live', certs.node);
  const server = await startRecommenderServer({ backend, config: resolveCoordinatorConfig(), credentials: grpcServerCredentials(serverFiles, INTERVAL_MS) });
  t.teardown(() => server.stop(100));
  const byIp = certs.client;
  const byDnsName = { ...certs.client, serverName: certs.dnsOnlyName };
  t.ok(await answers(t, server.address, byIp), 'the node certificate names 127.0.0.1');
  t.notOk(await answers(t, server.address, byDnsName), 'and not the DNS-only name');

  // Half a rotation: the new certificate, the old key.
  await replace(certs.dnsOnly.certFile, serverFiles.certFile);
  await settle();
  const w = tlsFileWatcher(serverFiles);
  t.same(w.counts(), { reloads: 0, refused: 1 }, 'refused: the key does not belong to the certificate');
  t.ok(await answers(t, server.address, byIp), 'the old certificate still serves');

  // The key lands too.
  await replace(certs.dnsOnly.keyFile, serverFiles.keyFile);
  await settle();
  t.same(w.counts(), { reloads: 1, refused: 1 }, 'applied once both files agree');
  t.ok(await answers(t, server.address, byDnsName), 'the new certificate names the DNS name: answered');
  t.notOk(await answers(t, server.address, byIp), 'and no longer 127.0.0.1: refused');
});

t.test('a client\'s own certificate files are watched: replaced by one of another CA, its new connections are refused', async (t) => {
  const server = await startRecommenderServer({ backend, config: resolveCoordinatorConfig(), credentials: grpcServerCredentials(certs.node) });
  t.teardown(() => server.stop(100));
  const clientFiles = await live('client-live', certs.client);
  // The client's watcher runs at the test interval (the first user of these files sets it).
  tlsFileWatcher(clientFiles, INTERVAL_MS);
  t.ok(await answers(t, server.address, clientFiles));
  await replace(certs.otherCa.keyFile, clientFiles.keyFile);
  await replace(certs.otherCa.certFile, clientFiles.certFile);
  await settle();
  t.equal(tlsFileWatcher(clientFiles).counts().reloads, 1);
  t.notOk(await answers(t, server.address, clientFiles), 'the server refuses the other CA\'s client certificate');
});

t.test('the HTTPS /metrics server follows the files', async (t) => {
  const files = await live('https-live', certs.node);
  tlsFileWatcher(files, INTERVAL_MS);
  const server = https.createServer(httpsServerOptions(files)!, (_req, res) => res.end('ok'));
  const unwatch = watchHttpsServer(server, files);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    unwatch();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const peerName = () =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        const cn = s.getPeerCertificate().subject.CN;
        s.end();
        resolve(Array.isArray(cn) ? cn.join(',') : String(cn));
      });
      s.on('error', reject);
    });
  t.equal(await peerName(), 'node');
  await replace(certs.dnsOnly.keyFile, files.keyFile);
  await replace(certs.dnsOnly.certFile, files.certFile);
  await settle();
  t.equal(await peerName(), 'dns-only', 'the next handshake presents the new certificate');
});

t.test('a set that parses and matches but TLS refuses (a 512-bit key) is not applied, and refused at config load', async (t) => {
  // OpenSSL's security level refuses the key when a context is made, though it parses and matches.
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:512', '-nodes', '-keyout', 'small.key', '-out', 'small.pem', '-days', '1', '-subj', '/CN=small'], { cwd: certs.dir, stdio: 'ignore' });
  const small = { certFile: path.join(certs.dir, 'small.pem'), keyFile: path.join(certs.dir, 'small.key'), caFile: certs.node.caFile };
  t.throws(() => resolveTlsSection({ ...small }), { message: /config tls\.certFile: .* is refused by TLS/ });
  const serverFiles = await live('server-small', certs.node);
  const server = await startRecommenderServer({ backend, config: resolveCoordinatorConfig(), credentials: grpcServerCredentials(serverFiles, INTERVAL_MS) });
  t.teardown(() => server.stop(100));
  await replace(small.keyFile, serverFiles.keyFile);
  await replace(small.certFile, serverFiles.certFile);
  await settle();
  t.same(tlsFileWatcher(serverFiles).counts(), { reloads: 0, refused: 1 }, 'refused: the last good set stays');
  t.ok(await answers(t, server.address, certs.client), 'the node certificate still serves');
});
