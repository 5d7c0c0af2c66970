/**
 * orderByUtility must give exactly the comparator's order (compareByUtility) on every kind of
 * input the policy sees: distinct utilities, ties (quantised scores, all equal), zeros of both
 * signs, negatives, utilities that differ only in their lowest bits, and lists too long or too odd
 * (non-finite) for the packed path.
 */
import t from 'tap';
import { compareByUtility, orderByUtility } from '../../actors/coordinator/utility-order.js';
import type { UtilityOrdered } from '../../actors/coordinator/utility-order.js';

function reference<T extends UtilityOrdered>(c: readonly T[], seed: number): T[] {
  return [...c].sort((a, b) => compareByUtility(a, b, seed));
}

// Deterministic pseudo-random numbers (mulberry32), so a failure reproduces.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function list(n: number, utility: (i: number, r: () => number) => number, seed: number): UtilityOrdered[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => ({ videoId: 1 + Math.floor(r() * 5_000_000) + i, utility: utility(i, r) }));
}

const cases: [string, (i: number, r: () => number) => number][] = [
  ['distinct utilities', (_i, r) => r()],
  ['quantised utilities (many ties)', (_i, r) => Math.round(r() * 20) / 20],
  ['all equal', () => 0.25],
  ['zeros of both signs and tiny values', (i) => [0, -0, 5e-324, -5e-324, 1e-310, 0][i % 6]!],
  ['negatives and positives', (_i, r) => (r() - 0.5) * 1e3],
  ['equal but for the lowest bits', (i) => 0.5 + (i % 7) * Number.EPSILON * 0.25 + (i % 3) * 2 ** -40],
];

for (const [name, utility] of cases) {
  t.test(name, async (t) => {
    for (const n of [0, 1, 2, 17, 550, 2048]) {
      for (const seed of [1, 7, 0xdeadbeef]) {
        const c = list(n, utility, seed + n);
        const got = orderByUtility(c, seed);
        const want = reference(c, seed);
        t.ok(got.length === want.length && got.every((x, i) => x === want[i]), `n=${n} seed=${seed}`);
      }
    }
  });
}

t.test('equal items (the same id and utility) keep their input order, as a stable sort does', async (t) => {
  for (const u of [0.5, -0.5, 0, 3e-310]) {
    const c = ['a', 'b', 'c', 'd'].map((tag) => ({ videoId: 7, utility: u, tag }));
    const mixed = [...c, { videoId: 8, utility: u, tag: 'e' }, { videoId: 9, utility: u + 1, tag: 'f' }];
    t.same(orderByUtility(mixed, 3).map((x) => x.tag), reference(mixed, 3).map((x) => x.tag), `utility ${u}`);
  }
});

t.test('the input is not reordered', async (t) => {
  const c = list(100, (_i, r) => r(), 3);
  const before = [...c];
  orderByUtility(c, 5);
  t.ok(c.every((x, i) => x === before[i]));
});

t.test('lists the packed path cannot take still come out in order', async (t) => {
  const long = list(3000, (_i, r) => Math.round(r() * 50) / 50, 9);
  t.same(orderByUtility(long, 4), reference(long, 4), 'over 2048 candidates');
  const odd = list(40, (i, r) => (i === 3 ? Infinity : i === 9 ? -Infinity : r()), 11);
  t.same(orderByUtility(odd, 4), reference(odd, 4), 'infinite utilities');
});

t.test('the hash tie-break depends on the seed, as the policy needs', async (t) => {
  const c = list(200, () => 1, 13);
  const a = orderByUtility(c, 1).map((x) => x.videoId);
  const b = orderByUtility(c, 2).map((x) => x.videoId);
  t.not(a.join(','), b.join(','));
});
