import t from 'tap';
import { StatusCode, UpnextError } from '../../core/status.js';
import { EventType } from '../../core/events.js';
import { Limits, parseId, validateLogEventsRequest, validateRecommendRequest } from '../../actors/coordinator/validate.js';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';

/** Runs `fn` and returns what it threw (undefined when it did not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Expects INVALID_ARGUMENT naming `field` (in details and in the message). */
function invalidField(assert: { ok(v: unknown, m: string): void; match(v: unknown, p: unknown, m: string): void }, fn: () => unknown, field: string): void {
  const err = thrown(fn);
  assert.ok(err instanceof UpnextError, `${field}: an UpnextError`);
  assert.match(err, { code: StatusCode.INVALID_ARGUMENT, details: field, message: field }, `INVALID_ARGUMENT naming ${field}`);
}

const ok = { userId: '42', k: 10, context: { device: 'ios', country: 'br', localHour: 9 }, surface: 'home', excludeVideoIds: ['1', '2'] };

t.test('a valid request becomes a typed query', async (t) => {
  const q = validateRecommendRequest(ok, () => 'generated');
  t.equal(q.userId, 42);
  t.equal(q.k, 10);
  t.same(q.excludeVideoIds, [1, 2]);
  t.same(q.context, { device: 'ios', country: 'BR', localHour: 9 });
  t.equal(q.requestId, 'generated', 'generated when empty');
  t.equal(validateRecommendRequest({ ...ok, requestId: 'abc' }).requestId, 'abc', 'echoed when set');
  t.equal(validateRecommendRequest({ ...ok, userId: '9007199254740991' }).userId, Number.MAX_SAFE_INTEGER, '2^53-1 is fine');
  t.same(validateRecommendRequest({ k: 1 }).context, { device: 'unknown', country: '', localHour: 12 }, 'no context');
});

t.test('every limit names its field', async (t) => {
  invalidField(t, () => validateRecommendRequest({ ...ok, k: 0 }), 'k');
  invalidField(t, () => validateRecommendRequest({ ...ok, k: Limits.maxK + 1 }), 'k');
  invalidField(t, () => validateRecommendRequest({ ...ok, userId: '9007199254740992' }), 'user_id');
  invalidField(t, () => validateRecommendRequest({ ...ok, userId: '18446744073709551615' }), 'user_id');
  invalidField(t, () => validateRecommendRequest({ ...ok, userId: 'x1' }), 'user_id');
  invalidField(
    t,
    () => validateRecommendRequest({ ...ok, excludeVideoIds: Array.from({ length: Limits.maxExcludeIds + 1 }, (_, i) => String(i)) }),
    'exclude_video_ids',
  );
  invalidField(t, () => validateRecommendRequest({ ...ok, excludeVideoIds: ['1', '9007199254740993'] }), 'exclude_video_ids[1]');
  invalidField(t, () => validateRecommendRequest({ ...ok, context: { localHour: 24 } }), 'context.local_hour');
  invalidField(t, () => validateRecommendRequest({ ...ok, surface: 's'.repeat(Limits.maxSurfaceChars + 1) }), 'surface');
  invalidField(t, () => validateRecommendRequest({ ...ok, requestId: 'r'.repeat(Limits.maxIdStringChars + 1) }), 'request_id');
  t.equal(parseId('x', 'not checked'.length), 11);
});

const event = { eventId: 'e1', userId: '1', videoId: '2', type: 'WATCH', tsMs: '0', position: 3, watchSeconds: 12.5 };

t.test('LogEvents validation', async (t) => {
  const [e] = validateLogEventsRequest({ events: [event] }, 1_000);
  t.equal(e!.type, EventType.WATCH);
  t.equal(e!.tsMs, 1_000, 'ts_ms 0 means now');
  t.equal(e!.watchSeconds, 12.5);
  t.equal(validateLogEventsRequest({ events: [{ ...event, type: 2, tsMs: '77' }] }, 1)[0]!.tsMs, 77);
  invalidField(t, () => validateLogEventsRequest({ events: [] }, 1), 'events');
  invalidField(t, () => validateLogEventsRequest({ events: Array.from({ length: Limits.maxEventsPerCall + 1 }, () => event) }, 1), 'events');
  invalidField(t, () => validateLogEventsRequest({ events: [event, { ...event, watchSeconds: -1 }] }, 1), 'events[1].watch_seconds');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, type: 0 }] }, 1), 'events[0].type');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, type: 9 }] }, 1), 'events[0].type');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, eventId: '' }] }, 1), 'events[0].event_id');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, videoId: '9007199254740992' }] }, 1), 'events[0].video_id');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, userId: '-1' }] }, 1), 'events[0].user_id');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, tsMs: '-5' }] }, 1), 'events[0].ts_ms');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, tsMs: String(1_000 + 86_400_001) }] }, 1_000), 'events[0].ts_ms');
  t.equal(validateLogEventsRequest({ events: [{ ...event, tsMs: String(1_000 + 86_400_000) }] }, 1_000)[0]!.tsMs, 1_000 + 86_400_000, 'a day ahead is accepted');
  invalidField(t, () => validateLogEventsRequest({ events: [{ ...event, context: { localHour: 30 } }] }, 1), 'events[0].context.local_hour');
});

t.test('coordinator options: defaults, then a TypeError naming the bad option', async (t) => {
  const cfg = resolveCoordinatorConfig();
  t.equal(cfg.budgets.userStateMs, 20);
  t.equal(cfg.budgets.retrievalMs, 30);
  t.equal(cfg.budgets.rankingMs, 40);
  t.equal(cfg.budgets.policyMs, 2);
  t.equal(cfg.defaultDeadlineMs, 150);
  t.equal(cfg.perShardK, 200);
  t.equal(resolveCoordinatorConfig({ surfaces: { kids: { click: 1, watch: 0 } } }).surfaces.default.click, 0.5, 'default surface kept');
  t.throws(() => resolveCoordinatorConfig({ budgets: { rankingMs: 0 } }), { name: 'TypeError', message: /budgets\.rankingMs/ });
  t.throws(() => resolveCoordinatorConfig({ perShardK: 0 }), { name: 'TypeError', message: /perShardK/ });
  t.throws(() => resolveCoordinatorConfig({ exploration: { epsilon: 2 } }), { name: 'TypeError', message: /exploration\.epsilon/ });
  t.throws(() => resolveCoordinatorConfig({ surfaces: { home: { click: -1, watch: 1 } } }), { name: 'TypeError', message: /surfaces\.home\.click/ });
  t.throws(() => resolveCoordinatorConfig({ admission: { maxConcurrent: 1.5 } }), { name: 'TypeError', message: /admission\.maxConcurrent/ });
  t.throws(() => resolveCoordinatorConfig({ auth: { token: '' } }), { name: 'TypeError', message: /auth\.token/ });
});
