/**
 * Skew metrics (offline/skew/metrics.ts) against hand-computed values, and the report's flags.
 * Hand values: KL = Σ p ln(p/q), PSI = Σ (p−q) ln(p/q), p = serving shares, q = training shares,
 * smoothed (n/N + ε)/(1 + Kε).
 */
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { binOf, columnBinning, columnSkew, klDivergence, populationStabilityIndex, rowsSkew } from '../../offline/skew/metrics.js';
import type { SkewConditions } from '../../offline/skew/report.js';
import { flagFeature, formatSkewTable, skewReport } from '../../offline/skew/report.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

t.test('identical distributions have zero KL and PSI', async (t) => {
  const xs = range(500).map((i) => Math.sin(i) * 3 + (i % 7));
  const c = columnSkew(xs, xs);
  t.equal(c.kind, 'continuous');
  t.equal(c.kl, 0);
  t.equal(c.psi, 0);
  t.equal(c.servingMean, c.trainingMean);
  const b = columnSkew([0, 1, 1, 0], [1, 0, 0, 1]);
  t.equal(b.kind, 'binary');
  t.equal(b.kl, 0);
  t.equal(b.psi, 0);
});

t.test('binary column: a known shift gives the hand-computed KL and PSI', async (t) => {
  // serving p = (1/2, 1/2), training q = (3/4, 1/4); the non-finite bin is empty on both sides.
  const exact = columnSkew([0, 1, 0, 1], [0, 0, 0, 1], { epsilon: 0 });
  t.equal(exact.kind, 'binary');
  t.equal(exact.bins, 3);
  // 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25)
  t.ok(Math.abs(exact.kl - 0.14384103622589042) < 1e-12, `KL ${exact.kl}`);
  // (−0.25) ln(2/3) + 0.25 ln 2
  t.ok(Math.abs(exact.psi - 0.27465307216702745) < 1e-12, `PSI ${exact.psi}`);
  t.equal(exact.servingMean, 0.5);
  t.equal(exact.trainingMean, 0.25);
  const smoothed = columnSkew([0, 1, 0, 1], [0, 0, 0, 1]);
  // ε = 1e-4, K = 3: p = (.5001, .5001, .0001)/1.0003, q = (.7501, .2501, .0001)/1.0003
  t.ok(Math.abs(smoothed.kl - 0.14376002086781478) < 1e-12, `smoothed KL ${smoothed.kl}`);
  t.ok(Math.abs(smoothed.psi - 0.27450407205138894) < 1e-12, `smoothed PSI ${smoothed.psi}`);
});

t.test('continuous column: quantile bins and a known shift', async (t) => {
  const training = range(100); // 0..99
  const b = columnBinning(training, [], 4);
  t.same([...b.cuts], [24, 49, 74], 'cut points are the training quartiles');
  t.equal(b.bins, 6, 'underflow + 4 + non-finite');
  t.same([-1, 0, 24, 25, 49, 50, 99, 1e9, Number.NaN].map((v) => binOf(b, v)), [0, 1, 1, 2, 2, 3, 4, 4, 5]);
  // Every serving value in the top quartile: p = (0,0,0,0,1,0), q = (0,¼,¼,¼,¼,0).
  const serving = range(25).map((i) => 80 + (i % 20));
  const exact = columnSkew(serving, training, { bins: 4, epsilon: 0 });
  t.ok(Math.abs(exact.kl - Math.log(4)) < 1e-12, `KL ${exact.kl} = ln 4`);
  t.equal(exact.psi, Number.POSITIVE_INFINITY, 'PSI is infinite without smoothing');
  const smoothed = columnSkew(serving, training, { bins: 4 });
  t.ok(Math.abs(smoothed.kl - 1.3829559282063197) < 1e-12, `smoothed KL ${smoothed.kl}`);
  t.ok(Math.abs(smoothed.psi - 6.90368806239495) < 1e-9, `smoothed PSI ${smoothed.psi}`);
});

t.test('a point mass becomes its own bin', async (t) => {
  // 80 zeros and 1..20: the quantiles 1/20..16/20 are all 0 and collapse into one cut point.
  const training = [...new Array<number>(80).fill(0), ...range(20).map((i) => i + 1)];
  const b = columnBinning(training, [], 20);
  t.same([...b.cuts], [0, 5, 10, 15]);
  t.equal(binOf(b, 0), 1);
  t.equal(binOf(b, 0.5), 2);
  // All-zero serving: p puts 1 on the zero bin, q 0.8 → KL = ln(1/0.8).
  const c = columnSkew(new Array<number>(50).fill(0), training, { epsilon: 0 });
  t.ok(Math.abs(c.kl - Math.log(1 / 0.8)) < 1e-12, `KL ${c.kl}`);
});

t.test('non-finite serving values show as skew', async (t) => {
  const training = range(200).map((i) => i / 200);
  const clean = columnSkew(training, training);
  const withNaN = columnSkew(training.map((v, i) => (i % 4 === 0 ? Number.NaN : v)), training);
  t.equal(clean.kl, 0);
  t.ok(withNaN.kl > 0.1, `KL with 25% NaN ${withNaN.kl}`);
  t.ok(Number.isFinite(withNaN.servingMean), 'the mean is over finite values');
});

t.test('KL and PSI edge cases', async (t) => {
  t.equal(klDivergence([1, 0], [0.5, 0.5]), Math.log(2));
  t.equal(klDivergence([0.5, 0.5], [1, 0]), Number.POSITIVE_INFINITY);
  t.equal(populationStabilityIndex([0, 1], [0, 1]), 0);
  t.throws(() => klDivergence([1], [0.5, 0.5]), TypeError);
  t.ok(Number.isNaN(columnSkew([], [1, 2, 3]).kl), 'no serving values: NaN');
  t.throws(() => columnSkew([1], [1], { bins: 1 }), /bins/);
  t.throws(() => columnSkew([1], [1], { epsilon: -1 }), /epsilon/);
});

t.test('a deliberately skewed column ranks first; untouched ones stay near 0', async (t) => {
  const names = ['score', 'ratio', 'shifted', 'onehot_a', 'onehot_b', 'count'];
  const w = names.length;
  const make = (n: number, seed: number, shift: number): Float32Array => {
    const rng = new SeededRng(seed);
    const m = new Float32Array(n * w);
    for (let r = 0; r < n; r++) {
      const a = rng.next() < 0.3;
      m.set([rng.normal(), rng.next(), rng.normal() * 0.2 + 0.5 + shift, a ? 1 : 0, a ? 0 : 1, Math.floor(rng.next() * 5)], r * w);
    }
    return m;
  };
  const training = make(5000, 1, 0);
  const serving = make(5000, 2, 0.1); // half a standard deviation
  const res = rowsSkew(serving, 5000, training, 5000, names);
  t.equal(res[0]!.name, 'shifted', `ranked first: ${res.map((f) => `${f.name}=${f.kl.toFixed(4)}`).join(' ')}`);
  t.ok(res[0]!.kl > 0.1, `shifted KL ${res[0]!.kl}`);
  for (const f of res.slice(1)) t.ok(f.kl < 0.02, `${f.name} KL ${f.kl} near 0`);
  t.equal(res.find((f) => f.name === 'onehot_a')!.kind, 'binary');
  t.equal(res.find((f) => f.name === 'count')!.kind, 'continuous');
  const unshifted = rowsSkew(make(5000, 3, 0), 5000, training, 5000, names);
  t.ok(unshifted.every((f) => f.kl < 0.02), 'the same generator is not flagged');
});

t.test('report: flags, nulls, sorted table', async (t) => {
  t.equal(flagFeature({ name: 'position', kl: 2 }, { retrievalScored: true }), 'expected');
  t.equal(flagFeature({ name: 'position', kl: 0.01 }, { retrievalScored: true }), '');
  t.equal(flagFeature({ name: 'retrieval_score', kl: 0 }, { retrievalScored: false }), 'unscored');
  t.equal(flagFeature({ name: 'retrieval_score', kl: 0.5 }, { retrievalScored: true }), 'skew');
  t.equal(flagFeature({ name: 'user_ctr', kl: 0.11 }, { retrievalScored: true }), 'skew');
  t.equal(flagFeature({ name: 'user_ctr', kl: 0.11 }, { retrievalScored: true, klThreshold: 0.2 }), '');
  const conditions: SkewConditions = {
    cluster: 'c', stream: 's', world: 'w', split: 'train', model_version: null, feature_spec_hash: 'h', serving_rows: 4, serving_messages: 1,
    serving_truncated: false, serving_skipped: [], serving_malformed: 0, serving_model_versions: [], served_from: null, served_to: null,
    training_rows: 4, training_rows_available: 4, retrieval_scored: false, bins: 20, epsilon: 1e-4, kl_threshold: 0.1, binning: 'b', generated_at: 'now',
  };
  const report = skewReport(
    [
      { name: 'user_ctr', column: 5, kind: 'continuous', bins: 5, kl: 0.5, psi: Number.POSITIVE_INFINITY, servingMean: 1, trainingMean: Number.NaN },
      { name: 'position', column: 12, kind: 'continuous', bins: 5, kl: 0.3, psi: 0.3, servingMean: 0, trainingMean: 0.2 },
    ],
    conditions,
  );
  t.same(report.features.map((f) => [f.name, f.flag, f.psi, f.training_mean]), [['user_ctr', 'skew', null, null], ['position', 'expected', 0.3, 0.2]]);
  t.same(JSON.parse(JSON.stringify(report)).features[0].psi, null, 'JSON has no NaN/Infinity');
  const table = formatSkewTable(report);
  t.ok(table.indexOf('user_ctr') < table.indexOf('position'), table);
  t.match(table, /flagged: user_ctr/);
});
