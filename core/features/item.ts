import type { InteractionEvent } from '../events.js';
import { EventType } from '../events.js';

/** Static catalogue attributes of a video (what the item tower sees). */
export interface ItemMeta {
  readonly videoId: number;
  readonly creatorId: number;
  /** 0..numCategories-1 */
  readonly category: number;
  /** Duration in seconds; 0 when unknown. */
  readonly durationS: number;
  /** Upload time, epoch ms. */
  readonly uploadTsMs: number;
}

/** Counters that move with the event stream (what the ranker sees beyond the metadata). */
export interface ItemStats {
  impressions: number;
  clicks: number;
  /** Sum over WATCH events of min(1, watchSeconds / durationS). */
  watchRatioSum: number;
  watches: number;
}

/** Everything the ranker needs about one candidate; item shards store and return this. */
export interface ItemFeatures extends ItemMeta, ItemStats {}

/**
 * Share of an item's ranker features that carry real data rather than a default, 0..1: the mean
 * of three indicators — duration known (> 0), upload time known (> 0), and interaction counters
 * (at least one impression; before that the CTR and watch-ratio features are priors only). The
 * coordinator exports its mean over ranked candidates as feature completeness (DESIGN §7).
 */
export function itemFeatureCompleteness(item: Pick<ItemFeatures, 'durationS' | 'uploadTsMs' | 'impressions'>): number {
  return ((item.durationS > 0 ? 1 : 0) + (item.uploadTsMs > 0 ? 1 : 0) + (item.impressions > 0 ? 1 : 0)) / 3;
}

export function emptyItemStats(): ItemStats {
  return { impressions: 0, clicks: 0, watchRatioSum: 0, watches: 0 };
}

/** Applies one event to an item's counters (mutates `stats`). Unknown event types are ignored. */
export function applyEventToItem(stats: ItemStats, event: InteractionEvent, durationS: number): void {
  switch (event.type) {
    case EventType.IMPRESSION:
      stats.impressions += 1;
      break;
    case EventType.CLICK:
      stats.clicks += 1;
      break;
    case EventType.WATCH:
      stats.watches += 1;
      stats.watchRatioSum += durationS > 0 ? Math.min(1, event.watchSeconds / durationS) : 0;
      break;
    case EventType.LIKE:
    case EventType.SKIP:
      break;
  }
}

/** Smoothed click-through rate with a Beta(1, 20) prior (new items start near 5%). */
export function itemCtrPrior(stats: ItemStats): number {
  return (stats.clicks + 1) / (stats.impressions + 20);
}

/** Smoothed mean watch ratio with a Beta(1, 2) prior. */
export function itemWatchRatioPrior(stats: ItemStats): number {
  return (stats.watchRatioSum + 1) / (stats.watches + 2);
}
