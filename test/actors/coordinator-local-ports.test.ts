/**
 * Local-first retrieval and user state (actors/coordinator/local-ports.ts) with fake neighbours: the
 * in-process actor answers when present and not overloaded; NATS otherwise, or once after a
 * retryable local failure; the counters say which path answered and why.
 */
import t from 'tap';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import { Deadline } from '../../core/deadline.js';
import type { RequestContext } from '../../core/events.js';
import { userPartitionOf } from '../../core/hash.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { Codecs } from '../../protos/codec.js';
import type { ShardSearchReplyMsg, ShardSearchRequestMsg, UserStateReplyMsg } from '../../protos/codec.js';
import { LOCAL_OVERLOADED_AT, LocalFirstShardSearcher, LocalFirstUserStateSource } from '../../actors/coordinator/local-ports.js';
import type { InProcessItemShard, InProcessUserPartition } from '../../actors/coordinator/local-ports.js';
import type { ShardSearcher, UserStateSource } from '../../actors/coordinator/ports.js';
import { fakeCandidateBatch } from './fixtures.js';

const request: ShardSearchRequestMsg = { userVector: [0.6, 0.8], k: 3, excludeVideoIds: [7], deadlineMs: Date.now() + 60_000 };
const deadline = () => Deadline.after(5_000);

function reply(shard: number, ids: number[], status?: { code: number; message: string }): ShardSearchReplyMsg {
  return { status: status ? { code: status.code, message: status.message, details: '' } : null, shard, candidates: fakeCandidateBatch(ids, (i) => 1 - i / 10, Date.now()), shardSize: 100, searchMs: 0.5 };
}

/** A fake in-process shard: records the decoded requests; answers with `answer` or rejects with `fail`. */
function fakeLocalShard(shard: number, opts: { inFlight?: number; fail?: UpnextError; answer?: ShardSearchReplyMsg } = {}) {
  const seen: ShardSearchRequestMsg[] = [];
  const local: InProcessItemShard = {
    inFlight: () => opts.inFlight ?? 0,
    search: async (bytes) => {
      seen.push(Codecs.shardSearchRequest.decode(bytes));
      if (opts.fail) throw opts.fail;
      return Codecs.shardSearchReply.encode(opts.answer ?? reply(shard, [shard * 100 + 1, shard * 100 + 2]));
    },
  };
  return { local, seen };
}

function fakeNatsShards() {
  const calls: number[] = [];
  const nats: ShardSearcher = {
    search: async (shard) => {
      calls.push(shard);
      return reply(shard, [shard * 100 + 9]);
    },
  };
  return { nats, calls };
}

t.test('item shards: local when hosted here, NATS for the rest; same request bytes', async (t) => {
  const s0 = fakeLocalShard(0);
  const { nats, calls } = fakeNatsShards();
  const searcher = new LocalFirstShardSearcher({ local: (s) => (s === 0 ? s0.local : undefined), nats });
  const [a, b] = await Promise.all([searcher.search(0, request, deadline()), searcher.search(1, request, deadline())]);
  t.same(a.candidates?.videoIds, [1, 2], 'shard 0 answered in-process');
  t.same(b.candidates?.videoIds, [109], 'shard 1 answered over NATS');
  t.same(calls, [1], 'NATS asked only for the shard not hosted here');
  t.same(s0.seen[0]?.userVector.map((x) => Math.round(x * 10) / 10), [0.6, 0.8], 'the local shard got the encoded request');
  t.same(s0.seen[0]?.excludeVideoIds, [7]);
  t.same(searcher.stats(), { local: 1, nats: { noLocal: 1, overloaded: 0, localFailed: 0 } });
});

t.test('item shards: an overloaded local shard sends the call over NATS', async (t) => {
  const busy = fakeLocalShard(0, { inFlight: LOCAL_OVERLOADED_AT });
  const { nats, calls } = fakeNatsShards();
  const searcher = new LocalFirstShardSearcher({ local: () => busy.local, nats });
  const r = await searcher.search(0, request, deadline());
  t.same(r.candidates?.videoIds, [9]);
  t.same(calls, [0]);
  t.equal(busy.seen.length, 0, 'the busy local shard was not asked');
  t.same(searcher.stats().nats, { noLocal: 0, overloaded: 1, localFailed: 0 });
  const justUnder = fakeLocalShard(0, { inFlight: LOCAL_OVERLOADED_AT - 1 });
  const s2 = new LocalFirstShardSearcher({ local: () => justUnder.local, nats });
  await s2.search(0, request, deadline());
  t.equal(s2.stats().local, 1, 'below the threshold the local shard answers');
  // A configured threshold (coordinator.localOverloadedAt) replaces the default.
  const two = fakeLocalShard(0, { inFlight: 2 });
  const strict = new LocalFirstShardSearcher({ local: () => two.local, nats, overloadedAt: 2 });
  await strict.search(0, request, deadline());
  t.same(strict.stats().nats.overloaded, 1, 'at a threshold of 2, two queued is overloaded');
  const lax = new LocalFirstShardSearcher({ local: () => busy.local, nats, overloadedAt: LOCAL_OVERLOADED_AT + 1 });
  await lax.search(0, request, deadline());
  t.equal(lax.stats().local, 1, 'a higher threshold keeps the call local');
  t.throws(() => new LocalFirstShardSearcher({ local: () => busy.local, nats, overloadedAt: 0 }), /overloadedAt/);
  t.throws(() => resolveCoordinatorConfig({ localOverloadedAt: 1.5 }), /localOverloadedAt/);
});

t.test('item shards: retryable local failures get one NATS try; others and non-OK replies surface', async (t) => {
  for (const code of [StatusCode.UNAVAILABLE, StatusCode.RESOURCE_EXHAUSTED, StatusCode.INTERNAL]) {
    const failing = fakeLocalShard(0, { fail: new UpnextError(code, 'local trouble') });
    const { nats, calls } = fakeNatsShards();
    const searcher = new LocalFirstShardSearcher({ local: () => failing.local, nats });
    const r = await searcher.search(0, request, deadline());
    t.same(r.candidates?.videoIds, [9], `code ${code}: NATS answered`);
    t.same(calls, [0]);
    t.same(searcher.stats(), { local: 0, nats: { noLocal: 0, overloaded: 0, localFailed: 1 } });
  }
  // A reply that carries RESOURCE_EXHAUSTED (the shard's queue bound) is retried like a rejection.
  const fullReply = fakeLocalShard(0, { answer: reply(0, [], { code: StatusCode.RESOURCE_EXHAUSTED, message: 'queue full' }) });
  const { nats, calls } = fakeNatsShards();
  const retried = new LocalFirstShardSearcher({ local: () => fullReply.local, nats });
  t.same((await retried.search(0, request, deadline())).candidates?.videoIds, [9]);
  t.same(calls, [0]);

  const bad = fakeLocalShard(0, { answer: reply(0, [], { code: StatusCode.INVALID_ARGUMENT, message: 'user_vector has 2 values' }) });
  const nats2 = fakeNatsShards();
  const strict = new LocalFirstShardSearcher({ local: () => bad.local, nats: nats2.nats });
  await t.rejects(strict.search(0, request, deadline()), { code: StatusCode.INVALID_ARGUMENT, message: /local item shard 0: user_vector/ });
  t.same(nats2.calls, [], 'INVALID_ARGUMENT is not retried: NATS would say the same');

  const late = fakeLocalShard(0, { fail: new UpnextError(StatusCode.UNAVAILABLE, 'stopped') });
  const nats3 = fakeNatsShards();
  const noTime = new LocalFirstShardSearcher({ local: () => late.local, nats: nats3.nats });
  await t.rejects(noTime.search(0, request, Deadline.after(1)), { code: StatusCode.UNAVAILABLE }, 'no NATS try without time left');
  t.same(nats3.calls, []);
});

t.test('user state: the local partition answers its users, NATS the others', async (t) => {
  const P = 8;
  const context: RequestContext = { device: 'ios', country: 'BR', localHour: 20 };
  let localUser = 1;
  while (userPartitionOf(localUser, P) !== 3) localUser++;
  let remoteUser = 1;
  while (userPartitionOf(remoteUser, P) === 3) remoteUser++;
  const asked: number[] = [];
  const part3: InProcessUserPartition = {
    inFlight: () => 0,
    get: async (bytes) => {
      const req = Codecs.userStateRequest.decode(bytes);
      asked.push(req.userId);
      const r: UserStateReplyMsg = { ...Codecs.userStateReply.decode(new Uint8Array()), userId: req.userId, partition: 3, known: true };
      return Codecs.userStateReply.encode(r);
    },
  };
  const natsAsked: number[] = [];
  const nats: UserStateSource = {
    get: async (userId) => {
      natsAsked.push(userId);
      return { ...Codecs.userStateReply.decode(new Uint8Array()), userId, partition: userPartitionOf(userId, P), known: false };
    },
  };
  const source = new LocalFirstUserStateSource({ local: (p) => (p === 3 ? part3 : undefined), nats, partitions: P });
  const a = await source.get(localUser, context, deadline());
  const b = await source.get(remoteUser, context, deadline());
  t.equal(a.known, true, 'answered by the local partition');
  t.equal(b.known, false, 'answered over NATS');
  t.same(asked, [localUser]);
  t.same(natsAsked, [remoteUser]);
  t.same(source.stats(), { local: 1, nats: { noLocal: 1, overloaded: 0, localFailed: 0 } });
  t.throws(() => new LocalFirstUserStateSource({ local: () => undefined, nats, partitions: 0 }), { name: 'TypeError', message: /options\.partitions/ });
  t.throws(() => new LocalFirstShardSearcher({ local: 5 as never, nats: fakeNatsShards().nats }), { name: 'TypeError', message: /options\.local/ });
});
