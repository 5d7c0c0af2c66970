// Rotating a NATS identity live (cluster/nats/rotate.ts, rotate-cli.ts) against a real nats-server
// started with the config cluster/nats/auth.ts writes: a node's connection, made with
// natsAuthOptions, keeps working through the rotation (the server drops it when the old key goes;
// it reconnects with the seed file's new key) with requests flowing, only those in flight at the
// drop losing their replies; afterwards the
// server accepts only the new key, and the files agree (seed, identities.json, server config).
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import type { ConnectionOptions, NatsConnection } from '@nats-io/transport-node';
import { nkeys } from '@nats-io/nats-core';
import { startNatsServer } from '../../cluster/nats/server.js';
import { NATS_IDENTITIES_FILE, natsAuthOptions, readNatsSeedFile, writeNatsCredentials } from '../../cluster/nats/auth.js';
import { natsTlsOptions } from '../../cluster/tls.js';
import { makeTestCerts } from '../fixtures/tls-certs.js';
import { connectProbe, reloadBySignal, rotateNatsIdentity } from '../../cluster/nats/rotate.js';
import { StatusCode, toStatus } from '../../core/status.js';

const CLI = fileURLToPath(new URL('../../cluster/nats/rotate-cli.js', import.meta.url));
const run = promisify(execFile);
const cluster = `rot${process.pid}`;
const root = await mkdtemp(path.join(tmpdir(), 'upnext-nats-rotate-'));
const dir = path.join(root, 'nats-auth');
const creds = await writeNatsCredentials(dir, cluster, ['n1']);
const pidFile = path.join(root, 'nats-server.pid');
const server = await startNatsServer({ dataDir: path.join(root, 'nats'), configFile: creds.serverConfig, pidFile });
const open: NatsConnection[] = [];
t.teardown(async () => {
  for (const nc of open) await nc.close().catch(() => {});
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

const probe = connectProbe(server.url);
const publicKeyOf = (file: string) => nkeys.fromSeed(readNatsSeedFile('seed', file)).getPublicKey();

/** A long-lived client as a node holds one: reconnecting, and counting its reconnects. */
async function client(credsFile: string, name: string, url = server.url, extra: Partial<ConnectionOptions> = {}): Promise<{ nc: NatsConnection; reconnects: () => number }> {
  const nc = await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...natsAuthOptions(credsFile), ...extra });
  open.push(nc);
  let reconnects = 0;
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') reconnects++;
  })();
  return { nc, reconnects: () => reconnects };
}

t.test('a node key rotated under traffic: the connection reconnects with the new key, only requests in flight at the drop are lost', async (t) => {
  const responder = await client(creds.creds.node, 'responder');
  const echo = `upnext.${cluster}.rotate-echo`;
  responder.nc.subscribe(echo, { callback: (_err, m) => void m.respond(m.data) });
  await responder.nc.flush();
  const n1 = await client(creds.nodes['n1']!, 'n1');
  const oldSeed = readNatsSeedFile('n1', creds.nodes['n1']!);
  const oldKey = publicKeyOf(creds.nodes['n1']!);

  let ok = 0;
  const failures: string[] = [];
  const inFlight = new Set<Promise<unknown>>();
  const timer = setInterval(() => {
    const p = n1.nc.request(echo, new Uint8Array(16), { timeout: 3000 }).then(() => void ok++, (e: Error) => void failures.push(e.message));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, 5);
  await new Promise((r) => setTimeout(r, 300));
  const steps: string[] = [];
  const r = await rotateNatsIdentity({ dir, id: 'node-n1', reload: reloadBySignal(pidFile), probe, log: (l) => steps.push(l) });
  await new Promise((r) => setTimeout(r, 500));
  clearInterval(timer);
  await Promise.all(inFlight);

  // Requests in flight on the dropped connection lose their replies (time out); those made during
  // the reconnect are held by nats.js and sent after it.
  t.ok(failures.every((m) => m === 'timeout'), `only timeouts: ${failures.join(', ')}`);
  t.ok(failures.length <= 5, `at most the requests in flight at the drop: ${failures.length} of ${ok + failures.length}`);
  t.ok(ok > 50, `${ok} requests answered`);
  t.ok(n1.reconnects() >= 1, 'the server dropped the old key\'s connection and it reconnected');
  t.equal(responder.reconnects(), 0, 'other identities kept their connections');
  t.same(r.removed, [oldKey]);
  t.equal(publicKeyOf(creds.nodes['n1']!), r.publicKey, 'the seed file holds the new key');
  t.equal(steps.length, 3, steps.join('\n'));
  t.notOk(await probe(oldSeed), 'the old seed is refused');
  t.equal((await stat(creds.nodes['n1']!)).mode & 0o777, 0o600, 'seed still 0600');
  const ids = JSON.parse(await readFile(path.join(dir, NATS_IDENTITIES_FILE), 'utf8')) as { identities: { id: string; publicKeys: string[] }[] };
  t.same(ids.identities.find((i) => i.id === 'node-n1')?.publicKeys, [r.publicKey], 'identities.json lists the new key only');
  const conf = await readFile(creds.serverConfig, 'utf8');
  t.ok(conf.includes(r.publicKey) && !conf.includes(oldKey), 'so does the server config');
  t.ok(conf.includes(creds.publicKeys.admin), 'the other identities stay');
  // After the rotation the node still has its permissions (its own records; not another node's).
  await t.resolves(n1.nc.request(echo, new Uint8Array(1), { timeout: 3000 }));
});

t.test('the CLI rotates a role of a run directory; the launcher-like admin connection carries on', async (t) => {
  await writeFile(path.join(root, 'config.json'), JSON.stringify({ cluster: { name: cluster }, nats: { auth: true } }));
  const admin = await client(creds.creds.admin, 'admin');
  const before = publicKeyOf(creds.creds.admin);
  const { stdout } = await run(process.execPath, [CLI, '--nats', server.url, '--run-dir', root, '--role', 'admin']);
  t.match(stdout, /admin rotated: the server accepts U[A-Z0-9]+ only/);
  t.not(publicKeyOf(creds.creds.admin), before);
  for (let i = 0; i < 50 && admin.reconnects() === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(admin.reconnects(), 1, 'reconnected once, with the new seed');
  await t.resolves(admin.nc.flush(), 'and works');
  const bad = await run(process.execPath, [CLI, '--nats', server.url, '--run-dir', root, '--role', 'root']).then(() => undefined, (e: { code: number; stderr: string }) => e);
  t.equal(bad?.code, 2, 'bad usage');
  t.match(bad?.stderr, /--role must be one of node, admin, reader, got "root"/);
  const typo = await run(process.execPath, [CLI, '--nats', server.url, '--rundir', root, '--role', 'admin']).then(() => undefined, (e: { code: number; stderr: string }) => e);
  t.equal(typo?.code, 2);
  t.match(typo?.stderr, /unknown flag\(s\): --rundir/, 'a misspelt flag is refused, not ignored');
});

t.test('a rotation cut short (the reload never shows) fails DEADLINE_EXCEEDED; run again, it completes and the live connection survives', async (t) => {
  const n1 = await client(creds.nodes['n1']!, 'n1-again');
  const err = await rotateNatsIdentity({ dir, id: 'node-n1', reload: async () => {}, probe, reloadTimeoutMs: 300 }).then(() => undefined, (e: unknown) => toStatus(e));
  t.equal(err?.code, StatusCode.DEADLINE_EXCEEDED);
  const listed = JSON.parse(await readFile(path.join(dir, NATS_IDENTITIES_FILE), 'utf8')) as { identities: { id: string; publicKeys: string[] }[] };
  t.equal(listed.identities.find((i) => i.id === 'node-n1')?.publicKeys.length, 2, 'left with both keys listed (the old one still in use)');
  const r = await rotateNatsIdentity({ dir, id: 'node-n1', reload: reloadBySignal(pidFile), probe });
  t.equal(r.removed.length, 2, 'the rerun removes the old key and the half-rotated one');
  for (let i = 0; i < 50 && n1.reconnects() === 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.equal(n1.reconnects(), 1);
  await t.resolves(n1.nc.flush(), 'the connection works with the newest key');
});

t.test('TLS and credentials together: the rotation reloads a server whose TLS is in its config file', async (t) => {
  const certs = await makeTestCerts();
  t.teardown(() => certs.remove());
  const tlsRoot = await mkdtemp(path.join(tmpdir(), 'upnext-nats-rotate-tls-'));
  t.teardown(() => rm(tlsRoot, { recursive: true, force: true }));
  const tlsDir = path.join(tlsRoot, 'nats-auth');
  const tlsCreds = await writeNatsCredentials(tlsDir, cluster, ['n1'], certs.node);
  const tlsPid = path.join(tlsRoot, 'nats-server.pid');
  const tlsServer = await startNatsServer({ dataDir: path.join(tlsRoot, 'nats'), configFile: tlsCreds.serverConfig, tls: certs.node, pidFile: tlsPid });
  t.teardown(() => tlsServer.stop());
  const n1 = await client(tlsCreds.nodes['n1']!, 'n1-tls', tlsServer.url, natsTlsOptions(certs.node));
  const r = await rotateNatsIdentity({ dir: tlsDir, id: 'node-n1', reload: reloadBySignal(tlsPid), probe: connectProbe(tlsServer.url, natsTlsOptions(certs.node)) });
  t.equal(publicKeyOf(tlsCreds.nodes['n1']!), r.publicKey);
  for (let i = 0; i < 50 && n1.reconnects() === 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.equal(n1.reconnects(), 1, 'reconnected over TLS with the new key');
  await t.resolves(n1.nc.flush());
  await tlsServer.stop();
  await t.rejects(stat(tlsPid), 'the pid file goes with the server');
});

t.test('an unknown identity is NOT_FOUND, and nothing changes', async (t) => {
  const conf = await readFile(creds.serverConfig, 'utf8');
  const err = await rotateNatsIdentity({ dir, id: 'node-n9', reload: () => Promise.reject(new Error('must not reload')), probe }).then(() => undefined, (e: unknown) => toStatus(e));
  t.equal(err?.code, StatusCode.NOT_FOUND);
  t.match(err?.message, /no NATS identity "node-n9".*there: node, admin, reader, node-n1/);
  t.equal(await readFile(creds.serverConfig, 'utf8'), conf);
});
