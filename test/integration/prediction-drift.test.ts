// Prediction drift end to end, real everything (nats-server, a node process with faiss, ONNX Runtime,
// the coordinator's gRPC server, the JetStream event stream): Recommend, then LogEvents impressions of
// every served item and clicks on two, carrying the response's request id; the node's popular actor
// reads them from the stream and hands them to the coordinator's drift monitor, and /metrics shows
// the join. Events naming an unknown request id change nothing.
import t from 'tap';
import { startTinyCluster } from '../fixtures/tiny-cluster.js';

// n1 hosts the coordinator and (node.popularOn "coordinators") the popular actor.
const { cluster, client } = await startTinyCluster(t, 'drift', { coordinator: { drift: { sampleRate: 1, minImpressions: 2 } } });

const metricsUrl = `http://${cluster.nodes.find((n) => n.name === 'n1')!.metricsAddress}/metrics`;

/** Every sample of `name` on the node's /metrics (no labels compared: one coordinator). */
async function metric(name: string): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

const D = 'upnext_coordinator_prediction_drift';
const ctx = { device: 'ios', country: 'US', localHour: 20 };

t.test('impressions and two clicks logged with the request id show as matched impressions and observed CTR', async (t) => {
  t.equal(await metric(`${D}_events_source`), 1, 'the node connects its popular actor\'s events to the monitor');
  t.equal(await metric(`${D}_impressions`), 0, 'nothing joined yet');

  const reply = await client.recommend({ userId: 42, k: 10, context: ctx, surface: 'home' });
  t.ok(reply.requestId.length > 0, 'the response carries the (generated) request id');
  t.equal(reply.items.length, 10);
  t.notOk(reply.degraded.some((d) => /ranking skipped|filled/.test(d)), `every item ranked (${reply.degraded.join('; ')})`);
  t.equal(await metric(`${D}_tracked_requests`), 1, 'sampleRate 1: the request is tracked');
  const n = reply.items.length;
  const tag = `${process.pid}-${Date.now()}`;

  // First, events naming a request the coordinator never served: read from the stream, joined to nothing.
  const strangers = reply.items.flatMap((it, slot) => [
    { eventId: `stranger-imp-${tag}-${slot}`, userId: 42, videoId: it.videoId, type: 'IMPRESSION', position: slot, context: ctx, surface: 'home', requestId: `no-such-request-${tag}` },
    { eventId: `stranger-click-${tag}-${slot}`, userId: 42, videoId: it.videoId, type: 'CLICK', position: slot, context: ctx, surface: 'home', requestId: `no-such-request-${tag}` },
  ]);
  t.same(await client.logEvents(strangers), { accepted: 2 * n, duplicates: 0 });
  // Then the real ones, in a later call (the stream keeps their order): every impression, clicks on slots 0 and 4.
  const impressions = reply.items.map((it, slot) => ({
    eventId: `imp-${tag}-${slot}`,
    userId: 42,
    videoId: it.videoId,
    type: 'IMPRESSION',
    position: slot,
    context: ctx,
    surface: 'home',
    requestId: reply.requestId,
  }));
  const clicks = [0, 4].map((slot) => ({ ...impressions[slot]!, eventId: `click-${tag}-${slot}`, type: 'CLICK' }));
  t.same(await client.logEvents([...impressions, ...clicks]), { accepted: n + 2, duplicates: 0 });

  const t0 = Date.now();
  let seen = await metric(`${D}_impressions`);
  while (seen !== n && Date.now() - t0 < 20_000) {
    await new Promise((r) => setTimeout(r, 50));
    seen = await metric(`${D}_impressions`);
  }
  t.equal(seen, n, 'matched impressions = items returned');
  t.comment(`joined after ${Date.now() - t0} ms`);
  // The clicks came in the same LogEvents call as the impressions: in the same applied batch or the next.
  let clicked = await metric(`${D}_clicks`);
  while (clicked !== 2 && Date.now() - t0 < 20_000) {
    await new Promise((r) => setTimeout(r, 50));
    clicked = await metric(`${D}_clicks`);
  }
  t.equal(clicked, 2, 'the two clicks, and none of the strangers\'');
  t.equal(await metric(`${D}_observed_ctr`), 2 / n, 'observed CTR = 2 / items');
  const mean = reply.items.reduce((a, it) => a + it.pClick, 0) / n;
  const meanPredicted = (await metric(`${D}_mean_predicted_ctr`))!;
  t.ok(Math.abs(meanPredicted - mean) < 1e-6, `mean predicted CTR ${meanPredicted} = mean served p_click ${mean}`);
  const ratio = (await metric(`${D}_ratio`))!;
  t.ok(Math.abs(ratio - (mean / (2 / n) - 1)) < 1e-5, `drift ratio ${ratio}`);
  // Top slots 0..2: three impressions, the click on slot 0.
  t.equal(await metric(`${D}_top_impressions`), 3);
  t.equal(await metric(`${D}_top_clicks`), 1);
  t.ok([0, 1].includes((await metric(`${D}_alert`))!), 'the alert is a 0/1 gauge');
  // The strangers were read (the popular actor applied them) and changed nothing.
  t.ok((await metric('upnext_popular_events_applied'))! >= 3 * n + 2, 'every event was read from the stream');
  t.equal(await metric('upnext_popular_listener_failures'), 0);

  // A replay of the same events (new event ids, same request and videos) is not counted twice.
  t.same(await client.logEvents([...impressions, ...clicks].map((e) => ({ ...e, eventId: `again-${e.eventId}` }))), { accepted: n + 2, duplicates: 0 });
  const applied = (await metric('upnext_popular_events_applied'))!;
  const t1 = Date.now();
  let appliedNow = applied;
  // Wait until popular read the replay (it applied at least those n + 2 more events).
  const target = 3 * n + 2 + (n + 2);
  while (appliedNow < target && Date.now() - t1 < 20_000) {
    await new Promise((r) => setTimeout(r, 50));
    appliedNow = (await metric('upnext_popular_events_applied'))!;
  }
  t.ok(appliedNow >= target, 'the replay was read');
  t.same([await metric(`${D}_impressions`), await metric(`${D}_clicks`)], [n, 2], 'each (request, video) counted once');
});
