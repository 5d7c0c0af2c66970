import t from 'tap';
import { quantileSorted } from '../../loadtest/measure/quantile.js';

t.test('nearest rank at floor(p × n), clamped to the last; 0 when empty', async (t) => {
  const v = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.equal(quantileSorted(v, 0), 1);
  t.equal(quantileSorted(v, 0.5), 6, 'the upper median of an even count');
  t.equal(quantileSorted(v, 0.99), 10);
  t.equal(quantileSorted(v, 1), 10, 'clamped');
  t.equal(quantileSorted([], 0.5), 0);
  t.throws(() => quantileSorted(v, 1.5), RangeError);
  t.throws(() => quantileSorted(v, Number.NaN), RangeError);
});
