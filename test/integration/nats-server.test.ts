import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../../cluster/nats/server.js';

t.test('starts a real nats-server with JetStream and stops it', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-nats-'));
  const server = await startNatsServer({ dataDir: dir });
  const nc = await connect({ servers: server.url });
  const sub = nc.subscribe('echo', { callback: (_err, msg) => void msg.respond(msg.data) });
  const reply = await nc.request('echo', new TextEncoder().encode('hi'), { timeout: 2000 });
  t.equal(new TextDecoder().decode(reply.data), 'hi');
  const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(nc);
  const info = await jsm.getAccountInfo();
  t.ok(info.limits !== undefined, 'JetStream is enabled');
  sub.unsubscribe();
  await nc.close();
  await server.stop();
  t.throws(() => process.kill(server.pid, 0), 'process is gone after stop');
  await rm(dir, { recursive: true, force: true });
});
