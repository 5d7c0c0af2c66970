/**
 * The tiny local cluster with TLS and NATS credentials together, and a node's key rotated live by
 * the CLI (cluster/nats/rotate-cli.ts): the launcher writes the server's TLS into its config file
 * (a reload reads only that file), the rotation reloads it, the node reconnects over TLS with its
 * new seed, and Recommend keeps answering with calls running back to back through the rotation (a
 * call whose NATS request was in flight when the server dropped n2's connection may be degraded,
 * never failed).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { backToBackCalls, startTinyCluster } from '../fixtures/tiny-cluster.js';
import { makeTestCerts } from '../fixtures/tls-certs.js';

const CLI = fileURLToPath(new URL('../../cluster/nats/rotate-cli.js', import.meta.url));
const run = promisify(execFile);
const certs = await makeTestCerts();
t.teardown(() => certs.remove());
// Stage budgets as a deployment has them (the fixture's are seconds long): a NATS reply lost with
// the connection the server drops (a request in flight at that instant) then degrades that answer
// after its stage budget instead of holding the call past the client's deadline.
const { cluster, client, runDir } = await startTinyCluster(t, 'tlsrot', {
  tls: certs.node,
  nats: { auth: true },
  coordinator: { budgets: { userStateMs: 500, retrievalMs: 1000, rankingMs: 1500, policyMs: 500 } },
});

t.test('a node key rotated on a TLS cluster while Recommend runs', async (t) => {
  t.match(await readFile(path.join(runDir, 'nats-auth', 'nats-server.conf'), 'utf8'), /^tls \{[^}]*verify: true/m, 'the server TLS is in its config file');
  const seedBefore = await readFile(path.join(runDir, 'nats-auth', 'node-n2.nk'), 'utf8');
  // Users of every partition, so both nodes' user-state reads run through the rotation.
  const calls = backToBackCalls(client, [1, 2, 3, 4, 5, 6, 7, 8]);
  await calls.firstAnswer;
  const { stdout } = await run(process.execPath, [CLI, '--nats', cluster.natsUrl, '--run-dir', runDir, '--node', 'n2']);
  t.match(stdout, /node-n2 rotated/);
  await new Promise((r) => setTimeout(r, 1500));
  const log = await calls.stop();
  t.not(await readFile(path.join(runDir, 'nats-auth', 'node-n2.nk'), 'utf8'), seedBefore, 'n2 has a new seed');
  t.same(log.errors, [], 'no call failed');
  t.ok(log.replies.length > 10, `${log.replies.length} calls answered`);
  // n2 serves again over NATS: an answer with nothing degraded (a few tries: short budgets on a busy box).
  let clean = false;
  for (let i = 0; i < 10 && !clean; i++) {
    const after = await client.recommend({ userId: 2, k: 5, context: { device: 'ios', country: 'US', localHour: 20 } }, { deadlineMs: 20_000 });
    clean = after.items.length === 5 && after.degraded.length === 0;
  }
  t.ok(clean, 'n2 serves again over NATS: an answer with nothing degraded');
});
