/**
 * isEngagement restates the rule inside applyEventToUser (which cannot call it: its source is part
 * of the feature-spec hash). The two must agree for every event type, or the profile store would
 * skip list updates that applyEventToUser makes.
 */
import t from 'tap';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { DEFAULT_FEATURE_SPEC as spec } from '../../core/features/spec.js';
import { specHash } from '../../core/features/index.js';
import { applyEventToUser, isEngagement, newUserProfile } from '../../core/features/user.js';

t.test('isEngagement agrees with what applyEventToUser does to the lists', async (t) => {
  let checked = 0;
  for (const type of Object.values(EventType).filter((v): v is EventType => typeof v === 'number')) {
    for (const watchSeconds of [-1, 0, 0.01, 12]) {
      const e: InteractionEvent = { eventId: 'e', userId: 1, videoId: 42, type, tsMs: 1, position: 0, watchSeconds, context: { device: 'ios', country: 'US', localHour: 1 }, surface: 'home', requestId: '' };
      const p = newUserProfile(1, spec);
      applyEventToUser(p, e, { category: 3, creatorId: 9 }, spec);
      const touched = p.recentVideoIds.length > 0 || p.categoryAffinity.some((x) => x !== 0);
      t.equal(isEngagement(e), touched, `type ${EventType[type]}, watchSeconds ${watchSeconds}`);
      checked++;
    }
  }
  t.ok(checked >= 20, `${checked} cases`);
});

t.test('the feature-spec hash the shipped models were trained under', async (t) => {
  // models/local-…-eb07a59b270d and the default world's versions carry this hash: a change to a
  // feature transform's source refuses them all (retrain), so it must be deliberate.
  t.equal(specHash(spec).slice(0, 12), 'eb07a59b270d');
});
