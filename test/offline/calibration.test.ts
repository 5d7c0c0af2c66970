import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { calibrate } from '../../core/model/calibration.js';
import { fitIsotonic, fitTemperature, pav } from '../../offline/calibration/index.js';
import { ece } from '../../offline/eval/metrics.js';

t.test('PAV: hand case', async (t) => {
  // y = 1,3,2,4,3,5: pools (3,2) -> 2.5 and (4,3) -> 3.5
  const blocks = pav([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 3, 5]);
  t.same(blocks.map((b) => b.y), [1, 2.5, 3.5, 5]);
  t.same(blocks.map((b) => b.x), [1, 2.5, 4.5, 6]);
  t.same(blocks.map((b) => b.weight), [1, 2, 2, 1]);
  // fully decreasing input pools to one block at the mean
  t.same(pav([1, 2, 3], [3, 2, 1]).map((b) => b.y), [2]);
});

/** A sample whose true P(click) is q but whose model reports an over-confident p. */
function miscalibrated(n: number, seed: number): { probs: Float64Array; labels: Uint8Array } {
  const rng = new SeededRng(seed);
  const probs = new Float64Array(n);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const z = 2 * rng.normal() - 1;
    const q = 1 / (1 + Math.exp(-z));
    probs[i] = 1 / (1 + Math.exp(-2.5 * z)); // logit stretched 2.5x
    labels[i] = rng.next() < q ? 1 : 0;
  }
  return { probs, labels };
}

t.test('isotonic and temperature calibration bring ECE below 0.01 on held-out data', async (t) => {
  const fit = miscalibrated(40_000, 1);
  const test = miscalibrated(40_000, 2);
  const raw = ece(test.labels, test.probs);
  t.ok(raw > 0.05, `raw ECE ${raw.toFixed(4)} is clearly miscalibrated`);

  const iso = fitIsotonic(fit.probs, fit.labels);
  t.ok(iso.x.length <= 200, `${iso.x.length} knots <= 200`);
  for (let i = 1; i < iso.x.length; i++) {
    t.ok((iso.x[i] as number) > (iso.x[i - 1] as number) && (iso.y[i] as number) >= (iso.y[i - 1] as number), 'monotone knots');
  }
  const isoEce = ece(test.labels, Array.from(test.probs, (p) => calibrate(iso, p)));
  t.ok(isoEce < 0.01, `isotonic ECE ${isoEce.toFixed(4)} < 0.01`);

  const temp = fitTemperature(fit.probs, fit.labels);
  t.ok(Math.abs(temp.temperature - 2.5) < 0.15, `temperature ${temp.temperature.toFixed(3)} near 2.5`);
  const tEce = ece(test.labels, Array.from(test.probs, (p) => calibrate(temp, p)));
  t.ok(tEce < 0.01, `temperature ECE ${tEce.toFixed(4)} < 0.01`);
});

t.test('isotonic compresses to maxKnots and rejects bad input', async (t) => {
  const { probs, labels } = miscalibrated(5000, 3);
  const iso = fitIsotonic(probs, labels, { maxKnots: 10 });
  t.ok(iso.x.length <= 10 && iso.x.length >= 2);
  t.throws(() => fitIsotonic([0.1], [1, 0]), TypeError);
  t.throws(() => fitIsotonic([0.1], [1], { maxKnots: 1 }), TypeError);
});
