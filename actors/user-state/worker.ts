/**
 * Worker-thread host of one user partition (profiles, embedding cache, user-tower session). Messages
 * are handled in arrival order, so an `apply` finishes before later `get`s read the profile.
 */
import { parentPort } from 'node:worker_threads';
import { toStatus } from '../../core/status.js';
import { openUserPartition } from './bootstrap.js';
import { handleUserStateRequest } from './handler.js';
import type { UserStatePartition } from './partition.js';
import type { FromUserWorker, ToUserWorker } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('actors/user-state/worker.js must run in a worker thread');
let partition: UserStatePartition | undefined;

function post(m: FromUserWorker): void {
  port?.postMessage(m);
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: ToUserWorker) => {
  queue = queue.then(() => handle(msg)).catch((err: unknown) => console.error('user-state worker:', err));
});

async function handle(msg: ToUserWorker): Promise<void> {
  switch (msg.type) {
    case 'init':
      try {
        const opened = await openUserPartition(msg.config);
        partition = opened.partition;
        post({ type: 'ready', info: opened.info, counters: partition.counters() });
      } catch (err) {
        post({ type: 'initFailed', status: toStatus(err) });
      }
      return;
    case 'get':
      if (partition === undefined) return;
      post({ type: 'reply', id: msg.id, reply: await handleUserStateRequest(partition, msg.request), counters: partition.counters() });
      return;
    case 'apply':
      if (partition === undefined) return;
      try {
        post({ type: 'applied', id: msg.id, result: partition.applyEvents(msg.events), status: null, counters: partition.counters() });
      } catch (err) {
        post({ type: 'applied', id: msg.id, result: null, status: toStatus(err), counters: partition.counters() });
      }
      return;
  }
}
