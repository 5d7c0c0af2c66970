import t from 'tap';
import { jetstreamManager } from '@nats-io/jetstream';
import { EventType } from '../../core/events.js';
import { Subjects, eventStreamName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { eventToMsg } from '../../protos/convert.js';
import { ensureEventStream } from '../../actors/event-stream/stream.js';
import type { FedEvent } from '../../actors/event-stream/feed.js';
import { sequenceBeforeTime, startEventFeed } from '../../actors/event-stream/feed.js';
import { natsFixture } from '../fixtures/nats.js';

function envelope(i: number): Uint8Array {
  return Codecs.eventEnvelope.encode({
    event: eventToMsg({ eventId: `e-${i}`, userId: 1, videoId: 100 + i, type: EventType.CLICK, tsMs: Date.now(), position: 0, watchSeconds: 0, context: { device: 'ios', country: 'BR', localHour: 12 }, surface: 'home', requestId: '' }),
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a start time is resolved to the stream sequence before it', async (t) => {
  const { nc } = await natsFixture(t, 'upnext-feed-time');
  const cluster = 'feedtime';
  const jsm = await jetstreamManager(nc);
  await ensureEventStream(jsm, cluster);
  const js = (await import('@nats-io/jetstream')).jetstream(nc);
  const stream = eventStreamName(cluster);
  const subject = Subjects.events(cluster, 0);
  t.equal(await sequenceBeforeTime(jsm, stream, subject, Date.now()), 0, 'empty stream: 0');
  for (let i = 0; i < 3; i++) await js.publish(subject, envelope(i));
  await sleep(50);
  const between = Date.now();
  await sleep(50);
  for (let i = 3; i < 5; i++) await js.publish(subject, envelope(i));
  t.equal(await sequenceBeforeTime(jsm, stream, subject, between), 3, 'three stored before the time');
  t.equal(await sequenceBeforeTime(jsm, stream, subject, 0), 0, 'a time before everything: from the start');
  t.equal(await sequenceBeforeTime(jsm, stream, subject, Date.now() + 60_000), 5, 'a time after everything: nothing to replay');
  t.same((await jsm.consumers.list(stream).next()).length, 0, 'the probe consumers are gone');
});

t.test('a feed started from a time keeps delivering after its consumer is recreated', async (t) => {
  const { nc } = await natsFixture(t, 'upnext-feed-reset');
  const cluster = 'feedreset';
  const jsm = await jetstreamManager(nc);
  await ensureEventStream(jsm, cluster);
  const js = (await import('@nats-io/jetstream')).jetstream(nc);
  const stream = eventStreamName(cluster);
  const subject = Subjects.events(cluster, 0);
  await js.publish(subject, envelope(0)); // before the start time: not replayed
  await sleep(50);
  const seen: FedEvent[] = [];
  const feed = await startEventFeed({ nc, cluster, subject, afterSeq: 0, startTimeMs: Date.now(), apply: async (b) => void seen.push(...b) });
  t.teardown(() => feed.stop());
  for (let i = 1; i <= 10; i++) await js.publish(subject, envelope(i));
  for (let i = 0; i < 100 && seen.length < 10; i++) await sleep(20);
  t.same(seen.map((e) => e.seq), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'from the start time on, in order');
  // Delete the consumer under the feed, as a server restart or a missed heartbeat would lose it:
  // the client recreates it from its cursor (a config with a start time made that fail for good).
  const consumers = await jsm.consumers.list(stream).next();
  t.equal(consumers.length, 1, 'one consumer serves the feed');
  await jsm.consumers.delete(stream, consumers[0]!.name);
  await sleep(200);
  for (let i = 11; i <= 20; i++) await js.publish(subject, envelope(i));
  for (let i = 0; i < 300 && seen.length < 20; i++) await sleep(50);
  t.same(seen.map((e) => e.seq), Array.from({ length: 20 }, (_, i) => i + 2), 'every later event once, in order, after the consumer was recreated');
  t.ok(feed.stats().consumerRecreated >= 1, `the recreation is counted (${feed.stats().consumerRecreated}; heartbeats missed ${feed.stats().heartbeatsMissed})`);
});
