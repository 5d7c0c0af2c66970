/**
 * joinLabels (offline/logged/join.ts): each rule of the training join on hand-made requests and
 * events: the request-id join, the largest watch, held-back rows, the watermark, late events,
 * duplicates, the (user, video) fallback, the logged slot in the position column, and the refusal
 * of another feature spec.
 */
import t from 'tap';
import type { InteractionEvent } from '../../core/events.js';
import { EventType, UNKNOWN_CONTEXT } from '../../core/events.js';
import { specHash } from '../../core/features/index.js';
import { POSITION_FEATURE_INDEX, rankerRowWidth, writeRankerRow } from '../../core/features/ranker-row.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { newUserProfile } from '../../core/features/user.js';
import { StatusCode } from '../../core/status.js';
import { joinLabels, loggedEventFilter } from '../../offline/logged/join.js';
import type { JoinedRows } from '../../offline/logged/join.js';
import type { LabelEvent } from '../../offline/logged/read-events.js';
import type { ServedRequest } from '../../offline/logged/served.js';
import { timeSplit } from '../../offline/logged/split.js';

const spec = DEFAULT_FEATURE_SPEC;
const HASH = specHash(spec);
const F = rankerRowWidth(spec);
const T0 = Date.UTC(2026, 0, 1);
const W = 30 * 60_000;

let seq = 0;
/** A logged request whose row for video v is filled with v + column/1000 (position column = inference value). */
function request(requestId: string, userId: number, servedAtMs: number, videoIds: number[], over: Partial<ServedRequest> = {}): ServedRequest {
  const width = over.width ?? F;
  const rows = new Float32Array(videoIds.length * width);
  videoIds.forEach((v, i) => {
    for (let c = 0; c < width; c++) rows[i * width + c] = v + c / 1000;
    rows[i * width + POSITION_FEATURE_INDEX] = 0;
  });
  return {
    seq: ++seq,
    requestId,
    userId,
    modelVersion: 'v1',
    featureSpecHash: HASH,
    surface: 'home',
    servedAtMs,
    videoIds,
    slots: videoIds.map((_, i) => i),
    width,
    rows,
    ...over,
  };
}

let evSeq = 0;
function event(type: EventType, requestId: string, userId: number, videoId: number, storedAtMs: number, watchSeconds = 0): LabelEvent {
  const e: InteractionEvent = { eventId: `e${++evSeq}`, userId, videoId, type, tsMs: storedAtMs - 5, position: -1, watchSeconds, context: UNKNOWN_CONTEXT, surface: 'home', requestId };
  return { seq: evSeq, storedAtMs, event: e };
}

/** Label of (request id, video) in the joined rows, or undefined when the row is not there. */
function labelOf(rows: JoinedRows, requestId: string, videoId: number): { click: number; watchS: number; at: number } | undefined {
  for (let i = 0; i < rows.count; i++) {
    if (rows.requestIds[rows.request[i]!] === requestId && rows.videoId[i] === videoId) return { click: rows.click[i]!, watchS: rows.watchS[i]!, at: i };
  }
  return undefined;
}

const opts = { spec, featureSpecHash: HASH, waitMs: W, nowMs: T0 + 10 * W };

t.test('click and watch join by request id and video; watch is the largest progress', async (t) => {
  const reqs = [request('a', 1, T0, [10, 11, 12])];
  const evs = [
    event(EventType.CLICK, 'a', 1, 11, T0 + 1000),
    event(EventType.WATCH, 'a', 1, 11, T0 + 2000, 30),
    event(EventType.WATCH, 'a', 1, 11, T0 + 3000, 80),
    event(EventType.WATCH, 'a', 1, 11, T0 + 4000, 50),
    event(EventType.WATCH, 'a', 1, 12, T0 + 4000, 7),
    // Same user and video but another (unlogged) request: labels nothing.
    event(EventType.CLICK, 'z', 1, 10, T0 + 1000),
    // The request, but a video it did not serve.
    event(EventType.CLICK, 'a', 1, 99, T0 + 1000),
  ];
  const { rows, counts } = joinLabels(reqs, evs, { ...opts, eventsThroughMs: T0 + 10 * W });
  t.equal(rows.count, 3);
  t.same(labelOf(rows, 'a', 11), { click: 1, watchS: 80, at: 1 });
  t.same(labelOf(rows, 'a', 12), { click: 0, watchS: 7, at: 2 });
  t.same(labelOf(rows, 'a', 10), { click: 0, watchS: 0, at: 0 }, 'a click of another request id does not label this one');
  t.equal(counts.clicked, 1);
  t.equal(counts.watched, 2);
  t.equal(counts.eventsByRequestId, 5);
  t.equal(counts.unmatchedEvents, 2);
  t.equal(counts.heldBack, 0);
});

t.test('rows whose window has not closed are held back, not negatives', async (t) => {
  const reqs = [request('old', 1, T0, [10, 11]), request('new', 2, T0 + W, [20, 21, 22])];
  const evs = [event(EventType.CLICK, 'new', 2, 21, T0 + W + 500)];
  // now = the new request's servedAt + W - 1: its window is open.
  const open = joinLabels(reqs, evs, { ...opts, nowMs: T0 + 2 * W - 1, eventsThroughMs: T0 + 2 * W - 1 });
  t.equal(open.counts.joined, 2, 'only the old request joins');
  t.equal(open.counts.heldBack, 3);
  t.equal(open.counts.heldBackRequests, 1);
  t.equal(labelOf(open.rows, 'new', 21), undefined, 'the clicked row is not there as a negative either');
  // One ms later the window closes and the click counts.
  const closed = joinLabels(reqs, evs, { ...opts, nowMs: T0 + 2 * W, eventsThroughMs: T0 + 2 * W });
  t.equal(closed.counts.heldBack, 0);
  t.equal(labelOf(closed.rows, 'new', 21)?.click, 1);
  // The events' reach bounds the watermark too: a late wall clock does not close a window the events have not reached.
  const behind = joinLabels(reqs, evs, { ...opts, nowMs: T0 + 5 * W, eventsThroughMs: T0 + 2 * W - 1 });
  t.equal(behind.counts.watermarkMs, T0 + 2 * W - 1);
  t.equal(behind.counts.heldBack, 3);
  // Without eventsThroughMs the newest event's storage time is the watermark.
  const byEvent = joinLabels(reqs, evs, { ...opts, nowMs: T0 + 5 * W });
  t.equal(byEvent.counts.watermarkMs, T0 + W + 500);
  t.equal(byEvent.counts.heldBack, 3);
  t.equal(byEvent.counts.joined, 2);
});

t.test('events after the window or the watermark do not label', async (t) => {
  const reqs = [request('a', 1, T0, [10, 11])];
  const evs = [event(EventType.CLICK, 'a', 1, 10, T0 + W + 1), event(EventType.CLICK, 'a', 1, 11, T0 + W)];
  const r = joinLabels(reqs, evs, { ...opts, eventsThroughMs: T0 + 3 * W });
  t.equal(labelOf(r.rows, 'a', 10)?.click, 0, 'a click stored after the window closed is late');
  t.equal(labelOf(r.rows, 'a', 11)?.click, 1, 'a click stored as the window closes counts');
  t.equal(r.counts.lateEvents, 1);
  const asOf = joinLabels(reqs, evs, { ...opts, nowMs: T0 + W, eventsThroughMs: T0 + 3 * W });
  t.equal(asOf.counts.joined, 2);
  t.equal(asOf.counts.eventsAfterWatermark, 1, 'an event stored after "now" is ignored');
});

t.test('a request id logged twice counts once: the latest message', async (t) => {
  const first = request('dup', 1, T0, [10, 11]);
  const again = request('dup', 1, T0 + 100, [11, 12, 13]);
  const evs = [event(EventType.CLICK, 'dup', 1, 12, T0 + 200), event(EventType.CLICK, 'dup', 1, 10, T0 + 200)];
  for (const order of [[first, again], [again, first]]) {
    const { rows, counts } = joinLabels(order, evs, { ...opts, eventsThroughMs: T0 + 3 * W });
    t.equal(rows.count, 3, 'the rows of one message');
    t.same([...rows.videoId], [11, 12, 13]);
    t.equal(counts.duplicateRequests, 1);
    t.equal(counts.duplicateRows, 2);
    t.equal(labelOf(rows, 'dup', 12)?.click, 1);
    t.equal(counts.unmatchedEvents, 1, 'a click on a video only the dropped message served');
  }
});

t.test('events without a request id label the latest logged request of that user and video within the window', async (t) => {
  const reqs = [request('r1', 7, T0, [10, 11]), request('r2', 7, T0 + 1000, [10, 12]), request('r3', 8, T0, [10])];
  const evs = [
    event(EventType.CLICK, '', 7, 10, T0 + 2000),
    event(EventType.WATCH, '', 7, 10, T0 + 2500, 42),
    event(EventType.CLICK, '', 7, 11, T0 + W + 1),
    event(EventType.CLICK, '', 9, 10, T0 + 2000),
  ];
  const { rows, counts } = joinLabels(reqs, evs, { ...opts, eventsThroughMs: T0 + 3 * W });
  t.same(labelOf(rows, 'r2', 10), { click: 1, watchS: 42, at: labelOf(rows, 'r2', 10)!.at }, 'the most recent serving gets it');
  t.equal(labelOf(rows, 'r1', 10)?.click, 0, 'not the earlier one');
  t.equal(labelOf(rows, 'r3', 10)?.click, 0, 'not another user');
  t.equal(labelOf(rows, 'r1', 11)?.click, 0, 'outside the window');
  t.equal(counts.eventsByFallback, 2);
  t.equal(counts.unmatchedEvents, 2);
});

t.test('the position column holds the logged slot, written by writeRankerRow; the rest is the logged row', async (t) => {
  const r = request('p', 1, T0, [30, 31, 32], { slots: [4, 0, 9] });
  const { rows } = joinLabels([r], [], { ...opts, eventsThroughMs: T0 + 3 * W });
  t.same([...rows.slot], [0, 4, 9], 'rows in slot order');
  t.same([...rows.videoId], [31, 30, 32]);
  // Any user and item: the position column depends on the position alone.
  const user = newUserProfile(5, spec);
  user.categoryAffinity[3] = 2;
  const item = { videoId: 1, creatorId: 2, category: 3, durationS: 90, uploadTsMs: T0 - 3_600_000, impressions: 50, clicks: 4, watchRatioSum: 2, watches: 3 };
  const scratch = new Float32Array(F);
  for (let i = 0; i < rows.count; i++) {
    writeRankerRow(scratch, 0, user, item, 0.3, UNKNOWN_CONTEXT, rows.slot[i]!, T0, spec);
    t.equal(rows.features[i * F + POSITION_FEATURE_INDEX], scratch[POSITION_FEATURE_INDEX], `slot ${rows.slot[i]}`);
    const v = rows.videoId[i]!;
    for (let c = 0; c < F; c++) {
      if (c === POSITION_FEATURE_INDEX) continue;
      if (Math.abs(rows.features[i * F + c]! - (v + c / 1000)) > 1e-3) {
        t.fail(`column ${c} of video ${v} changed`);
        break;
      }
    }
  }
  t.not(rows.features[2 * F + POSITION_FEATURE_INDEX], 0, 'slot 9 is not the inference value');
});

t.test('rows of another feature spec are refused, naming both hashes, or dropped on request', async (t) => {
  const reqs = [request('a', 1, T0, [10, 11]), request('b', 1, T0 + 1, [12], { featureSpecHash: 'feedfacecafebeef', modelVersion: 'v0' })];
  t.throws(() => joinLabels(reqs, [], { ...opts, eventsThroughMs: T0 + 3 * W }), {
    code: StatusCode.FAILED_PRECONDITION,
    message: new RegExp(`model v0.*featureSpecHash feedfacecafebeef.*featureSpecHash ${HASH}`),
  });
  const wide = [request('c', 1, T0, [10], { width: F + 1 })];
  t.throws(() => joinLabels(wide, [], { ...opts, eventsThroughMs: T0 + 3 * W }), { code: StatusCode.FAILED_PRECONDITION, message: new RegExp(`width ${F + 1}`) });
  const { rows, counts } = joinLabels(reqs, [], { ...opts, eventsThroughMs: T0 + 3 * W, skipOtherSpecs: true });
  t.equal(rows.count, 2);
  t.equal(counts.otherSpecRows, 1);
  t.same(counts.otherSpecs[0]?.modelVersions, ['v0']);
});

t.test('rows come out in serving-time order; the time split cuts between requests and refuses too few rows', async (t) => {
  const reqs: ServedRequest[] = [];
  for (let i = 0; i < 100; i++) reqs.push(request(`q${i}`, i, T0 + (i * 7919) % 100 * 1000, [1, 2, 3, 4, 5, 6, 7]));
  const { rows } = joinLabels(reqs, [], { ...opts, eventsThroughMs: T0 + 3 * W });
  for (let i = 1; i < rows.count; i++) if (rows.servedAtMs[i]! < rows.servedAtMs[i - 1]!) t.fail(`row ${i} out of order`);
  const s = timeSplit(rows, { minSplitRows: 50 });
  t.equal(s.train.start, 0);
  t.equal(s.test.end, 700);
  t.ok(s.train.end >= 560 && s.train.end < 567, `train ends at a request boundary near 80% (${s.train.end})`);
  for (const cut of [s.train.end, s.valid.end]) t.not(rows.request[cut], rows.request[cut - 1], `cut ${cut} between requests`);
  t.ok(rows.servedAtMs[s.test.start - 1]! <= rows.servedAtMs[s.test.start]!, 'test rows are the latest');
  t.throws(() => timeSplit(rows, { minSplitRows: 100 }), { code: StatusCode.FAILED_PRECONDITION, message: /needs at least 100/ });
  t.throws(() => timeSplit(rows, { validShare: 0.5, testShare: 0.5 }), TypeError);
  t.throws(() => timeSplit(rows, { testShare: 0 }), TypeError);
});

t.test('rows the user never saw are dropped once impressions are logged; a click implies a view', async (t) => {
  // Video 20 shown (impression), 21 clicked with no impression logged, 22 never reached.
  const reqs = [request('s', 5, T0, [20, 21, 22]), request('u', 6, T0 + 1, [30, 31])];
  // Events are complete well past every window.
  const closedOpts = { ...opts, eventsThroughMs: T0 + 5 * W };
  const evs = [event(EventType.IMPRESSION, 's', 5, 20, T0 + 100), event(EventType.CLICK, 's', 5, 21, T0 + 200)];
  const auto = joinLabels(reqs, evs, closedOpts);
  t.equal(auto.counts.requireImpression, true, "'auto' turns on when an impression matched");
  t.equal(auto.counts.impressions, 1);
  t.ok(labelOf(auto.rows, 's', 20), 'seen row kept (a negative)');
  t.equal(labelOf(auto.rows, 's', 20)?.click, 0);
  t.equal(labelOf(auto.rows, 's', 21)?.click, 1, 'clicked row kept');
  t.equal(labelOf(auto.rows, 's', 22), undefined, 'unseen row dropped');
  t.equal(labelOf(auto.rows, 'u', 30), undefined, 'a request with nothing seen is dropped whole');
  t.equal(auto.counts.unseenRows, 3);
  t.equal(auto.counts.joined, 2);
  t.equal(auto.counts.joinedRequests, 1);
  t.equal(auto.counts.unmatchedEvents, 0, 'impressions are not counted as unmatched label events');

  const all = joinLabels(reqs, evs, { ...closedOpts, requireImpression: false });
  t.equal(all.counts.joined, 5, 'off: every served row is an example');
  t.equal(all.counts.unseenRows, 0);

  const none = joinLabels(reqs, [event(EventType.CLICK, 's', 5, 21, T0 + 200)], closedOpts);
  t.equal(none.counts.requireImpression, false, "'auto' stays off when no impression is logged");
  t.equal(none.counts.joined, 5);
});

t.test('loggedEventFilter keeps exactly the events the join could use', async (t) => {
  const reqs = [request('k1', 5, T0, [20, 21]), request('', 6, T0, [30])];
  const keep = loggedEventFilter(reqs);
  t.ok(keep({ requestId: 'k1', userId: 5, videoId: 99 }), 'a logged request id (the join checks the video)');
  t.notOk(keep({ requestId: 'other', userId: 5, videoId: 20 }), 'a request id the log does not hold labels nothing');
  t.ok(keep({ requestId: '', userId: 6, videoId: 30 }), 'no request id: a (user, video) a logged request served');
  t.ok(keep({ requestId: '', userId: 5, videoId: 21 }), 'also from a request that has an id');
  t.notOk(keep({ requestId: '', userId: 6, videoId: 31 }), 'no request id and a pair no logged request served');
  // Filtering first changes nothing in the join.
  const evs = [
    event(EventType.CLICK, 'k1', 5, 20, T0 + 100),
    event(EventType.CLICK, 'other', 5, 20, T0 + 100),
    event(EventType.WATCH, '', 6, 30, T0 + 200, 12),
    event(EventType.CLICK, '', 6, 31, T0 + 200),
  ];
  const closed = { ...opts, eventsThroughMs: T0 + 5 * W };
  const all = joinLabels(reqs, evs, closed);
  const kept = joinLabels(reqs, evs.filter((e) => keep(e.event)), closed);
  t.same(kept.rows, all.rows, 'the same labelled rows');
  t.equal(all.counts.unmatchedEvents - kept.counts.unmatchedEvents, 2, 'only the unmatched ones were dropped');
});
