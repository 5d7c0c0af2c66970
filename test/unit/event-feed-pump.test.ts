// The event feed's batching (actors/event-stream/feed.ts pumpFeed) with a fake message source: a
// batch closes at maxBatch or when nothing is pending, and, when the last message still claims
// more pending (the server's count when it sent it, seen stale under load: 147 of 200 events held
// with nothing more to come), after a short silence; batches are applied in order, one at a time.
import t from 'tap';
import { EventType } from '../../core/events.js';
import { Codecs } from '../../protos/codec.js';
import { eventToMsg } from '../../protos/convert.js';
import type { FeedMessage, FedEvent } from '../../actors/event-stream/feed.js';
import { pumpFeed } from '../../actors/event-stream/feed.js';

function message(seq: number, pending: number): FeedMessage {
  const event = { eventId: `e${seq}`, userId: 1, videoId: seq, type: EventType.CLICK, tsMs: 1, position: 0, watchSeconds: 0, context: { device: 'ios', country: 'BR', localHour: 12 }, surface: 'home', requestId: '' };
  return { data: Codecs.eventEnvelope.encode({ event: eventToMsg(event) }), info: { streamSequence: seq, pending } };
}

/** Yields `msgs`, then never ends (a live consumer with nothing more to deliver) unless `end`. */
async function* source(msgs: readonly FeedMessage[], end = false, stop?: Promise<void>): AsyncGenerator<FeedMessage> {
  for (const m of msgs) yield m;
  if (!end) await (stop ?? new Promise<void>(() => undefined));
}

const until = async (cond: () => boolean, ms = 2000) => {
  for (let waited = 0; waited < ms && !cond(); waited += 10) await new Promise((r) => setTimeout(r, 10));
};

t.test('a batch whose last message still claims pending messages is applied after a short silence', async (t) => {
  const applied: number[][] = [];
  let stopping = false;
  let release!: () => void;
  const stop = new Promise<void>((r) => (release = r));
  // 5 messages, the last one saying 3 more are pending, then nothing: the old rule (apply only at
  // pending 0 or maxBatch) held all 5 until another event came.
  const msgs = [message(1, 7), message(2, 6), message(3, 5), message(4, 4), message(5, 3)];
  const done = pumpFeed(source(msgs, false, stop), { maxBatch: 256, isStopping: () => stopping, apply: async (b: FedEvent[]) => void applied.push(b.map((e) => e.seq)) });
  await until(() => applied.flat().length === 5);
  t.same(applied, [[1, 2, 3, 4, 5]], 'applied, as one batch, with no further message');
  stopping = true;
  release();
  await done;
});

t.test('batches close at pending 0 and at maxBatch, and are applied in order, one at a time', async (t) => {
  const applied: number[][] = [];
  let inFlight = 0;
  let overlapped = false;
  const apply = async (b: FedEvent[]) => {
    inFlight++;
    if (inFlight > 1) overlapped = true;
    await new Promise((r) => setTimeout(r, 15)); // slower than the idle flush
    applied.push(b.map((e) => e.seq));
    inFlight--;
  };
  // A burst of 3 ending at pending 0; then 5 with maxBatch 2 (2, 2, and 1 closed by the silence or the end).
  const msgs = [message(1, 2), message(2, 1), message(3, 0), message(4, 9), message(5, 8), message(6, 7), message(7, 6), message(8, 5)];
  await pumpFeed(source(msgs, true), { maxBatch: 2, isStopping: () => false, apply });
  t.same(applied.flat(), [1, 2, 3, 4, 5, 6, 7, 8], 'every event once, in stream order');
  t.ok(applied.every((b) => b.length <= 2), `no batch above maxBatch: ${JSON.stringify(applied)}`);
  t.notOk(overlapped, 'one batch applied at a time');
});

t.test('undecodable messages are reported and skipped', async (t) => {
  const seen: (number | undefined)[] = [];
  const applied: number[] = [];
  const bad: FeedMessage = { data: new Uint8Array([0xff, 0xff, 0xff]), info: { streamSequence: 2, pending: 1 } };
  await pumpFeed(source([message(1, 2), bad, message(3, 0)], true), {
    maxBatch: 256,
    isStopping: () => false,
    apply: async (b) => void applied.push(...b.map((e) => e.seq)),
    onMessage: (m, e) => seen.push(e === undefined ? undefined : m.info.streamSequence),
  });
  t.same(seen, [1, undefined, 3]);
  t.same(applied, [1, 3]);
});
