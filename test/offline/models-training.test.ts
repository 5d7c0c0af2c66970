/**
 * The models learn and are reproducible: two runs with one seed give bit-identical weights, the
 * two-tower's in-batch loss falls on a learnable pattern, and the MMoE separates a planted click
 * signal. Small feature spec so the tables are tiny.
 */
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { itemDenseWidth, userDenseWidth } from '../../core/features/towers.js';
import { auc } from '../../offline/eval/metrics.js';
import { MmoeModel } from '../../offline/models/mmoe.js';
import type { TowerBatch } from '../../offline/models/tower.js';
import { TwoTowerModel } from '../../offline/models/two-tower.js';

const spec: FeatureSpec = { ...DEFAULT_FEATURE_SPEC, userIdBuckets: 512, videoIdBuckets: 512, creatorIdBuckets: 64, historyLength: 4 };
const B = 32;

/** User u likes item u mod 64: a pattern an id-embedding model can learn. */
function batch(rng: SeededRng): { users: TowerBatch; items: TowerBatch; key: Int32Array; logQ: Float32Array } {
  const h = spec.historyLength;
  const uid = new Int32Array(B * 2);
  const iid = new Int32Array(B * 2);
  const key = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const u = rng.int(256);
    const item = u % 64;
    uid[b * 2] = u;
    uid[b * 2 + 1] = 256 + u;
    iid[b * 2] = item;
    iid[b * 2 + 1] = 100 + item;
    key[b] = item;
  }
  return {
    users: { ids: [uid, new Int32Array(B * h)], weights: [undefined, new Float32Array(B * h)], dense: new Float32Array(B * userDenseWidth(spec)) },
    items: { ids: [iid, new Int32Array(B)], weights: [undefined, undefined], dense: new Float32Array(B * itemDenseWidth(spec)) },
    key,
    logQ: new Float32Array(B).fill(Math.log(1 / 64)),
  };
}

function train(seed: number, steps: number): { model: TwoTowerModel; first: number; last: number } {
  const model = new TwoTowerModel(spec, { seed, embDim: 8, hidden: [16] });
  const rng = new SeededRng(99);
  let first = NaN;
  let last = 0;
  for (let s = 0; s < steps; s++) {
    const b = batch(rng);
    const l = model.trainStep(b.users, b.items, b.key, b.logQ, B);
    if (s === 0) first = l;
    if (s >= steps - 20) last += l / 20;
  }
  return { model, first, last };
}

t.test('two-tower: same seed, same weights; in-batch loss falls', async (t) => {
  const a = train(5, 300);
  const b = train(5, 300);
  t.same(Array.from(a.model.user.mlp.layers[0]!.weight.value.subarray(0, 64)), Array.from(b.model.user.mlp.layers[0]!.weight.value.subarray(0, 64)), 'deterministic');
  t.same(Array.from(a.model.item.tables[0]!.weight.subarray(0, 64)), Array.from(b.model.item.tables[0]!.weight.subarray(0, 64)));
  t.ok(a.last < a.first * 0.6, `loss ${a.first.toFixed(3)} → ${a.last.toFixed(3)}`);
  const c = train(6, 1);
  t.not(c.model.user.mlp.layers[0]!.weight.value[0], a.model.user.mlp.layers[0]!.weight.value[0], 'another seed, other weights');
});

t.test('MMoE learns a planted click signal and a watch signal', async (t) => {
  const f = 10;
  const rng = new SeededRng(3);
  const n = 2048;
  const x = new Float32Array(n * f).map(() => rng.next());
  const click = new Float32Array(n);
  const watch = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const z = 4 * (x[i * f]! - 0.5) + 2 * (x[i * f + 1]! - 0.5);
    click[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
    watch[i] = click[i]! * 3 * x[i * f + 2]!;
  }
  const model = new MmoeModel(f, { seed: 2, experts: 3 });
  for (let e = 0; e < 30; e++) for (let s = 0; s < n; s += 256) model.trainStep(x.subarray(s * f, (s + 256) * f), click.subarray(s, s + 256), watch.subarray(s, s + 256), 256);
  const p = model.predict(x, n);
  t.ok(auc(click, p.pClick) > 0.75, `click AUC ${auc(click, p.pClick)}`);
  let err = 0;
  let base = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += watch[i]! / n;
  for (let i = 0; i < n; i++) {
    err += Math.abs(p.watchLog1p[i]! - watch[i]!) / n;
    base += Math.abs(mean - watch[i]!) / n;
  }
  t.ok(err < base * 0.8, `watch MAE ${err.toFixed(3)} vs constant ${base.toFixed(3)}`);
});
