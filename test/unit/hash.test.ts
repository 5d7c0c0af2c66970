import t from 'tap';
import { spawnSync } from 'node:child_process';
import { bucketOf, hashId, itemShardOf } from '../../core/hash.js';

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
