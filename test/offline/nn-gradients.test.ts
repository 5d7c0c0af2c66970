/**
 * Finite-difference gradient checks for the engine's building blocks: a dense layer (with ReLU, via
 * an MLP), an embedding bag with mean-pooling weights behind an L2-normalising tower, and the MMoE
 * gates. Each compares the analytic gradient of a scalar loss with (L(θ+ε) − L(θ−ε)) / 2ε.
 */
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { MmoeModel } from '../../offline/models/mmoe.js';
import { Tower } from '../../offline/models/tower.js';
import type { TowerBatch } from '../../offline/models/tower.js';
import { Mlp } from '../../offline/nn/mlp.js';
import { zeroGrads } from '../../offline/nn/param.js';

const EPS = 1e-3;

/** Relative error tolerant of tiny gradients (float32 forward passes). */
function close(analytic: number, numeric: number): boolean {
  return Math.abs(analytic - numeric) <= 2e-3 + 2e-2 * Math.max(Math.abs(analytic), Math.abs(numeric));
}

/** L = Σ c_k · y_k for fixed random c: dL/dy = c. */
function weightedSum(y: Float32Array, c: Float32Array): number {
  let s = 0;
  for (let i = 0; i < c.length; i++) s += y[i]! * c[i]!;
  return s;
}

t.test('dense layers (MLP with ReLU): weights, biases and inputs', async (t) => {
  const rng = new SeededRng(11);
  const batch = 4;
  const mlp = new Mlp('m', [6, 5, 3], rng);
  const x = new Float32Array(batch * 6).map(() => rng.next() * 2 - 1);
  const c = new Float32Array(batch * 3).map(() => rng.next() * 2 - 1);
  const loss = (): number => weightedSum(mlp.forward(x, batch), c);
  zeroGrads(mlp.params);
  loss();
  const dx = mlp.backward(c.slice(), true).slice();
  let checked = 0;
  for (const p of mlp.params) {
    for (let i = 0; i < p.value.length; i += 3) {
      const orig = p.value[i]!;
      p.value[i] = orig + EPS;
      const up = loss();
      p.value[i] = orig - EPS;
      const down = loss();
      p.value[i] = orig;
      const num = (up - down) / (2 * EPS);
      if (!close(p.grad[i]!, num)) t.fail(`${p.name}[${i}] analytic ${p.grad[i]} numeric ${num}`);
      checked++;
    }
  }
  for (let i = 0; i < x.length; i++) {
    const orig = x[i]!;
    x[i] = orig + EPS;
    const up = loss();
    x[i] = orig - EPS;
    const down = loss();
    x[i] = orig;
    const num = (up - down) / (2 * EPS);
    if (!close(dx[i]!, num)) t.fail(`x[${i}] analytic ${dx[i]} numeric ${num}`);
    checked++;
  }
  t.ok(checked > 30, `checked ${checked} coordinates`);
});

t.test('embedding bags: sparse gradients of summed and mean-pooled bags through an L2-normalised tower', async (t) => {
  const rng = new SeededRng(12);
  const batch = 3;
  const tower = new Tower(
    {
      name: 'u',
      bags: [
        { name: 'id', rows: 10, bag: 2, weighted: false },
        { name: 'hist', rows: 12, bag: 4, weighted: true },
      ],
      embDim: 3,
      denseWidth: 2,
      hidden: [5],
      outDim: 4,
    },
    rng,
  );
  const ids = Int32Array.from([1, 7, 2, 2, 9, 0]);
  const hist = Int32Array.from([3, 4, 5, 0, 3, 11, 0, 0, 6, 6, 1, 2]);
  const hw = Float32Array.from([1 / 3, 1 / 3, 1 / 3, 0, 0.5, 0.5, 0, 0, 0.25, 0.25, 0.25, 0.25]);
  const input: TowerBatch = { ids: [ids, hist], weights: [undefined, hw], dense: new Float32Array(batch * 2).map(() => rng.next()) };
  const c = new Float32Array(batch * 4).map(() => rng.next() * 2 - 1);
  const loss = (): number => weightedSum(tower.forward(input, batch), c);
  zeroGrads(tower.params);
  for (const tb of tower.tables) tb.zeroGrad();
  loss();
  tower.backward(c.slice());
  let checked = 0;
  for (const table of tower.tables) {
    const touched = new Set(table.touchedRows);
    for (let row = 0; row < table.rows; row++) {
      for (let j = 0; j < table.dim; j++) {
        const i = row * table.dim + j;
        const orig = table.weight[i]!;
        table.weight[i] = orig + EPS;
        const up = loss();
        table.weight[i] = orig - EPS;
        const down = loss();
        table.weight[i] = orig;
        const num = (up - down) / (2 * EPS);
        const slot = table.touchedRows.indexOf(row);
        const analytic = slot < 0 ? 0 : table.gradBuffer[slot * table.dim + j]!;
        if (!close(analytic, num)) t.fail(`${table.name}[${row},${j}] analytic ${analytic} numeric ${num}`);
        checked++;
      }
      // Rows no id referenced carry no gradient slot at all (the point of sparse updates); the
      // padding id 0 of the history bag has weight 0 except where a real entry uses row 0.
      if (!touched.has(row)) {
        const used = table.name.endsWith('.id') ? [...ids].includes(row) : [...hist].some((h, k) => h === row && hw[k]! > 0);
        t.notOk(used, `${table.name} row ${row} is used but has no gradient slot`);
      }
    }
  }
  t.ok(checked >= 66, `checked ${checked} coordinates`);
});

t.test('MMoE gates: gradient of the joint click + watch loss w.r.t. gate and expert weights', async (t) => {
  const rng = new SeededRng(13);
  const batch = 5;
  const f = 7;
  const model = new MmoeModel(f, { sharedDim: 6, experts: 3, expertDim: 4, towerDim: 3, seed: 4, watchWeight: 0.5 });
  const x = new Float32Array(batch * f).map(() => rng.next() * 2 - 1);
  const click = Float32Array.from([1, 0, 0, 1, 0]);
  const watch = Float32Array.from([2.5, 0, 0.3, 4, 0]);
  model.backwardLoss(x, click, watch, batch);
  let checked = 0;
  const params = [...model.gates.flatMap((g) => g.params), ...model.experts.params, ...model.shared.params.slice(0, 1)];
  for (const p of params) {
    const grad = p.grad.slice();
    for (let i = 0; i < p.value.length; i += 2) {
      const orig = p.value[i]!;
      p.value[i] = orig + EPS;
      const up = model.loss(x, click, watch, batch);
      p.value[i] = orig - EPS;
      const down = model.loss(x, click, watch, batch);
      p.value[i] = orig;
      const num = (up - down) / (2 * EPS);
      if (!close(grad[i]!, num)) t.fail(`${p.name}[${i}] analytic ${grad[i]} numeric ${num}`);
      checked++;
    }
  }
  const gateGradNorm = model.gates.reduce((s, g) => s + g.weight.grad.reduce((a, v) => a + Math.abs(v), 0), 0);
  t.ok(gateGradNorm > 0, 'gates receive gradient');
  t.ok(checked > 50, `checked ${checked} coordinates`);
});
