import t from 'tap';
import { nanos } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Deadline } from '../../core/deadline.js';
import { specHash } from '../../core/features/index.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { servedStreamName } from '../../core/subjects.js';
import { resolveCoordinatorConfig } from '../../actors/coordinator/config.js';
import { FeatureLog } from '../../actors/coordinator/feature-log.js';
import type { FeatureLogSink, ServedRowsRecord } from '../../actors/coordinator/feature-log.js';
import { RecommendPipeline } from '../../actors/coordinator/pipeline.js';
import type { PipelinePorts, RankerScores, ServingModel } from '../../actors/coordinator/ports.js';
import { Source } from '../../actors/coordinator/types.js';
import { validateRecommendRequest } from '../../actors/coordinator/validate.js';
import { Codecs } from '../../protos/codec.js';
import type { CandidateBatchMsg, ServedRowsMsg } from '../../protos/codec.js';
import { fakeCandidateBatch, fakeUserStateReply } from './fixtures.js';
import { natsFixture } from '../fixtures/nats.js';

const spec = DEFAULT_FEATURE_SPEC;
const width = rankerRowWidth(spec);
const model: ServingModel = { version: 'test-v1', spec, specHash: specHash(spec), calibration: { type: 'identity' } };

/** Retrieval score of video `id` (distinct per id, so a row's column 0 names its video). */
const scoreOf = (id: number) => 1 - id / 100_000;

const NOW_MS = Date.now();

/** `ids` as a shard answer, scored by `score(id)` (features from test/actors/fixtures.ts). */
function batchOf(ids: number[], score: (id: number) => number): CandidateBatchMsg {
  return fakeCandidateBatch(ids, (i) => score(ids[i]!), NOW_MS);
}

/** Two shards of 60 candidates, 10 trending; the ranker's rows are kept (copied) as it got them. */
function ports(rankerRows: Float32Array[]): PipelinePorts {
  return {
    userState: {
      get: (userId) => Promise.resolve(fakeUserStateReply(userId, [5, 6], spec)),
    },
    shards: {
      search: (shard) => Promise.resolve({ shard, shardSize: 60, searchMs: 0.1, candidates: batchOf(Array.from({ length: 60 }, (_, i) => shard * 1000 + i + 10), scoreOf) }),
    },
    ranker: {
      score: (rows: Float32Array, nRows: number): Promise<RankerScores> => {
        rankerRows.push(rows.slice(0, nRows * width));
        // Favour trending and late candidates so the answer mixes sources and pool positions.
        const pClick = new Float32Array(nRows).map((_, i) => 0.05 + (0.4 * ((i * 7919) % nRows)) / nRows);
        const watchLog1p = new Float32Array(nRows).map((_, i) => Math.log1p(10 + ((i * 104729) % nRows)));
        return Promise.resolve({ pClick, watchLog1p });
      },
    },
    popular: {
      get: (_c, _d, n, trending) =>
        Promise.resolve(trending ? batchOf(Array.from({ length: Math.min(n, 10) }, (_, i) => 50_000 + i), () => 0) : batchOf(Array.from({ length: n }, (_, i) => 90_000 + i), (id) => 100_000 - id)),
    },
  };
}

class CapturingSink implements FeatureLogSink {
  readonly records: ServedRowsRecord[] = [];
  constructor(readonly rate: 'all' | 'none' | 'throw') {}
  sampled(): boolean {
    return this.rate !== 'none';
  }
  log(record: ServedRowsRecord): void {
    if (this.rate === 'throw') throw new Error('sink broke');
    this.records.push(record);
  }
}

function query(requestId: string) {
  return validateRecommendRequest({ userId: '7', k: 20, context: { device: 'web', country: 'BR', localHour: 20 }, surface: 'home', requestId });
}

t.test('a sampled request logs, for every ranked item it served, the exact row the ranker scored', async (t) => {
  const rankerRows: Float32Array[] = [];
  const sink = new CapturingSink('all');
  const p = new RecommendPipeline({ ports: ports(rankerRows), config: resolveCoordinatorConfig({}), model, itemShards: 2, featureLog: sink });
  const r = await p.recommend(query('req-a'), Deadline.after(1000));
  t.equal(r.outcome, 'ok');
  t.equal(sink.records.length, 1, 'one record for the request');
  const rec = sink.records[0]!;
  t.equal(rec.requestId, 'req-a');
  t.equal(rec.userId, 7);
  t.equal(rec.modelVersion, 'test-v1');
  t.equal(rec.width, width);
  const ranked = r.items.map((it, slot) => ({ it, slot })).filter(({ it }) => it.source !== Source.FALLBACK);
  t.same(rec.videoIds, ranked.map(({ it }) => it.videoId), 'the served ranked items, in answer order');
  t.same(rec.slots, ranked.map(({ slot }) => slot), 'their slots');
  const scored = rankerRows[0]!;
  // Retrieved rows are found by their retrieval score (column 0, distinct per video); trending ones
  // (score 0) by content among all scored rows.
  const scoredById = new Map<number, string>();
  const allScored = new Set<string>();
  for (let i = 0; i < scored.length / width; i++) {
    const row = scored.subarray(i * width, (i + 1) * width);
    const text = Array.from(row).join(',');
    allScored.add(text);
    if (row[0] !== 0) scoredById.set(Math.round((1 - row[0]!) * 100_000), text);
  }
  rec.videoIds.forEach((id, j) => {
    const logged = Array.from(rec.rows.subarray(j * width, (j + 1) * width)).join(',');
    const expected = id >= 50_000 ? (allScored.has(logged) ? logged : 'no scored row like it') : scoredById.get(id);
    t.equal(logged, expected, `row of video ${id} is bit-identical to the scored one`);
  });
});

t.test('not sampled: nothing logged; a broken sink never changes the answer', async (t) => {
  const quietSink = new CapturingSink('none');
  const p1 = new RecommendPipeline({ ports: ports([]), config: resolveCoordinatorConfig({}), model, itemShards: 2, featureLog: quietSink });
  await p1.recommend(query('req-b'), Deadline.after(1000));
  t.equal(quietSink.records.length, 0);

  const broken = new CapturingSink('throw');
  const withBroken = new RecommendPipeline({ ports: ports([]), config: resolveCoordinatorConfig({}), model, itemShards: 2, featureLog: broken });
  const without = new RecommendPipeline({ ports: ports([]), config: resolveCoordinatorConfig({}), model, itemShards: 2 });
  const a = await withBroken.recommend(query('req-c'), Deadline.after(1000));
  const b = await without.recommend(query('req-c'), Deadline.after(1000));
  t.equal(a.outcome, 'ok', 'still answered normally');
  t.same(a.items, b.items, 'same answer as without a feature log');
  t.equal(withBroken.counters.featureLogFailures, 1, 'the failure is counted');
});

t.test('sampling follows the request id, at the configured rate', async (t) => {
  const { nc } = await natsFixture(t, 'upnext-flog-rate');
  const log = await FeatureLog.create(nc, 'flograte', { sampleRate: 0.1, maxAgeMs: 60_000, maxBytes: 1 << 20 });
  let hits = 0;
  for (let i = 0; i < 20_000; i++) if (log.sampled(`req-${i}`)) hits++;
  t.ok(hits > 1700 && hits < 2300, `~10% of 20,000 request ids sampled (${hits})`);
  t.equal(log.sampled('req-42'), log.sampled('req-42'), 'the same id decides the same way');
  const off = await FeatureLog.create(nc, 'flogoff', { sampleRate: 0, maxAgeMs: 60_000, maxBytes: 1 << 20 });
  t.notOk(off.sampled('anything'), 'rate 0 logs nothing');
  const jsm = await jetstreamManager(nc);
  await t.rejects(jsm.streams.info(servedStreamName('flogoff')), 'rate 0 creates no stream');
});

t.test('the log lands in the cluster stream with its limits, decodable, rows intact', async (t) => {
  const { nc } = await natsFixture(t, 'upnext-flog');
  const cluster = 'flogtest';
  const log = await FeatureLog.create(nc, cluster, { sampleRate: 1, maxAgeMs: 3_600_000, maxBytes: 8 << 20 });
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(servedStreamName(cluster));
  t.equal(info.config.max_age, nanos(3_600_000), 'retention from config');
  t.equal(info.config.max_bytes, 8 << 20, 'size cap from config');
  // A second coordinator with other limits updates them instead of failing.
  await FeatureLog.create(nc, cluster, { sampleRate: 1, maxAgeMs: 7_200_000, maxBytes: 8 << 20 });
  t.equal((await jsm.streams.info(servedStreamName(cluster))).config.max_age, nanos(7_200_000));

  const rows = new Float32Array(3 * width).map((_, i) => i / 7);
  log.log({ requestId: 'r-1', userId: 12, modelVersion: 'v9', featureSpecHash: specHash(spec), surface: 'up_next', videoIds: [4, 5, 6], slots: [0, 2, 3], rows, width });
  await nc.flush();
  const consumer = await jetstream(nc).consumers.get(servedStreamName(cluster), { deliver_policy: DeliverPolicy.All });
  const m = await consumer.next({ expires: 5000 });
  t.ok(m, 'one message in the stream');
  const msg: ServedRowsMsg = Codecs.servedRows.decode(m!.data);
  t.equal(msg.requestId, 'r-1');
  t.equal(msg.userId, 12);
  t.equal(msg.modelVersion, 'v9');
  t.equal(msg.featureSpecHash, specHash(spec), 'the feature-spec hash of the rows');
  t.equal(msg.width, width);
  t.same(msg.videoIds, [4, 5, 6]);
  t.same(msg.slots, [0, 2, 3]);
  t.equal(msg.surface, 'up_next');
  const back = new Float32Array(Uint8Array.prototype.slice.call(msg.rows).buffer);
  t.same(Array.from(back), Array.from(rows), 'rows bit-identical after the round trip');
  t.same(log.stats(), { logged: 1, rows: 3, bytes: log.stats().bytes, publishFailures: 0 });
  t.ok(log.stats().bytes > 3 * width * 4, 'bytes counted');
});

t.test('config: featureLog knobs are validated with the option named', async (t) => {
  t.throws(() => resolveCoordinatorConfig({ featureLog: { sampleRate: 1.5 } }), /featureLog\.sampleRate/);
  t.throws(() => resolveCoordinatorConfig({ featureLog: { maxAgeMs: 10 } }), /featureLog\.maxAgeMs/);
  t.throws(() => resolveCoordinatorConfig({ featureLog: { maxBytes: 0 } }), /featureLog\.maxBytes/);
  t.same(resolveCoordinatorConfig({}).featureLog, { sampleRate: 0.01, maxAgeMs: 172_800_000, maxBytes: 1024 ** 3 });
});
