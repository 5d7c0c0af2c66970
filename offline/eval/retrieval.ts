/**
 * Retrieval evaluation over the FULL corpus, one rule for every world (KuaiRand's README rule):
 * positives are test-day CLICKs; each user's training-period videos (any event: the user was shown
 * them) are removed from its ranking; Recall@K is averaged over test users with ≥ 1 positive.
 * Positives the user already met in training stay in the denominator (unreachable by design), so
 * every model faces the same ceiling.
 */
import { EventType } from '../../core/events.js';
import { readEventBatches, readWorldManifest } from '../world/reader.js';
import { recallAtK } from './metrics.js';

/**
 * Ranks videos for one user, best first. `exclude` holds the user's training-period videos; a
 * recommender may skip them itself (cheaper) or not (the evaluator drops them). Return at least
 * `k` ids that are not excluded when the corpus allows. A plain `(userId) => number[]` fits.
 */
export type Recommender = (userId: number, k: number, exclude: ReadonlySet<number>) => readonly number[] | Promise<readonly number[]>;

/** The evaluation data of one world: who to ask, what counts, what to hide. */
export interface RetrievalTask {
  readonly world: string;
  /** Test users with ≥ 1 positive, ascending. */
  readonly userIds: readonly number[];
  readonly positives: ReadonlyMap<number, ReadonlySet<number>>;
  readonly exclude: ReadonlyMap<number, ReadonlySet<number>>;
}

/** Options of {@link loadRetrievalTask}. */
export interface RetrievalTaskOptions {
  /** Days whose videos are excluded per user. Default the manifest's trainDays. */
  readonly excludeDays?: readonly number[];
  /** Days whose CLICKs are positives. Default the manifest's testDays. */
  readonly positiveDays?: readonly number[];
  /** Evaluate at most this many users (the first by id); default all. */
  readonly maxUsers?: number;
}

/** Reads a world's test positives and the test users' training-period videos. */
export async function loadRetrievalTask(dir: string, opts: RetrievalTaskOptions = {}): Promise<RetrievalTask> {
  const m = await readWorldManifest(dir);
  const positives = new Map<number, Set<number>>();
  for await (const batch of readEventBatches(dir, { days: opts.positiveDays ?? m.split.testDays })) {
    for (const e of batch) {
      if (e.type !== EventType.CLICK) continue;
      let s = positives.get(e.userId);
      if (s === undefined) positives.set(e.userId, (s = new Set()));
      s.add(e.videoId);
    }
  }
  let userIds = [...positives.keys()].sort((a, b) => a - b);
  if (opts.maxUsers !== undefined && userIds.length > opts.maxUsers) {
    userIds = userIds.slice(0, opts.maxUsers);
    const keep = new Set(userIds);
    for (const u of [...positives.keys()]) if (!keep.has(u)) positives.delete(u);
  }
  const exclude = new Map<number, Set<number>>();
  for (const u of userIds) exclude.set(u, new Set());
  for await (const batch of readEventBatches(dir, { days: opts.excludeDays ?? m.split.trainDays })) {
    for (const e of batch) exclude.get(e.userId)?.add(e.videoId);
  }
  return { world: m.name, userIds, positives, exclude };
}

/** Result of {@link evaluateRetrieval}. */
export interface RetrievalResult {
  readonly recall_at_10: number;
  readonly recall_at_100: number;
  /** Users averaged over. */
  readonly users: number;
}

/**
 * Mean Recall@10 and @100 of `recommender` on `task` (or on the world directory `task`, loaded
 * with default options). Asks each user for 100 ids.
 */
export async function evaluateRetrieval(task: RetrievalTask | string, recommender: Recommender): Promise<RetrievalResult> {
  const t = typeof task === 'string' ? await loadRetrievalTask(task) : task;
  let r10 = 0;
  let r100 = 0;
  let users = 0;
  const none = new Set<number>();
  for (const userId of t.userIds) {
    const pos = t.positives.get(userId);
    if (pos === undefined || pos.size === 0) continue;
    const exclude = t.exclude.get(userId) ?? none;
    const ranked = await recommender(userId, 100, exclude);
    const kept: number[] = [];
    const seen = new Set<number>();
    for (const id of ranked) {
      if (exclude.has(id) || seen.has(id)) continue;
      seen.add(id);
      kept.push(id);
      if (kept.length === 100) break;
    }
    r10 += recallAtK(kept, pos, 10);
    r100 += recallAtK(kept, pos, 100);
    users++;
  }
  return { recall_at_10: users > 0 ? r10 / users : NaN, recall_at_100: users > 0 ? r100 / users : NaN, users };
}
