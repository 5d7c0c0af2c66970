/**
 * Integration: the coordinator's public gRPC server on a real port, a real nats-server (JetStream),
 * and fake item-shard / user-state / popular actors answering on the real subjects with the real
 * protobuf codecs. The ranker is a fake scorer (the ranker's own tests cover KServe).
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer } from '../../cluster/nats/server.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { Subjects, eventStreamName } from '../../core/subjects.js';
import { StatusCode } from '../../core/status.js';
import { userPartitionOf } from '../../core/hash.js';
import { Codecs } from '../../protos/codec.js';
import { startCoordinator, loadRecommenderPackage, RECOMMENDER_SERVICE } from '../../actors/coordinator/index.js';
import type { CoordinatorHandle } from '../../actors/coordinator/index.js';
import type { RankerScorer } from '../../actors/coordinator/ports.js';
import { startRanker } from '../../actors/ranker/index.js';
import { writeLinearRankerModel } from './ranker-fixture.js';
import { bareManifest, fakeCandidateBatch } from './fixtures.js';

const S = 2;
const P = 4;
const spec = DEFAULT_FEATURE_SPEC;
const WATCHED = [1003, 2004];
const manifest: ModelManifest = bareManifest('itest-v1', { type: 'temperature', temperature: 1.5 }, spec);


/** Fake actors on the real subjects: item shards, user partitions (one wildcard sub), popular. */
function startFakeActors(nc: NatsConnection, cluster: string) {
  const subs: { unsubscribe(): void }[] = [];
  for (let s = 0; s < S; s++) {
    subs.push(
      nc.subscribe(Subjects.itemSearch(cluster, s), {
        queue: Subjects.queueGroup(cluster, 'item', s),
        callback: (_err, msg) => {
          const req = Codecs.shardSearchRequest.decode(msg.data);
          const ex = new Set(req.excludeVideoIds);
          const ids = Array.from({ length: 60 }, (_, i) => (s + 1) * 1000 + i).filter((id) => !ex.has(id)).slice(0, req.k);
          msg.respond(Codecs.shardSearchReply.encode({ shard: s, shardSize: 60, searchMs: 0.1, candidates: fakeCandidateBatch(ids, (i) => 0.9 - i * 0.01 - s * 0.001, Date.now()) }));
        },
      }),
    );
  }
  subs.push(
    nc.subscribe(`upnext.${cluster}.user.*.get`, {
      callback: (_err, msg) => {
        const req = Codecs.userStateRequest.decode(msg.data);
        msg.respond(
          Codecs.userStateReply.encode({
            known: true,
            userId: req.userId,
            recentVideoIds: WATCHED,
            recentCreatorIds: WATCHED.map((id) => id % 31),
            categoryAffinity: Array.from({ length: spec.numCategories }, () => 1),
            impressions: 5,
            clicks: 1,
            watches: 2,
            watchSeconds: 90,
            embedding: Array.from({ length: spec.embeddingDim }, () => 0.125),
            completeness: 1,
            partition: userPartitionOf(req.userId, P),
            appliedSeq: 0,
          }),
        );
      },
    }),
  );
  subs.push(
    nc.subscribe(Subjects.popular(cluster), {
      callback: (_err, msg) => {
        const req = Codecs.popularRequest.decode(msg.data);
        const base = req.trending ? 7000 : 8000;
        const ids = Array.from({ length: Math.min(req.n, 100) }, (_, i) => base + i);
        msg.respond(Codecs.candidateBatchReply.encode({ candidates: fakeCandidateBatch(ids, (i) => 100 - i, Date.now()) }));
      },
    }),
  );
  return () => subs.forEach((s) => s.unsubscribe());
}

/**
 * Generous stage budgets: this file checks behaviour, not speed, on a shared 2-core machine (the
 * pipeline's timing behaviour is unit-tested with fakes that never answer).
 */
const config = { budgets: { userStateMs: 2000, retrievalMs: 2000, rankingMs: 2000, fallbackMs: 2000 }, defaultDeadlineMs: 10_000 };

/** A deterministic fake ranker: P(click) from the row's item-duration column. */
const fakeRanker: RankerScorer = {
  score: async (rows, nRows) => {
    const f = rows.length / nRows;
    const pClick = new Float32Array(nRows);
    const watchLog1p = new Float32Array(nRows);
    for (let i = 0; i < nRows; i++) {
      pClick[i] = 0.02 + 0.3 * (rows[i * f + 10] ?? 0);
      watchLog1p[i] = 2 + (rows[i * f] ?? 0);
    }
    return { pClick, watchLog1p, replica: 'fake' };
  },
};

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
function call<T>(client: grpc.Client, method: string, req: unknown, md = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, Unary>)[method]!.call(client, req, md, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

interface RecommendReply {
  items: { videoId: string; score: number; pClick: number; expectedWatchSeconds: number; source: number; shard: number }[];
  coverage: number;
  degraded: string[];
  modelVersion: string;
  requestId: string;
  timings: { totalMs: number } | null;
}

t.test('coordinator over real NATS and gRPC', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-coord-'));
  const nats = await startNatsServer({ dataDir: dir });
  const nc = await connect({ servers: nats.url });
  const cluster = `coord${process.pid}`;
  const stopFakes = startFakeActors(nc, cluster);
  const coordinator: CoordinatorHandle = await startCoordinator({
    nc,
    cluster,
    itemShards: S,
    userPartitions: P,
    manifest,
    ports: { ranker: fakeRanker },
    config,
  });
  const Recommender = (grpc.loadPackageDefinition(loadRecommenderPackage()) as unknown as { upnext: { v1: { Recommender: grpc.ServiceClientConstructor } } })
    .upnext.v1.Recommender;
  const client = new Recommender(coordinator.address, grpc.credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await coordinator.stop();
    stopFakes();
    await nc.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });

  await t.test('Recommend: exactly k distinct items sorted by score, none watched or excluded', async (t) => {
    const r = await call<RecommendReply>(client, 'recommend', {
      userId: '12345',
      k: 25,
      context: { device: 'android', country: 'BR', localHour: 21 },
      surface: 'home',
      debug: true,
      excludeVideoIds: ['1000', '2000'],
      requestId: 'it-1',
    });
    const ids = r.items.map((i) => Number(i.videoId));
    t.equal(r.items.length, 25);
    t.equal(new Set(ids).size, 25, 'distinct');
    for (let i = 1; i < r.items.length; i++) t.ok(r.items[i - 1]!.score >= r.items[i]!.score, `sorted at ${i}`);
    for (const banned of [1000, 2000, ...WATCHED]) t.notOk(ids.includes(banned), `${banned} not served`);
    t.equal(r.coverage, 1);
    t.same(r.degraded, []);
    t.equal(r.modelVersion, 'itest-v1');
    t.equal(r.requestId, 'it-1');
    t.ok(r.timings && r.timings.totalMs > 0, 'timings when debug');
    t.ok(r.items.every((i) => i.pClick > 0 && i.pClick < 1 && i.source >= 1 && i.source <= 4));
    const again = await call<RecommendReply>(client, 'recommend', { userId: '12345', k: 25, requestId: 'it-1', context: { device: 'android', country: 'BR', localHour: 21 }, surface: 'home', excludeVideoIds: ['1000', '2000'] });
    t.same(again.items.map((i) => i.videoId), r.items.map((i) => i.videoId), 'deterministic for the same request id');
    const generated = await call<RecommendReply>(client, 'recommend', { userId: '1', k: 3 });
    t.match(generated.requestId, /^[0-9a-f-]{36}$/, 'request id generated when empty');
  });

  await t.test('bad requests: INVALID_ARGUMENT naming the field', async (t) => {
    const cases: [Record<string, unknown>, string][] = [
      [{ userId: '1', k: 0 }, 'k'],
      [{ userId: '1', k: 1001 }, 'k'],
      [{ userId: '9007199254740992', k: 5 }, 'user_id'],
      [{ userId: '1', k: 5, context: { localHour: 24 } }, 'context.local_hour'],
      [{ userId: '1', k: 5, surface: 'x'.repeat(65) }, 'surface'],
      [{ userId: '1', k: 5, excludeVideoIds: Array.from({ length: 1001 }, (_, i) => String(i)) }, 'exclude_video_ids'],
    ];
    for (const [req, field] of cases) {
      await t.rejects(call(client, 'recommend', req), { code: grpc.status.INVALID_ARGUMENT, details: new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}:`) }, field);
    }
    await t.rejects(
      call(client, 'logEvents', { events: [{ eventId: 'x', userId: '1', videoId: '2', type: 'WATCH', watchSeconds: -3 }] }),
      { code: grpc.status.INVALID_ARGUMENT, details: /^events\[0\]\.watch_seconds:/ },
    );
    t.ok(coordinator.stats().requests.rejected >= cases.length);
  });

  await t.test('health reports SERVING for "" and the Recommender service', async (t) => {
    const healthPath = createRequire(import.meta.url)('grpc-health-check').protoPath as string;
    const def = protoLoader.loadSync(healthPath, { enums: String });
    const Health = (grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } }).grpc.health.v1.Health;
    const health = new Health(coordinator.address, grpc.credentials.createInsecure());
    for (const service of ['', RECOMMENDER_SERVICE]) {
      const r = await call<{ status: string }>(health, 'check', { service });
      t.equal(r.status, 'SERVING', `"${service}"`);
    }
    await t.rejects(call(health, 'check', { service: 'nope.Service' }), { code: grpc.status.NOT_FOUND });
    health.close();
  });

  await t.test('reflection lists upnext.v1.Recommender and serves its descriptor', async (t) => {
    const reflPath = path.join(path.dirname(createRequire(import.meta.url).resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
    const def = protoLoader.loadSync(reflPath, { keepCase: true, defaults: true, oneofs: true });
    const Reflection = (grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } }).grpc.reflection.v1
      .ServerReflection;
    const refl = new Reflection(coordinator.address, grpc.credentials.createInsecure());
    const ask = (req: Record<string, string>) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const stream = (refl as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, Record<string, unknown>> }).ServerReflectionInfo();
        stream.on('data', (d) => {
          resolve(d);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(req);
      });
    const list = (await ask({ list_services: '' })) as { list_services_response?: { service: { name: string }[] } };
    const names = list.list_services_response?.service.map((s) => s.name) ?? [];
    t.ok(names.includes(RECOMMENDER_SERVICE), `services: ${names.join(', ')}`);
    const file = (await ask({ file_containing_symbol: RECOMMENDER_SERVICE })) as { file_descriptor_response?: { file_descriptor_proto: Buffer[] } };
    t.ok((file.file_descriptor_response?.file_descriptor_proto.length ?? 0) > 0, 'descriptor served for the service');
    refl.close();
  });

  await t.test('LogEvents stores events in JetStream and drops a duplicate event_id', async (t) => {
    const ev = (id: string, userId: number) => ({ eventId: id, userId: String(userId), videoId: '1001', type: 'WATCH', watchSeconds: 12, position: 2, context: { device: 'ios', country: 'US', localHour: 8 } });
    const first = await call<{ accepted: number; duplicates: number }>(client, 'logEvents', { events: [ev('e-1', 1), ev('e-2', 2), ev('e-3', 3)] });
    t.same(first, { accepted: 3, duplicates: 0 });
    const second = await call<{ accepted: number; duplicates: number }>(client, 'logEvents', { events: [ev('e-1', 1), ev('e-4', 4)] });
    t.same(second, { accepted: 1, duplicates: 1 }, 'the retried event is dropped');
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(eventStreamName(cluster));
    t.equal(info.state.messages, 4, 'four distinct events stored');
    t.equal(info.config.duplicate_window, 120_000_000_000, 'duplicate window 2 min');
    const stored = await jsm.streams.getMessage(eventStreamName(cluster), { seq: 1 });
    t.ok(stored, 'first message readable');
    if (!stored) return;
    t.equal(stored.subject, Subjects.events(cluster, userPartitionOf(1, P)), 'on the user partition subject');
    const env = Codecs.eventEnvelope.decode(stored.data);
    t.match(env.event, { eventId: 'e-1', userId: 1, videoId: 1001, type: 3, watchSeconds: 12, position: 2 });
    t.ok((env.event?.tsMs ?? 0) > 1_600_000_000_000, 'ts_ms 0 stamped with now');
    t.match(coordinator.stats().events, { accepted: 4, duplicates: 1 });
  });

  await t.test('stats count outcomes and stage latencies', async (t) => {
    const s = coordinator.stats();
    t.ok(s.requests.ok >= 3);
    t.ok(s.latencyMs.total.count >= 3);
    t.equal(s.meanCoverage, 1);
    t.equal(s.itemShards, S);
    t.equal(s.modelVersion, 'itest-v1');
  });

  await t.test('a caller token is required when configured', async (t) => {
    const secured = await startCoordinator({ nc, cluster, itemShards: S, userPartitions: P, manifest, ports: { ranker: fakeRanker }, config: { ...config, auth: { token: 's3cret' } } });
    const c = new Recommender(secured.address, grpc.credentials.createInsecure());
    await t.rejects(call(c, 'recommend', { userId: '1', k: 3 }), { code: grpc.status.UNAUTHENTICATED });
    const wrong = new grpc.Metadata();
    wrong.set('authorization', 'Bearer nope');
    await t.rejects(call(c, 'recommend', { userId: '1', k: 3 }, wrong), { code: grpc.status.UNAUTHENTICATED });
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer s3cret');
    const r = await call<RecommendReply>(c, 'recommend', { userId: '1', k: 3 }, md);
    t.equal(r.items.length, 3);
    await t.rejects(call(c, 'getRouting', {}), { code: grpc.status.UNAUTHENTICATED }, 'GetRouting needs the token too');
    c.close();
    await secured.stop();
    await secured.stop();
  });

  await t.test('GetRouting: the table the node passes in; UNAVAILABLE without one', async (t) => {
    await t.rejects(call(client, 'getRouting', {}), { code: grpc.status.UNAVAILABLE, details: /has no shard map to route by/ });
    const table = { cluster, mapVersion: 9, userPartitions: 2, partitions: [['h1:1'], []], coordinators: ['h1:1', 'h2:2'] };
    const routed = await startCoordinator({ nc, cluster, itemShards: S, userPartitions: P, manifest, ports: { ranker: fakeRanker }, config, routing: () => table });
    const c = new Recommender(routed.address, grpc.credentials.createInsecure());
    t.teardown(async () => {
      c.close();
      await routed.stop();
    });
    const r = await call<Record<string, unknown>>(c, 'getRouting', {});
    t.same(r, {
      cluster,
      mapVersion: '9',
      userPartitions: 2,
      partitions: [{ partition: 0, recommendAddresses: ['h1:1'] }, { partition: 1, recommendAddresses: [] }],
      coordinators: ['h1:1', 'h2:2'],
    });
    await t.rejects(startCoordinator({ nc, cluster, itemShards: S, userPartitions: P, manifest, ports: { ranker: fakeRanker }, config, routing: 'n1' as unknown as () => undefined }), /options\.routing must be a function/);
  });

  await t.test('with a real ranker replica (KServe over gRPC): ranked, then degraded when it is gone', async (t) => {
    const fx = await writeLinearRankerModel({ version: 'linear-it' });
    const ranker = await startRanker({ modelDir: fx.dir, workers: 1 });
    const withRanker = await startCoordinator({ nc, cluster, itemShards: S, userPartitions: P, modelDir: fx.dir, rankerAddresses: () => [ranker.address], config });
    const c = new Recommender(withRanker.address, grpc.credentials.createInsecure());
    t.teardown(async () => {
      c.close();
      await withRanker.stop();
      await ranker.stop();
      await fx.remove();
    });
    const r = await call<RecommendReply>(c, 'recommend', { userId: '77', k: 15, context: { device: 'web', country: 'DE', localHour: 11 } });
    t.same(r.degraded, [], 'ranked by the replica');
    t.equal(r.modelVersion, 'linear-it');
    t.equal(r.items.length, 15);
    t.ok(r.items.every((i) => i.pClick > 0 && i.pClick < 1 && i.expectedWatchSeconds > 0));
    await ranker.stop();
    const down = await call<RecommendReply>(c, 'recommend', { userId: '77', k: 15, context: { device: 'web', country: 'DE', localHour: 11 } });
    t.equal(down.items.length, 15, 'still k items without a ranker');
    t.ok(down.degraded.some((d) => d.startsWith('ranking skipped:')), down.degraded.join('; '));
    t.equal(withRanker.stats().degradations.rankingSkipped, 1);
  });

  await t.test('startCoordinator validates options and refuses a mismatched model', async (t) => {
    await t.rejects(startCoordinator({ nc, cluster, itemShards: 0, userPartitions: P, manifest, ports: { ranker: fakeRanker } }), { name: 'TypeError', message: /itemShards/ });
    await t.rejects(startCoordinator({ nc, cluster: 'bad.name', itemShards: 1, userPartitions: P, manifest, ports: { ranker: fakeRanker } }), { name: 'TypeError', message: /cluster/ });
    await t.rejects(startCoordinator({ nc, cluster, itemShards: 1, userPartitions: P, manifest }), { name: 'TypeError', message: /rankerAddresses/ });
    await t.rejects(startCoordinator({ nc, cluster, itemShards: 1, userPartitions: P, manifest: { ...manifest, featureSpecHash: 'deadbeef' }, ports: { ranker: fakeRanker } }), {
      code: StatusCode.FAILED_PRECONDITION,
    });
  });
});
