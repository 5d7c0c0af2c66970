import t from 'tap';
import { spawnSync } from 'node:child_process';
import { HashSeeds, bucketOf, firstUserOfPartition, hashId, itemShardOf, userPartitionOf } from '../../core/hash.js';

t.test('hash values are pinned: a change re-shards every item and re-buckets every model', async (t) => {
  t.same([0, 1, 42, 2 ** 32 + 7, 2 ** 53 - 1].map((id) => hashId(id, 123)), [3753932041, 1351517994, 3123263786, 2838307319, 3158482126]);
  t.equal(bucketOf(123456789, 1 << 20, HashSeeds.VIDEO_ID), 84665);
  t.equal(itemShardOf(1000, 8), 6);
  t.equal(userPartitionOf(42, 256), 30);
});

t.test('hashId is stable across processes', async (t) => {
  const ids = [0, 1, 42, 2 ** 32 + 7, 2 ** 53 - 1];
  const here = ids.map((id) => hashId(id, 123));
  const script = `import('${new URL('../../core/hash.js', import.meta.url).href}').then(m => console.log(JSON.stringify(${JSON.stringify(ids)}.map(id => m.hashId(id, 123)))))`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  t.equal(child.status, 0, child.stderr);
  t.same(JSON.parse(child.stdout), here);
});

t.test('ids differing only above bit 32 land in different buckets', async (t) => {
  const a = bucketOf(5, 1 << 20, 1);
  const b = bucketOf(5 + 2 ** 32, 1 << 20, 1);
  t.not(a, b);
});

t.test('shard assignment spreads ids evenly', async (t) => {
  const counts = [0, 0, 0, 0];
  for (let id = 0; id < 40_000; id++) counts[itemShardOf(id, 4)]! += 1;
  for (const c of counts) t.ok(Math.abs(c - 10_000) < 400, `shard count ${c} within 4% of 10000`);
});

t.test('firstUserOfPartition: the smallest id the partition owns', async (t) => {
  for (let p = 0; p < 16; p++) {
    const u = firstUserOfPartition(p, 16);
    t.equal(userPartitionOf(u, 16), p);
    for (let v = 0; v < u; v++) t.not(userPartitionOf(v, 16), p, `no smaller id of partition ${p}`);
  }
  t.equal(userPartitionOf(firstUserOfPartition(3, 16, 1000), 16), 3);
  t.ok(firstUserOfPartition(3, 16, 1000) >= 1000);
  t.throws(() => firstUserOfPartition(16, 16), RangeError);
});
