import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SeededRng } from '../../core/clock.js';
import { DEFAULT_MIX, RequestMix } from '../../loadtest/generator/request-mix.js';
import { loadUserIds } from '../../loadtest/generator/world-ids.js';

async function worldWithUsers(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-mix-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const users = [
    { userId: 1, country: 'PH', device: 'web' },
    { userId: 2, country: 'JP', device: 'tv' },
    { userId: 3, country: 'IN', device: 'android' },
    { userId: 4 }, // no context fields: the mix draws them
  ];
  await writeFile(path.join(dir, 'users.ndjson'), users.map((u) => JSON.stringify(u)).join('\n') + '\n');
  return dir;
}

t.test('a known user carries the country and device of their world record; new users draw from the mix', async (t) => {
  const users = await loadUserIds({ worldDir: await worldWithUsers(t), rangeStart: 0, rangeCount: 1 });
  t.same(Array.from(users.ids), [1, 2, 3, 4]);
  t.same(users.contexts?.country, ['PH', 'JP', 'IN', '']);
  t.same(users.contexts?.device, ['web', 'tv', 'android', '']);
  const own = new Map([[1, ['PH', 'web']], [2, ['JP', 'tv']], [3, ['IN', 'android']]]);
  const mix = new RequestMix({ ...DEFAULT_MIX, newUserShare: 0.2 }, users.ids, [10], new SeededRng(3), undefined, 'lt', users.contexts);
  let known = 0;
  let fresh = 0;
  for (let i = 0; i < 2000; i++) {
    const r = mix.recommendRequest(0);
    const want = own.get(r.userId);
    if (want !== undefined) {
      known++;
      if (r.context.country !== want[0] || r.context.device !== want[1]) t.fail(`user ${r.userId} got ${r.context.country}/${r.context.device}`);
    } else {
      if (r.userId !== 4) fresh++;
      if (!DEFAULT_MIX.countries.includes(r.context.country)) t.fail(`drawn country ${r.context.country} not from the mix`);
    }
  }
  t.ok(known > 1000, `${known} requests for world users, each with its own context`);
  t.ok(fresh > 250, `${fresh} new-user requests with drawn contexts`);
  // Events carry their user's context too.
  for (const e of mix.eventBatch(0, 200, Date.now())) {
    const want = own.get(e.userId);
    if (want !== undefined && (e.context?.country !== want[0] || e.context?.device !== want[1])) t.fail(`event of user ${e.userId} has another context`);
  }
});

t.test('context "mix" draws every context, as before', async (t) => {
  const users = await loadUserIds({ worldDir: await worldWithUsers(t), rangeStart: 0, rangeCount: 1 });
  const mix = new RequestMix({ ...DEFAULT_MIX, context: 'mix', newUserShare: 0 }, users.ids, [10], new SeededRng(3), undefined, 'lt', users.contexts);
  const countries = new Set<string>();
  for (let i = 0; i < 500; i++) countries.add(mix.recommendRequest(0).context.country);
  t.same([...countries].sort(), [...DEFAULT_MIX.countries].sort(), 'only the mix countries, all of them');
});
