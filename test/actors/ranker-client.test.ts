/**
 * RankerClient against two real ranker replicas (gRPC on port 0, ONNX Runtime workers): balancing
 * spreads load, a stopped replica is skipped (one retry on the other), and the address function is
 * followed.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { Deadline } from '../../core/deadline.js';
import { SeededRng } from '../../core/clock.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { RankerClient } from '../../actors/ranker/client.js';
import { inferenceService } from '../../actors/ranker/kserve-proto.js';
import { startRanker } from '../../actors/ranker/replica.js';
import { maxAbsDiff, randomRows, writeLinearRankerModel } from './ranker-fixture.js';

const quiet = { log: () => undefined };

t.test('balances over two replicas, skips a stopped one, follows the address list', async (t) => {
  const fx = await writeLinearRankerModel({ seed: 5 });
  t.teardown(() => fx.remove());
  const a = await startRanker({ modelDir: fx.dir, port: 0, batching: { maxDelayMs: 0 } }, quiet);
  const b = await startRanker({ modelDir: fx.dir, port: 0, batching: { maxDelayMs: 0 } }, quiet);
  let addresses = [a.address, b.address];
  const client = new RankerClient({ addresses: () => addresses, channelsPerReplica: 2, ejectMs: 60_000, rng: new SeededRng(3) });
  t.teardown(async () => {
    client.close();
    await a.stop();
    await b.stop();
  });

  const n = 20;
  const rows = randomRows(n, fx.width, 8);
  const ref = fx.reference(rows, n);
  const results = await Promise.all(Array.from({ length: 60 }, () => client.score(rows, n, Deadline.after(10_000))));
  t.ok(results.every((r) => maxAbsDiff(r.pClick, ref.pClick) < 1e-5 && maxAbsDiff(r.watchLog1p, ref.watchLog1p) < 1e-4), 'every answer matches the model');
  const byReplica = new Map<string, number>();
  for (const r of results) byReplica.set(r.replica, (byReplica.get(r.replica) ?? 0) + 1);
  t.ok((byReplica.get(a.address) ?? 0) >= 10 && (byReplica.get(b.address) ?? 0) >= 10, `load spread: ${JSON.stringify([...byReplica])}`);
  t.ok(a.stats().server.inferCalls >= 10 && b.stats().server.inferCalls >= 10, 'both servers saw calls');

  await b.stop();
  const after = [];
  for (let i = 0; i < 20; i++) after.push(await client.score(rows, n, Deadline.after(10_000)));
  t.ok(after.every((r) => r.replica === a.address), 'every request after the stop was answered by the live replica');
  const stats = client.stats();
  const bStats = stats.replicas.find((r) => r.address === b.address);
  t.ok(bStats?.ejected, 'the stopped replica is ejected');
  t.ok((bStats?.failures ?? 0) >= 1 && (bStats?.failures ?? 0) <= 2, `the stopped replica was tried at most twice (${bStats?.failures}), then skipped`);
  t.ok(stats.retries >= 1, 'the failed attempt was retried on the other replica');

  addresses = [a.address];
  await client.score(rows, n, Deadline.after(10_000));
  t.same(client.stats().replicas.map((r) => r.address), [a.address], 'a replica gone from the map is dropped');

  const expired = (await client.score(rows, n, Deadline.after(-1)).catch((e: unknown) => e)) as UpnextError;
  t.equal(expired.code, StatusCode.DEADLINE_EXCEEDED);
  const badShape = (await client.score(rows, 3, Deadline.after(1000)).catch((e: unknown) => e)) as UpnextError;
  t.equal(badShape.code, StatusCode.INVALID_ARGUMENT);
  const wrongWidth = (await client.score(rows.subarray(0, n * (fx.width - 1)), n, Deadline.after(1000)).catch((e: unknown) => e)) as UpnextError;
  t.equal(wrongWidth.code, StatusCode.INVALID_ARGUMENT, 'the replica refuses the wrong width; not retried');
  t.match(wrongWidth.message, /features/);

  addresses = [];
  const none = (await client.score(rows, n, Deadline.after(1000)).catch((e: unknown) => e)) as UpnextError;
  t.equal(none.code, StatusCode.UNAVAILABLE);
});

t.test('RESOURCE_EXHAUSTED from a full replica is retried on the other one, without ejecting it', async (t) => {
  const fx = await writeLinearRankerModel({ seed: 6 });
  t.teardown(() => fx.remove());
  // A fake neighbour that is always full: deterministic, unlike racing a real queue bound.
  const full = new grpc.Server();
  let fullCalls = 0;
  const refuse = (_call: unknown, cb: grpc.sendUnaryData<never>) => {
    fullCalls++;
    cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'ranker queue full' });
  };
  full.addService(inferenceService().service, { ServerLive: refuse, ServerReady: refuse, ModelReady: refuse, ModelMetadata: refuse, ModelInfer: refuse });
  const port = await new Promise<number>((resolve, reject) =>
    full.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const roomy = await startRanker({ modelDir: fx.dir, port: 0 }, quiet);
  const fullAddress = `127.0.0.1:${port}`;
  const client = new RankerClient({ addresses: () => [fullAddress, roomy.address], rng: new SeededRng(9) });
  t.teardown(async () => {
    client.close();
    full.forceShutdown();
    await roomy.stop();
  });
  const n = 4;
  const rows = randomRows(n, fx.width, 2);
  for (let i = 0; i < 20; i++) {
    const r = await client.score(rows, n, Deadline.after(10_000));
    if (r.replica !== roomy.address) t.fail(`answered by ${r.replica}`);
  }
  t.ok(fullCalls >= 3, `the full replica was still picked (${fullCalls} times): RESOURCE_EXHAUSTED does not eject`);
  t.equal(client.stats().retries, fullCalls, 'each refusal was retried on the other replica');
  const solo = new RankerClient({ addresses: () => [fullAddress] });
  const err = (await solo.score(rows, n, Deadline.after(1000)).catch((e: unknown) => e)) as UpnextError;
  solo.close();
  t.equal(err.code, StatusCode.RESOURCE_EXHAUSTED, 'with nowhere else to go the caller sees RESOURCE_EXHAUSTED and degrades');
});
