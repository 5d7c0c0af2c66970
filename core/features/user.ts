import type { InteractionEvent } from '../events.js';
import { EventType } from '../events.js';
import type { FeatureSpec } from './spec.js';

/**
 * Real-time state of one user, owned by the user-state actor and rebuilt offline by replaying logs
 * through {@link applyEventToUser}: the same code on both sides.
 */
export interface UserProfile {
  readonly userId: number;
  /** Recently watched (clicked or watched) video ids, oldest first, at most `recentLimit`. */
  recentVideoIds: number[];
  /** Creator of each entry in `recentVideoIds` (same order). */
  recentCreatorIds: number[];
  /** Exponentially decayed count of engagements per category (length numCategories). */
  categoryAffinity: Float32Array;
  impressions: number;
  clicks: number;
  watches: number;
  watchSeconds: number;
  /** Epoch ms of the last applied event; 0 when none. */
  lastEventMs: number;
}

/** How many recent watches a profile keeps (for the user tower and the already-watched filter). */
export const RECENT_LIMIT = 100;

export function newUserProfile(userId: number, spec: FeatureSpec): UserProfile {
  return {
    userId,
    recentVideoIds: [],
    recentCreatorIds: [],
    categoryAffinity: new Float32Array(spec.numCategories),
    impressions: 0,
    clicks: 0,
    watches: 0,
    watchSeconds: 0,
    lastEventMs: 0,
  };
}

/** What the profile needs to know about the event's video. */
export interface EventItemInfo {
  readonly category: number;
  readonly creatorId: number;
}

/**
 * Applies one event to a profile (mutates it). A CLICK or a WATCH of more than 0 s counts as an
 * engagement: the video joins the recent list once (a repeat moves it to the end) and its category's
 * affinity rises by 1 after decaying all categories by one half-life step. `item` is undefined for
 * videos the caller does not know; such events still move the counters.
 */
export function applyEventToUser(
  profile: UserProfile,
  event: InteractionEvent,
  item: EventItemInfo | undefined,
  spec: FeatureSpec,
): void {
  profile.lastEventMs = Math.max(profile.lastEventMs, event.tsMs);
  let engaged = false;
  switch (event.type) {
    case EventType.IMPRESSION:
      profile.impressions += 1;
      break;
    case EventType.CLICK:
      profile.clicks += 1;
      engaged = true;
      break;
    case EventType.WATCH:
      profile.watches += 1;
      profile.watchSeconds += Math.max(0, event.watchSeconds);
      engaged = event.watchSeconds > 0;
      break;
    case EventType.LIKE:
    case EventType.SKIP:
      break;
  }
  if (!engaged) return;
  const existing = profile.recentVideoIds.lastIndexOf(event.videoId);
  if (existing >= 0) {
    profile.recentVideoIds.splice(existing, 1);
    profile.recentCreatorIds.splice(existing, 1);
  }
  profile.recentVideoIds.push(event.videoId);
  profile.recentCreatorIds.push(item?.creatorId ?? -1);
  if (profile.recentVideoIds.length > RECENT_LIMIT) {
    profile.recentVideoIds.shift();
    profile.recentCreatorIds.shift();
  }
  if (item !== undefined && item.category >= 0 && item.category < spec.numCategories) {
    const decay = Math.pow(0.5, 1 / spec.affinityHalfLifeEvents);
    const aff = profile.categoryAffinity;
    for (let c = 0; c < aff.length; c++) aff[c] = (aff[c] ?? 0) * decay;
    aff[item.category] = (aff[item.category] ?? 0) + 1;
  }
}

/**
 * Whether {@link applyEventToUser} treats `event` as an engagement (a CLICK, or a WATCH of more than
 * 0 s): only those touch the recent lists and the category affinities; every other event moves
 * counters only (actors/user-state/profile-store.ts skips the lists for them). It restates the
 * rule inside applyEventToUser rather than being called from it, because applyEventToUser's source
 * is part of the feature-spec hash and a rewrite would refuse every trained model;
 * test/unit/features-user.test.ts checks the two agree for every event type.
 */
export function isEngagement(event: InteractionEvent): boolean {
  return event.type === EventType.CLICK || (event.type === EventType.WATCH && event.watchSeconds > 0);
}

/** Share of the features that had real data (0 = brand-new user, 1 = full history). */
export function userFeatureCompleteness(profile: UserProfile, spec: FeatureSpec): number {
  const history = Math.min(1, profile.recentVideoIds.length / spec.historyLength);
  const counters = profile.impressions > 0 ? 1 : 0;
  return 0.7 * history + 0.3 * counters;
}
