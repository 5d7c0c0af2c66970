import t from 'tap';
import { mergeShardResults } from '../../actors/coordinator/merge.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';
import { candidateAt, emptyCandidateBatch } from '../../protos/convert.js';

/** A shard list: ids with scores (already sorted, as shards answer), category = id % 7. */
function batch(entries: [number, number][]): CandidateBatchMsg {
  const b = emptyCandidateBatch();
  for (const [id, score] of entries) {
    b.videoIds.push(id);
    b.scores.push(score);
    b.creatorIds.push(id * 10);
    b.categories.push(id % 7);
    b.durationS.push(60);
    b.uploadTsMs.push(0);
    b.impressions.push(0);
    b.clicks.push(0);
    b.watches.push(0);
    b.watchRatioSums.push(0);
  }
  return b;
}

t.test('k-way merge keeps the global score order and the shard of each candidate', async (t) => {
  const r = mergeShardResults(
    [
      { shard: 0, candidates: batch([[1, 0.9], [2, 0.5], [3, 0.1]]) },
      { shard: 1, candidates: batch([[11, 0.8], [12, 0.6], [13, 0.2]]) },
    ],
    2,
    10,
    new Set(),
  );
  t.same(r.candidates.map((c) => c.videoId), [1, 11, 12, 2, 13, 3]);
  t.same(r.candidates.map((c) => c.shard), [0, 1, 1, 0, 1, 0]);
  t.same(r.candidates.map((c) => c.score).map((s) => Math.round(s * 10) / 10), [0.9, 0.8, 0.6, 0.5, 0.2, 0.1]);
  t.equal(candidateAt(r.candidates[1]!.batch, r.candidates[1]!.at).creatorId, 110, 'item features travel with the candidate');
  t.equal(r.coverage, 1);
});

t.test('no duplicates, watched and excluded ids dropped, limit honoured', async (t) => {
  const r = mergeShardResults(
    [
      { shard: 0, candidates: batch([[1, 0.9], [2, 0.7], [5, 0.3], [6, 0.2]]) },
      { shard: 1, candidates: batch([[2, 0.8], [3, 0.6], [4, 0.4]]) },
    ],
    2,
    4,
    new Set([3, 5]),
  );
  const ids = r.candidates.map((c) => c.videoId);
  t.same(ids, [1, 2, 4, 6]);
  t.equal(new Set(ids).size, ids.length, 'distinct');
  t.equal(r.candidates[1]!.shard, 1, 'a duplicate keeps its best-scored copy');
  const limited = mergeShardResults([{ shard: 0, candidates: batch([[1, 3], [2, 2], [3, 1]]) }], 1, 2, new Set());
  t.same(limited.candidates.map((c) => c.videoId), [1, 2]);
});

t.test('coverage = shards answered / shards asked', async (t) => {
  const r = mergeShardResults([{ shard: 2, candidates: batch([[7, 1]]) }], 4, 10, new Set());
  t.equal(r.coverage, 0.25);
  t.equal(r.shardsAnswered, 1);
  t.equal(r.shardsAsked, 4);
  t.equal(mergeShardResults([], 3, 10, new Set()).coverage, 0);
  t.equal(mergeShardResults([], 0, 10, new Set()).coverage, 0);
});
