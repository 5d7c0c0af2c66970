/**
 * Mutual TLS on upnext's gRPC ports, with throwaway certificates (tls-certs.ts):
 * - the public Recommend server (stub backend) answers a client holding the CA and a client
 *   certificate, the caller token still applies on top, and it refuses a plaintext client, a TLS
 *   client without a certificate, a client trusting another CA and a client certified by another CA;
 * - a ranker replica's KServe server and the RankerClient score over mTLS (real ONNX Runtime on the
 *   linear test ranker), a plaintext RankerClient is refused, and tls.serverName lets a client
 *   accept a certificate that names a DNS host while it dials 127.0.0.1;
 * - the config's `tls` section is validated at load (missing file, non-PEM, half set, wrong key).
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Deadline } from '../../core/deadline.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import { startRecommenderServer } from '../../actors/coordinator/server.js';
import type { RecommenderBackend } from '../../actors/coordinator/server.js';
import { Source } from '../../actors/coordinator/types.js';
import { RankerClient } from '../../actors/ranker/client.js';
import { startRanker } from '../../actors/ranker/replica.js';
import { resolveConfig } from '../../cluster/config.js';
import { connectRecommender } from '../../cluster/local/client.js';
import { grpcChannelCredentials, grpcServerCredentials, natsTlsOptions } from '../../cluster/tls.js';
import { maxAbsDiff, randomRows, writeLinearRankerModel } from '../actors/ranker-fixture.js';
import { makeTestCerts } from '../fixtures/tls-certs.js';
import { RecommenderClientPool } from '../../loadtest/client/recommender-client.js';
import { parseArgs } from '../../loadtest/cli.js';
import { natsTlsFlags, parseFlags } from '../../shardmap/cli.js';

const certs = await makeTestCerts();
t.teardown(() => certs.remove());

const TOKEN = 's3cret';
const backend: RecommenderBackend = {
  recommend: async (q) => ({
    items: Array.from({ length: q.k }, (_, i) => ({ videoId: 100 + i, score: 1 - i / 10, pClick: 0.1, expectedWatchSeconds: 30, source: Source.RETRIEVAL, shard: 0 })),
    coverage: 1,
    degraded: [],
    modelVersion: 'tls-test',
    requestId: 'r1',
    outcome: 'ok',
  }),
  logEvents: async (events) => ({ accepted: events.length, duplicates: 0 }),
};

const bearer = () => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  return md;
};

/** The grpc status a failed call carried (the test fails on a success). */
async function failureCode(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: number }).code;
  }
}

t.test('public Recommend server over mTLS: CA + client cert answers; plaintext, cert-less and foreign-CA clients are refused; the token still applies', async (t) => {
  const server = await startRecommenderServer({
    backend,
    config: resolveCoordinatorConfig({ auth: { token: TOKEN } }),
    credentials: grpcServerCredentials(certs.node),
  });
  t.teardown(() => server.stop(100));
  const request = { userId: 7, k: 3, context: { device: 'ios', country: 'US', localHour: 20 } };
  const call = (client: ReturnType<typeof connectRecommender>, metadata = bearer()) => {
    t.teardown(() => client.close());
    return client.recommend(request, { deadlineMs: 5000, metadata });
  };

  const reply = await call(connectRecommender(server.address, { tls: certs.client }));
  t.same(reply.items.map((i) => i.videoId), [100, 101, 102], 'a client with the CA and a client certificate gets the answer');
  t.equal(reply.modelVersion, 'tls-test');
  // The localhost SAN works as well as the IP one.
  const byName = await call(connectRecommender(`localhost:${server.port}`, { tls: certs.client }));
  t.equal(byName.items.length, 3, 'dialled as localhost (DNS SAN) it answers too');

  t.equal(await failureCode(call(connectRecommender(server.address, { tls: certs.client }), new grpc.Metadata())), StatusCode.UNAUTHENTICATED, 'over mTLS the caller token is still required');
  t.equal(await failureCode(call(connectRecommender(server.address))), StatusCode.UNAVAILABLE, 'a plaintext client fails UNAVAILABLE');

  const probe = connectRecommender(server.address);
  const Recommender = probe.raw.constructor as new (a: string, c: grpc.ChannelCredentials) => grpc.Client;
  probe.close();
  const noCert = new Recommender(server.address, grpc.credentials.createSsl(readFileSync(certs.client.caFile)));
  t.teardown(() => noCert.close());
  const noCertCode = await new Promise<number | undefined>((resolve) => {
    (noCert as unknown as { recommend: (r: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void }).recommend(
      { userId: '7', k: 3, context: {} },
      bearer(),
      { deadline: Date.now() + 5000 },
      (err) => resolve(err?.code),
    );
  });
  t.equal(noCertCode, StatusCode.UNAVAILABLE, 'a TLS client without a client certificate fails the handshake');

  const trustsOtherCa = { ...certs.client, caFile: certs.otherCa.caFile };
  t.equal(await failureCode(call(connectRecommender(server.address, { tls: trustsOtherCa }))), StatusCode.UNAVAILABLE, 'a client trusting another CA refuses the server');
  const certifiedByOtherCa = { ...certs.otherCa, caFile: certs.client.caFile };
  t.equal(await failureCode(call(connectRecommender(server.address, { tls: certifiedByOtherCa }))), StatusCode.UNAVAILABLE, 'a client certificate from another CA is refused');

  // The load generator's client, as `loadtest/cli.ts --target … --tls-*` builds it.
  const args = parseArgs(['steady', '--target', server.address, '--tls-ca', certs.client.caFile, '--tls-cert', certs.client.certFile, '--tls-key', certs.client.keyFile]);
  t.same(args.tls, certs.client, 'loadtest --tls-* flags parse into the TLS files');
  const noAuth = await startRecommenderServer({ backend, config: resolveCoordinatorConfig(), credentials: grpcServerCredentials(certs.node) });
  t.teardown(() => noAuth.stop(100));
  const pool = new RecommenderClientPool({ address: noAuth.address, channels: 2, tls: args.tls });
  t.teardown(() => pool.close());
  const ctx = { device: 'ios', country: 'US', localHour: 20 };
  const r = await pool.recommend({ userId: 7, k: 2, context: ctx, surface: '' });
  t.ok(r.ok && r.value.items.length === 2, 'the load generator client gets answers over mTLS');
  const plainPool = new RecommenderClientPool({ address: noAuth.address, channels: 1 });
  t.teardown(() => plainPool.close());
  const pr = await plainPool.recommend({ userId: 7, k: 2, context: ctx, surface: '' });
  t.ok(!pr.ok && pr.code === StatusCode.UNAVAILABLE, 'and without the flags it is refused');
});

t.test('CLI TLS flags: all three or none, validated naming the flag', async (t) => {
  t.throws(() => parseArgs(['steady', '--target', 'h:1', '--tls-ca', certs.client.caFile]), { name: 'TypeError', message: /^--tls-cert must be set when --tls-ca is/ });
  t.throws(() => parseArgs(['steady', '--start-cluster', '--tls-ca', certs.client.caFile, '--tls-cert', certs.client.certFile, '--tls-key', certs.client.keyFile]), /--tls-\* flags need --target/);
  t.same(parseArgs(['steady', '--target', 'h:1']).tls, {}, 'no flags: plaintext');
  t.same(natsTlsFlags(parseFlags([])), {}, 'shardmap without --tls-*: plaintext NATS');
  t.same(
    natsTlsOptions(natsTlsFlags(parseFlags(['--tls-ca', certs.client.caFile, '--tls-cert', certs.client.certFile, '--tls-key', certs.client.keyFile]))),
    { tls: { caFile: certs.client.caFile, certFile: certs.client.certFile, keyFile: certs.client.keyFile } },
    'shardmap --tls-* flags become the NATS connect tls option',
  );
  t.throws(() => natsTlsFlags(parseFlags(['--tls-ca', certs.client.caFile, '--tls-cert', certs.client.certFile, '--tls-key', path.join(certs.dir, 'nope.key')])), { name: 'TypeError', message: /^--tls-key: cannot read/ });
});

t.test('ranker KServe server and RankerClient over mTLS; plaintext refused; tls.serverName for DNS-only certificates', async (t) => {
  const fx = await writeLinearRankerModel({ seed: 11 });
  t.teardown(() => fx.remove());
  const quiet = { log: () => undefined };
  const replica = await startRanker({ modelDir: fx.dir, port: 0, batching: { maxDelayMs: 0 }, serverCredentials: grpcServerCredentials(certs.node) }, quiet);
  t.teardown(() => replica.stop());
  const n = 8;
  const rows = randomRows(n, fx.width, 3);
  const ref = fx.reference(rows, n);

  const client = new RankerClient({ addresses: () => [replica.address], credentials: grpcChannelCredentials(certs.node) });
  t.teardown(() => client.close());
  const scores = await client.score(rows, n, Deadline.after(10_000));
  t.ok(maxAbsDiff(scores.pClick, ref.pClick) < 1e-5 && maxAbsDiff(scores.watchLog1p, ref.watchLog1p) < 1e-4, 'scores come back over mTLS and match the model');
  t.equal(replica.stats().server.inferCalls, 1);

  const plain = new RankerClient({ addresses: () => [replica.address] });
  t.teardown(() => plain.close());
  const err = await plain.score(rows, n, Deadline.after(5000)).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof UpnextError && err.code === StatusCode.UNAVAILABLE, `a plaintext RankerClient fails UNAVAILABLE (${String(err)})`);

  // A replica whose certificate names only a DNS host, dialled by IP as the shard map does.
  const dnsReplica = await startRanker({ modelDir: fx.dir, port: 0, batching: { maxDelayMs: 0 }, serverCredentials: grpcServerCredentials(certs.dnsOnly) }, quiet);
  t.teardown(() => dnsReplica.stop());
  const strict = new RankerClient({ addresses: () => [dnsReplica.address], credentials: grpcChannelCredentials(certs.node) });
  t.teardown(() => strict.close());
  const strictErr = await strict.score(rows, n, Deadline.after(5000)).then(() => undefined, (e: unknown) => e);
  t.ok(strictErr instanceof UpnextError && strictErr.code === StatusCode.UNAVAILABLE, 'without tls.serverName the IP is checked against the certificate and refused');
  const named = new RankerClient({ addresses: () => [dnsReplica.address], credentials: grpcChannelCredentials({ ...certs.node, serverName: certs.dnsOnlyName }) });
  t.teardown(() => named.close());
  const namedScores = await named.score(rows, n, Deadline.after(10_000));
  t.ok(maxAbsDiff(namedScores.pClick, ref.pClick) < 1e-5, 'with tls.serverName set to the certificate name it answers');
});

t.test('config tls: unset by default, validated at load with a TypeError naming the knob', async (t) => {
  t.same(resolveConfig().tls, {}, 'default: unset (plaintext)');
  t.same(natsTlsOptions(resolveConfig().tls), {}, 'no NATS tls option when unset');
  const ok = resolveConfig({ tls: { ...certs.node, serverName: 'localhost' } });
  t.same(ok.tls, { ...certs.node, serverName: 'localhost' });
  t.same(natsTlsOptions(ok.tls), { tls: { caFile: certs.node.caFile, certFile: certs.node.certFile, keyFile: certs.node.keyFile } }, 'the NATS connect options carry the TLS files');

  const notPem = path.join(certs.dir, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  const garbledPem = path.join(certs.dir, 'garbled.pem');
  writeFileSync(garbledPem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const missing = path.join(certs.dir, 'missing.pem');
  const bad = (tls: Record<string, unknown>) => () => resolveConfig({ tls } as never);
  t.throws(bad({ ...certs.node, certFile: missing }), new TypeError(`config tls.certFile: cannot read ${JSON.stringify(missing)} (ENOENT)`), 'missing file');
  t.throws(bad({ ...certs.node, caFile: notPem }), { name: 'TypeError', message: /^config tls\.caFile: .* is not a PEM file/ }, 'non-PEM CA');
  t.throws(bad({ ...certs.node, keyFile: notPem }), { name: 'TypeError', message: /^config tls\.keyFile: .* is not a PEM file/ }, 'non-PEM key');
  t.throws(bad({ ...certs.node, certFile: garbledPem }), { name: 'TypeError', message: /^config tls\.certFile: .* does not parse as a certificate/ }, 'PEM armour around garbage');
  t.throws(bad({ ...certs.node, keyFile: certs.client.keyFile }), { name: 'TypeError', message: /^config tls\.keyFile: .* is not the private key of config tls\.certFile/ }, 'key of another certificate');
  t.throws(bad({ certFile: certs.node.certFile }), { name: 'TypeError', message: /^config tls\.keyFile must be set when config tls\.certFile is/ }, 'half set');
  t.throws(bad({ ...certs.node, caFile: 3 }), { name: 'TypeError', message: /^config tls\.caFile must be a non-empty string/ }, 'not a string');
  t.throws(bad({ ...certs.node, certfile: 'x' }), new TypeError('config tls.certfile is not a known option'), 'typo');
});
