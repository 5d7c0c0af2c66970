// core/transfer.ts: a worker hop must move only the payload, never the view's whole backing buffer,
// and must never detach a buffer the sender still uses.
import t from 'tap';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { forTransfer } from '../../core/transfer.js';

t.test('forTransfer copies exactly the view and transfers only the copy', async (t) => {
  const chunk = new Uint8Array(64 * 1024); // like a NATS socket read chunk
  chunk.fill(7);
  const view = chunk.subarray(100, 140);
  view.set(Array.from({ length: 40 }, (_, i) => i));
  const { bytes, transfer } = forTransfer(view);
  t.equal(bytes.byteLength, 40);
  t.equal(bytes.buffer.byteLength, 40, 'an exact-size buffer, not the 64 KB chunk');
  t.same(Array.from(bytes), Array.from(view));
  t.equal(transfer.length, 1);
  t.equal(transfer[0], bytes.buffer);

  const { port1, port2 } = new MessageChannel();
  port1.postMessage({ request: bytes }, transfer);
  const got = receiveMessageOnPort(port2)?.message as { request: Uint8Array } | undefined;
  t.same(Array.from(got?.request ?? []), Array.from({ length: 40 }, (_, i) => i), 'the receiver gets the payload');
  t.equal(got?.request.buffer.byteLength, 40, 'and only the payload');
  t.equal(bytes.byteLength, 0, 'the copy was transferred (detached here)');
  t.equal(chunk.byteLength, 64 * 1024, 'the original chunk is untouched and still usable');
  t.equal(view[5], 5);
  port1.close();
  port2.close();
});

t.test('a Node Buffer from the shared pool is copied, never detached', async (t) => {
  const pooled = Buffer.from('hello, worker'); // small Buffers live in Node's 8 KB pool
  t.ok(pooled.buffer.byteLength > pooled.byteLength, 'precondition: a pooled view');
  const { bytes, transfer } = forTransfer(pooled);
  t.not(bytes.buffer, pooled.buffer, 'a fresh buffer (Buffer#slice would be a view)');
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(bytes, transfer);
  t.equal(Buffer.from(receiveMessageOnPort(port2)?.message as Uint8Array).toString(), 'hello, worker');
  t.equal(pooled.toString(), 'hello, worker', 'the pooled Buffer still reads');
  t.equal(Buffer.from('another').toString(), 'another', 'and the pool still allocates');
  port1.close();
  port2.close();
});
