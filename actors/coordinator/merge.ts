/**
 * Gather step of retrieval: merges the item shards' top-k' lists (each sorted by score, best first)
 * into one global top-N with no duplicates, dropping already-watched and excluded ids. Scores from
 * different shards are comparable (inner products with the same user vector), so a k-way merge by
 * score is the global order. Pure: no I/O.
 */
import type { CandidateBatchMsg } from '../../protos/codec.js';

/** One shard's answer as the merge sees it. */
export interface ShardCandidates {
  readonly shard: number;
  /** Columnar candidates, best first. */
  readonly candidates: CandidateBatchMsg;
}

/**
 * A retrieval candidate after the merge: a reference into its shard's columnar batch (read it with
 * candidateAt / candidateInto), not a copy, so the merge allocates nothing per candidate.
 */
export interface MergedCandidate {
  readonly batch: CandidateBatchMsg;
  /** Index of the candidate in `batch`. */
  readonly at: number;
  readonly videoId: number;
  /** Retrieval score (inner product with the user vector). */
  readonly score: number;
  /** Item shard that returned it. */
  readonly shard: number;
}

export interface MergeResult {
  /** Best first, at most `limit`, distinct, none in `drop`. */
  readonly candidates: MergedCandidate[];
  /** Shards answered / shards asked, 0..1 (0 when none were asked). */
  readonly coverage: number;
  readonly shardsAnswered: number;
  readonly shardsAsked: number;
}

/**
 * Merges `answered` shard lists into the global top-`limit`. `drop` holds ids never to return (the
 * user's recent watches and the request's excludes); `shardsAsked` is how many shards were asked,
 * answered or not. Ties keep the lower shard first, so the result is deterministic.
 */
export function mergeShardResults(
  answered: readonly ShardCandidates[],
  shardsAsked: number,
  limit: number,
  drop: ReadonlySet<number>,
): MergeResult {
  const lists = [...answered].sort((a, b) => a.shard - b.shard);
  const heads = new Array<number>(lists.length).fill(0);
  const seen = new Set<number>();
  const out: MergedCandidate[] = [];
  while (out.length < limit) {
    // S is small (1..8 shards by design), so a linear scan of the heads beats a heap.
    let best = -1;
    let bestScore = -Infinity;
    for (let l = 0; l < lists.length; l++) {
      const batch = lists[l]!.candidates;
      const h = heads[l]!;
      if (h >= batch.videoIds.length) continue;
      const score = batch.scores[h] ?? -Infinity;
      if (best < 0 || score > bestScore) {
        best = l;
        bestScore = score;
      }
    }
    if (best < 0) break;
    const list = lists[best]!;
    const at = heads[best]!;
    heads[best] = at + 1;
    const id = list.candidates.videoIds[at]!;
    if (seen.has(id) || drop.has(id)) continue;
    seen.add(id);
    out.push({ batch: list.candidates, at, videoId: id, score: bestScore, shard: list.shard });
  }
  return {
    candidates: out,
    coverage: shardsAsked > 0 ? answered.length / shardsAsked : 0,
    shardsAnswered: answered.length,
    shardsAsked,
  };
}
