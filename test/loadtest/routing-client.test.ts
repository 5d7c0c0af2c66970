/**
 * The load generator's client with routing "user" (loadtest/client/recommender-client.ts) against
 * stand-in Recommenders over real gRPC: it reads the routing table from the address it was given,
 * dials the coordinators the table names, sends each user to its partition's coordinator, spreads
 * users whose partition has none, follows a changed table, and refuses a malformed one by name.
 * Routing "spread" keeps the plain round-robin.
 */
import t from 'tap';
import { RecommenderClientPool } from '../../loadtest/client/recommender-client.js';
import { startStubRecommender } from '../../loadtest/stub/stub-server.js';
import type { StubRecommender } from '../../loadtest/stub/stub-server.js';
import { userPartitionOf } from '../../core/hash.js';
import { mergeRouting, routingDelta } from '../../loadtest/generator/phase.js';

const P = 4;
const ctx = { device: 'ios', country: 'US', localHour: 20 };
let table: unknown;
const routing = () => table;
const a = await startStubRecommender({ routing, recordUsers: true });
const b = await startStubRecommender({ routing, recordUsers: true });
t.teardown(async () => {
  await a.stop();
  await b.stop();
});

function wire(partitions: readonly (readonly string[])[], version: number): unknown {
  return {
    cluster: 'stub',
    mapVersion: version,
    userPartitions: partitions.length,
    partitions: partitions.map((recommendAddresses, partition) => ({ partition, recommendAddresses })),
    coordinators: [a.address, b.address],
  };
}

/** The first `n` user ids of each partition. */
function usersByPartition(n: number): number[][] {
  const out: number[][] = Array.from({ length: P }, () => []);
  for (let u = 1; out.some((l) => l.length < n); u++) {
    const l = out[userPartitionOf(u, P)]!;
    if (l.length < n) l.push(u);
  }
  return out;
}

function seen(stub: StubRecommender, since: number): Set<number> {
  return new Set(stub.recommendUsers().slice(since));
}

t.test('routing "user": each user reaches its partition\'s coordinator; a partition without one is spread', async (t) => {
  // Partitions 0 and 1 on a, 2 on b, 3 on none.
  table = wire([[a.address], [a.address], [b.address], []], 5);
  const pool = new RecommenderClientPool({ address: a.address, channels: 2, routing: 'user' });
  t.teardown(() => pool.close());
  await pool.waitForReady(5000);
  t.equal(pool.routingTable?.mapVersion, 5, 'the table was read before the first call');
  const users = usersByPartition(10);
  const a0 = a.recommendUsers().length;
  const b0 = b.recommendUsers().length;
  for (const list of users) {
    for (const userId of list) {
      const r = await pool.recommend({ userId, k: 3, context: ctx, surface: 'home' });
      t.ok(r.ok, `user ${userId} answered`);
    }
  }
  const onA = seen(a, a0);
  const onB = seen(b, b0);
  for (const u of [...users[0]!, ...users[1]!]) t.ok(onA.has(u) && !onB.has(u), `user ${u} (partition ${userPartitionOf(u, P)}) went to a only`);
  for (const u of users[2]!) t.ok(onB.has(u) && !onA.has(u), `user ${u} (partition 2) went to b only, an address the client learnt from the table`);
  for (const u of users[3]!) t.ok(onA.has(u) !== onB.has(u), `user ${u} (partition 3, no coordinator) went to one coordinator`);
  t.ok(users[3]!.some((u) => onA.has(u)) && users[3]!.some((u) => onB.has(u)), "partition 3's users were spread over the table's coordinators");
  const s = pool.routingStats();
  t.equal(s.routed, 30);
  t.equal(s.spread, 10);
  t.equal(s.mode, 'user');
  t.same(s.callsByAddress, { [a.address]: 25, [b.address]: 15 }, 'calls counted per coordinator (routed 20 + 10, spread 5 + 5)');
});

t.test('a changed table is followed after a refresh', async (t) => {
  table = wire([[a.address], [a.address], [b.address], []], 5);
  const pool = new RecommenderClientPool({ address: [a.address], channels: 1, routing: 'user' });
  t.teardown(() => pool.close());
  await pool.waitForReady(5000);
  const users = usersByPartition(5)[2]!;
  table = wire([[b.address], [b.address], [a.address], [a.address, b.address]], 6); // partition 2 moved to a
  t.equal((await pool.refreshRouting())?.mapVersion, 6);
  const a0 = a.recommendUsers().length;
  const b0 = b.recommendUsers().length;
  for (const userId of users) t.ok((await pool.recommend({ userId, k: 3, context: ctx, surface: 'home' })).ok);
  t.same([...seen(a, a0)].sort(), [...users].sort(), 'partition 2 now goes to a');
  t.equal(seen(b, b0).size, 0);
  t.equal(pool.routingStats().mapVersion, 6);
});

t.test('a routed call whose coordinator is gone is sent once more to another coordinator', async (t) => {
  const gone = await startStubRecommender({ routing });
  const goneAddress = gone.address;
  await gone.stop();
  table = wire([[a.address], [goneAddress], [a.address], [a.address]], 9);
  const pool = new RecommenderClientPool({ address: [a.address], channels: 1, routing: 'user', deadlineMs: 5000 });
  t.teardown(() => pool.close());
  await pool.refreshRouting();
  const users = usersByPartition(3)[1]!;
  const a0 = a.recommendUsers().length;
  for (const userId of users) {
    const r = await pool.recommend({ userId, k: 2, context: ctx, surface: 'home' });
    t.ok(r.ok, `user ${userId} (partition 1, its coordinator gone) answered by another`);
  }
  t.same([...seen(a, a0)].sort(), [...users].sort());
  const s = pool.routingStats();
  t.equal(s.failovers, 1, 'the first call tried the gone coordinator, then another');
  t.equal(s.routed, 1);
  t.equal(s.spread, 2, 'the next ones went straight to another: the gone one is skipped for 2 s');
  await new Promise((r) => setTimeout(r, 2100));
  t.ok((await pool.recommend({ userId: users[0]!, k: 2, context: ctx, surface: 'home' })).ok);
  t.equal(pool.routingStats().failovers, 2, 'after 2 s it is tried again');
});

t.test('a malformed table is refused with the field named, and waitForReady says so', async (t) => {
  table = { ...(wire([[a.address], [b.address]], 7) as object), userPartitions: 3 };
  const pool = new RecommenderClientPool({ address: a.address, channels: 1, routing: 'user' });
  t.teardown(() => pool.close());
  await t.rejects(pool.waitForReady(5000), /no routing table from .*invalid routing table: partitions must hold one entry per partition \(3\), got 2/);
  const s = pool.routingStats();
  t.equal(s.refreshFailures, 1);
  t.equal(s.mapVersion, -1);
  // Without a table every call is still answered: routing is a hint.
  const r = await pool.recommend({ userId: 1, k: 3, context: ctx, surface: 'home' });
  t.ok(r.ok);
  t.equal(pool.routingStats().spread, 1);
});

t.test('a server without GetRouting: the failure is reported, calls still spread', async (t) => {
  const plain = await startStubRecommender();
  t.teardown(() => plain.stop());
  const pool = new RecommenderClientPool({ address: plain.address, channels: 1, routing: 'user' });
  t.teardown(() => pool.close());
  t.equal(await pool.refreshRouting(), undefined);
  t.match(pool.routingStats().lastError ?? '', /UNIMPLEMENTED: this stub has no routing table/);
  t.ok((await pool.recommend({ userId: 3, k: 2, context: ctx, surface: 'home' })).ok);
});

t.test('routing "spread" (the default) alternates over the given addresses and never reads a table', async (t) => {
  table = wire([[b.address], [b.address], [b.address], [b.address]], 8);
  const pool = new RecommenderClientPool({ address: [a.address, b.address], channels: 1 });
  t.teardown(() => pool.close());
  await pool.waitForReady(5000);
  const a0 = a.recommendUsers().length;
  const b0 = b.recommendUsers().length;
  for (let u = 1; u <= 10; u++) t.ok((await pool.recommend({ userId: u, k: 2, context: ctx, surface: 'home' })).ok);
  t.equal(a.recommendUsers().length - a0, 5);
  t.equal(b.recommendUsers().length - b0, 5);
  t.equal(pool.routingTable, undefined);
  t.same(pool.routingStats(), { mode: 'spread', routed: 0, spread: 0, callsByAddress: {}, failovers: 0, mapVersion: -1, refreshes: 0, refreshFailures: 0 });
});

t.test('options are checked', async (t) => {
  t.throws(() => new RecommenderClientPool({ address: a.address, routing: 'nearest' as 'user' }), /routing must be "spread" or "user", got "nearest"/);
  t.throws(() => new RecommenderClientPool({ address: a.address, routing: 'user', routingRefreshMs: 10 }), /routingRefreshMs must be a number >= 100/);
});

t.test('phase routing: the delta of two snapshots, and the sum over generator processes', async (t) => {
  const before = { mode: 'user' as const, routed: 5, spread: 1, callsByAddress: { a: 3, b: 2 }, failovers: 1, mapVersion: 1, refreshes: 1, refreshFailures: 0 };
  const after = { ...before, routed: 12, spread: 2, callsByAddress: { a: 3, b: 6, c: 3 }, failovers: 3, refreshes: 3, refreshFailures: 1, lastError: 'UNAVAILABLE: gone' };
  const d = routingDelta(before, after);
  t.same(d, { routed: 7, spread: 1, callsByAddress: { b: 4, c: 3 }, failovers: 2, refreshFailures: 1, lastError: 'UNAVAILABLE: gone' });
  t.same(routingDelta(before, before), { routed: 0, spread: 0, callsByAddress: {}, failovers: 0, refreshFailures: 0 }, 'an old error is not this phase\'s');
  t.same(mergeRouting([d, { routed: 2, spread: 0, callsByAddress: { a: 2 }, failovers: 1, refreshFailures: 0 }]), {
    routed: 9, spread: 1, callsByAddress: { b: 4, c: 3, a: 2 }, failovers: 3, refreshFailures: 1, lastError: 'UNAVAILABLE: gone',
  });
});
