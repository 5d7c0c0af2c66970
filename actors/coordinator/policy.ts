/**
 * Product policy (DESIGN.md §4 step 5): blend the ranker's predictions into one utility, keep the head
 * of the list diverse, and reserve ~ε of the slots for exploration. Pure and deterministic: every
 * choice comes from a hash of (request id, user id), so the same request gets the same list and tests
 * need no randomness.
 */
import { HashSeeds, hashId, hashString } from '../../core/hash.js';
import type { DiversityConfig, ExplorationConfig, SurfaceWeights } from './config.js';
import type { RecommendedItem } from './types.js';
import { orderByUtility } from './utility-order.js';
import { Source } from './types.js';

/** A ranked (or retrieval-ordered) candidate as the policy sees it. */
export interface PolicyCandidate {
  readonly videoId: number;
  /** Content category (genre), for diversity. */
  readonly category: number;
  readonly shard: number;
  /** Where the candidate entered the pool. */
  readonly origin: Source.RETRIEVAL | Source.TRENDING | Source.FALLBACK;
  /** The value the list is sorted by: {@link blendUtility} when ranked, a retrieval-order score otherwise. */
  readonly utility: number;
  readonly pClick: number;
  readonly expectedWatchSeconds: number;
}

/**
 * f(E[watch]) of the blend: log1p of the expected seconds, normalised so `watchNormS` maps to 1 and
 * capped there. log1p because watch time is heavy-tailed: a 40-minute video should not outweigh
 * every click signal, and the ranker predicts log1p(seconds) anyway. Result in [0, 1].
 */
export function watchValue(expectedWatchSeconds: number, watchNormS: number): number {
  const w = Number.isFinite(expectedWatchSeconds) ? Math.max(0, expectedWatchSeconds) : 0;
  return Math.min(1, Math.log1p(w) / Math.log1p(watchNormS));
}

/**
 * Expected share of the video watched: E[watch seconds] / duration, capped at 1; 0 when the
 * duration is unknown. The ranker's watch head predicts seconds over every impression (0 when not
 * clicked), so this is "how much of it will be watched when shown" — the completion side of the
 * blend, which seconds alone do not reward (a long video wins on seconds even when few finish it).
 */
export function completionValue(expectedWatchSeconds: number, durationS: number): number {
  if (!(durationS > 0) || !Number.isFinite(expectedWatchSeconds)) return 0;
  return Math.min(1, Math.max(0, expectedWatchSeconds) / durationS);
}

/**
 * utility = w.click·P(click) + w.watch·f(E[watch]) + w.completion·E[watch]/duration (see
 * {@link watchValue}, {@link completionValue}).
 */
export function blendUtility(pClick: number, expectedWatchSeconds: number, w: SurfaceWeights, watchNormS: number, durationS = 0): number {
  const base = w.click * pClick + w.watch * watchValue(expectedWatchSeconds, watchNormS);
  return w.completion > 0 ? base + w.completion * completionValue(expectedWatchSeconds, durationS) : base;
}

export interface PolicyOptions {
  /** Items wanted. */
  readonly k: number;
  /** Seeds every deterministic choice together with `userId`. */
  readonly requestId: string;
  readonly userId: number;
  readonly exploration: ExplorationConfig;
  readonly diversity: DiversityConfig;
}

/** The per-request seed of every hash-based choice. */
export function policySeed(requestId: string, userId: number): number {
  return hashId(userId, hashString(requestId, HashSeeds.POLICY));
}

const TWO_32 = 4294967296;
const EXPLORE_SALT = 0x3c6ef372;
const PICK_SALT = 0x1b873593;

/** Slots (indices < k) that are exploration slots for this request seed. */
export function explorationSlots(seed: number, k: number, cfg: ExplorationConfig): boolean[] {
  const out = new Array<boolean>(k).fill(false);
  if (cfg.epsilon <= 0) return out;
  for (let i = cfg.protectedTopSlots; i < k; i++) out[i] = hashId(i, (seed ^ EXPLORE_SALT) >>> 0) / TWO_32 < cfg.epsilon;
  return out;
}

/**
 * Utility order with a per-request hash as the tie-break, then a greedy pass over the head: at most
 * `maxPerCategory` items of one category in the first `window` slots while other categories remain;
 * items pushed out keep their relative order right after the window.
 */
export function diversify(candidates: readonly PolicyCandidate[], seed: number, cfg: DiversityConfig): PolicyCandidate[] {
  const sorted = orderByUtility(candidates, seed);
  if (cfg.window <= 0) return sorted;
  const head: PolicyCandidate[] = [];
  const deferred: PolicyCandidate[] = [];
  const perCategory = new Map<number, number>();
  let i = 0;
  for (; i < sorted.length && head.length < cfg.window; i++) {
    const c = sorted[i]!;
    const n = perCategory.get(c.category) ?? 0;
    if (n >= cfg.maxPerCategory) {
      deferred.push(c);
      continue;
    }
    perCategory.set(c.category, n + 1);
    head.push(c);
  }
  // Candidates ran out of fresh categories: fill the head with the best of the deferred.
  while (head.length < cfg.window && deferred.length > 0) head.push(deferred.shift()!);
  return [...head, ...deferred, ...sorted.slice(i)];
}

/**
 * The final list: up to `k` items (fewer only when there are fewer candidates), distinct, with
 * exploration slots filled from outside the top `k` ranks (trending candidates first: they carry
 * fresh and cold-start items), sources tagged. The list score is the item's utility raised to the
 * score of the item below it when the policy moved it up, so scores are non-increasing down the list.
 */
export function applyPolicy(candidates: readonly PolicyCandidate[], opts: PolicyOptions): RecommendedItem[] {
  const seed = policySeed(opts.requestId, opts.userId);
  const order = diversify(candidates, seed, opts.diversity);
  const n = Math.min(opts.k, order.length);
  const explore = explorationSlots(seed, n, opts.exploration);
  // Exploration draws from below the exploit head: trending first, then lower ranks.
  const pool = order.slice(n);
  const trendingPool = pool.filter((c) => c.origin === Source.TRENDING);
  const lowerPool = pool.filter((c) => c.origin !== Source.TRENDING);
  const picked: { c: PolicyCandidate; source: Source }[] = [];
  let next = 0;
  for (let slot = 0; slot < n; slot++) {
    const from = trendingPool.length > 0 ? trendingPool : lowerPool;
    if (explore[slot] === true && from.length > 0) {
      const at = hashId(slot, (seed ^ PICK_SALT) >>> 0) % from.length;
      const [c] = from.splice(at, 1);
      picked.push({ c: c!, source: Source.EXPLORATION });
      continue;
    }
    const c = order[next++]!;
    picked.push({ c, source: c.origin });
  }
  const out = new Array<RecommendedItem>(picked.length);
  let below = -Infinity;
  for (let i = picked.length - 1; i >= 0; i--) {
    const { c, source } = picked[i]!;
    const score = Math.max(c.utility, below);
    below = score;
    out[i] = {
      videoId: c.videoId,
      score,
      pClick: c.pClick,
      expectedWatchSeconds: c.expectedWatchSeconds,
      source,
      shard: c.shard,
    };
  }
  return out;
}
