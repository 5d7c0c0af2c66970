// The popular actor's listener hook (actors/popular/popular.ts `onEvents`), through which the node
// hands its coordinator's drift monitor the events popular reads: every applied batch reaches the
// listener after the lists counted it, and a throwing listener never disturbs the lists.
// A fake NATS connection stands in (no event feed, no requests): only the hook is under test here;
// test/integration/prediction-drift.test.ts runs it against the real stream.
import t from 'tap';
import type { NatsConnection } from '@nats-io/transport-node';
import { EventType, UNKNOWN_CONTEXT } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { startPopular } from '../../actors/popular/popular.js';

const fakeNc = { subscribe: () => ({ unsubscribe: () => {} }) } as unknown as NatsConnection;

const events: InteractionEvent[] = [1, 2, 3].map((videoId) => ({
  eventId: `p${videoId}`,
  userId: 1,
  videoId,
  type: EventType.IMPRESSION,
  tsMs: 1_700_000_000_000,
  position: 0,
  watchSeconds: 0,
  context: UNKNOWN_CONTEXT,
  surface: 'home',
  requestId: 'r1',
}));

t.test('every applied batch reaches onEvents, in order', async (t) => {
  const seen: (readonly InteractionEvent[])[] = [];
  const popular = await startPopular({ nc: fakeNc, cluster: 'hook', eventFeed: false, onEvents: (b) => seen.push(b) });
  t.teardown(() => popular.stop());
  popular.applyEvents(events.slice(0, 2));
  popular.applyEvents(events.slice(2));
  t.same(seen, [events.slice(0, 2), events.slice(2)]);
  t.equal(popular.stats().eventsApplied, 3);
  t.equal(popular.stats().listenerFailures, 0);
});

t.test('a throwing listener is counted and swallowed; the lists still count the batch once', async (t) => {
  const popular = await startPopular({
    nc: fakeNc,
    cluster: 'hook',
    eventFeed: false,
    onEvents: () => {
      throw new Error('listener broke');
    },
  });
  t.teardown(() => popular.stop());
  t.doesNotThrow(() => popular.applyEvents(events), 'the feed would retry (and double-count) a batch whose apply threw');
  t.equal(popular.stats().eventsApplied, 3);
  t.equal(popular.stats().listenerFailures, 1);
});

t.test('onEvents must be a function', async (t) => {
  await t.rejects(startPopular({ nc: fakeNc, cluster: 'hook', eventFeed: false, onEvents: 42 as unknown as () => void }), { name: 'TypeError', message: /onEvents/ });
});
