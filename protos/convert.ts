/**
 * Conversions between wire messages (protos/codec.ts) and the domain types of core/. Kept beside
 * the codecs so every actor converts the same way.
 */
import type { InteractionEvent, RequestContext } from '../core/events.js';
import { UNKNOWN_CONTEXT } from '../core/events.js';
import type { ItemFeatures } from '../core/features/item.js';
import type { UserView } from '../core/features/towers.js';
import type { StatusObject } from '../core/status.js';
import type { CandidateBatchMsg, ContextMsg, InteractionEventMsg, StatusMsg, UserStateReplyMsg } from './codec.js';

export function emptyCandidateBatch(): CandidateBatchMsg {
  return {
    videoIds: [],
    scores: [],
    creatorIds: [],
    categories: [],
    durationS: [],
    uploadTsMs: [],
    impressions: [],
    clicks: [],
    watches: [],
    watchRatioSums: [],
  };
}

/** Appends one candidate (features + retrieval score) to a columnar batch. */
export function pushCandidate(batch: CandidateBatchMsg, item: ItemFeatures, score: number): void {
  batch.videoIds.push(item.videoId);
  batch.scores.push(score);
  batch.creatorIds.push(item.creatorId);
  batch.categories.push(item.category);
  batch.durationS.push(item.durationS);
  batch.uploadTsMs.push(item.uploadTsMs);
  batch.impressions.push(item.impressions);
  batch.clicks.push(item.clicks);
  batch.watches.push(item.watches);
  batch.watchRatioSums.push(item.watchRatioSum);
}

/** ItemFeatures with writable fields: a scratch record that {@link candidateInto} refills. */
export type MutableItemFeatures = { -readonly [K in keyof ItemFeatures]: ItemFeatures[K] };

/** A zeroed record for {@link candidateInto} to fill. */
export function blankItemFeatures(): MutableItemFeatures {
  return { videoId: 0, creatorId: 0, category: 0, durationS: 0, uploadTsMs: 0, impressions: 0, clicks: 0, watches: 0, watchRatioSum: 0 };
}

/** Candidate `i` of a columnar batch as ItemFeatures (a new object). */
export function candidateAt(batch: CandidateBatchMsg, i: number): ItemFeatures {
  return candidateInto(batch, i, blankItemFeatures());
}

/**
 * Candidate `i` of a columnar batch written into `out` (returned): the hot path reads hundreds of
 * candidates per request, and refilling one record avoids an object per candidate.
 */
export function candidateInto(batch: CandidateBatchMsg, i: number, out: MutableItemFeatures): MutableItemFeatures {
  out.videoId = batch.videoIds[i] ?? 0;
  out.creatorId = batch.creatorIds[i] ?? 0;
  out.category = batch.categories[i] ?? 0;
  out.durationS = batch.durationS[i] ?? 0;
  out.uploadTsMs = batch.uploadTsMs[i] ?? 0;
  out.impressions = batch.impressions[i] ?? 0;
  out.clicks = batch.clicks[i] ?? 0;
  out.watches = batch.watches[i] ?? 0;
  out.watchRatioSum = batch.watchRatioSums[i] ?? 0;
  return out;
}

export function contextFromMsg(ctx: ContextMsg | null | undefined): RequestContext {
  if (!ctx) return UNKNOWN_CONTEXT;
  return { device: ctx.device || 'unknown', country: ctx.country || '', localHour: ctx.localHour ?? 12 };
}

export function contextToMsg(ctx: RequestContext): ContextMsg {
  return { device: ctx.device, country: ctx.country, localHour: ctx.localHour };
}

/** The UserView (features' input) carried by a user-state reply. */
export function userViewFromReply(reply: UserStateReplyMsg, numCategories: number): UserView {
  const aff = new Float32Array(numCategories);
  aff.set(reply.categoryAffinity.slice(0, numCategories));
  return {
    userId: reply.userId,
    recentVideoIds: reply.recentVideoIds,
    recentCreatorIds: reply.recentCreatorIds,
    categoryAffinity: aff,
    impressions: reply.impressions,
    clicks: reply.clicks,
    watches: reply.watches,
    watchSeconds: reply.watchSeconds,
  };
}

export function statusToMsg(status: StatusObject): StatusMsg {
  return status.details === undefined
    ? { code: status.code, message: status.message }
    : { code: status.code, message: status.message, details: status.details };
}

export function eventToMsg(e: InteractionEvent): InteractionEventMsg {
  return {
    eventId: e.eventId,
    userId: e.userId,
    videoId: e.videoId,
    type: e.type,
    tsMs: e.tsMs,
    position: e.position,
    watchSeconds: e.watchSeconds,
    context: contextToMsg(e.context),
    surface: e.surface,
    requestId: e.requestId,
  };
}

export function eventFromMsg(m: InteractionEventMsg): InteractionEvent {
  return {
    eventId: m.eventId,
    userId: m.userId,
    videoId: m.videoId,
    type: m.type,
    tsMs: m.tsMs,
    position: m.position,
    watchSeconds: m.watchSeconds,
    context: contextFromMsg(m.context),
    surface: m.surface,
    requestId: m.requestId,
  };
}
