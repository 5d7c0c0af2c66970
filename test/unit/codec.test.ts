import t from 'tap';
import { Codecs } from '../../protos/codec.js';
import { candidateAt, emptyCandidateBatch, pushCandidate } from '../../protos/convert.js';

t.test('candidate batch round-trips ids above 2^32 as plain numbers', async (t) => {
  const batch = emptyCandidateBatch();
  const item = {
    videoId: 2 ** 40 + 3, creatorId: 7, category: 5, durationS: 30, uploadTsMs: 1_700_000_000_000,
    impressions: 10, clicks: 2, watches: 1, watchRatioSum: 0.5,
  };
  pushCandidate(batch, item, 0.25);
  const bytes = Codecs.shardSearchReply.encode({ shard: 1, candidates: batch, shardSize: 9, searchMs: 0.5 });
  const back = Codecs.shardSearchReply.decode(bytes);
  t.equal(back.shard, 1);
  t.ok(back.candidates);
  t.same(candidateAt(back.candidates!, 0), item);
  t.equal(typeof back.candidates!.videoIds[0], 'number');
  t.equal(back.candidates!.scores[0], 0.25);
});

t.test('absent fields decode to proto3 defaults', async (t) => {
  const back = Codecs.userStateReply.decode(Codecs.userStateReply.encode({} as never));
  t.equal(back.known, false);
  t.same(Array.from(back.recentVideoIds), []);
  t.equal(back.userId, 0);
});
