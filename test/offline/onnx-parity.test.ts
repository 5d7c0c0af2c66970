import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { itemDenseWidth, userDenseWidth } from '../../core/features/towers.js';
import { MmoeModel, mmoeShape, mmoeShapeFor } from '../../offline/models/mmoe.js';
import { SingleTaskModel } from '../../offline/models/single-task.js';
import { TwoTowerModel } from '../../offline/models/two-tower.js';
import { exportItemTower, exportMmoeRanker, exportSingleTaskRanker, exportUserTower } from '../../offline/onnx/export.js';
import { PARITY_TOLERANCE, itemTowerParity, mmoeParity, rankerParity, userTowerParity } from '../../offline/onnx/parity.js';
import type { Catalogue } from '../../offline/pipeline/examples.js';
import { newUserRows } from '../../offline/pipeline/examples.js';

const spec = DEFAULT_FEATURE_SPEC;
const ROWS = 1000;
const rng = new SeededRng(7);

/** Random but valid tower inputs: ids in range, mean-pool weights over a random history length. */
function randomUsers(n: number) {
  const rows = newUserRows(n, spec);
  const h = spec.historyLength;
  const w = userDenseWidth(spec);
  for (let i = 0; i < n; i++) {
    rows.userIds[i * 2] = rng.int(spec.userIdBuckets);
    rows.userIds[i * 2 + 1] = rng.int(spec.userIdBuckets);
    const len = rng.int(h + 1);
    for (let k = 0; k < h; k++) {
      rows.historyIds[i * h + k] = k < len ? rng.int(spec.videoIdBuckets) : 0;
      rows.historyWeights[i * h + k] = k < len ? 1 / len : 0;
    }
    for (let k = 0; k < w; k++) rows.userDense[i * w + k] = rng.next();
  }
  rows.count = n;
  return rows;
}

function randomCatalogue(n: number): Catalogue {
  const w = itemDenseWidth(spec);
  const itemIds = new Int32Array(n * 2).map(() => rng.int(spec.videoIdBuckets));
  const creatorIds = new Int32Array(n).map(() => rng.int(spec.creatorIdBuckets));
  const itemDense = new Float32Array(n * w).map(() => rng.next());
  const videos = Array.from({ length: n }, (_, i) => ({ videoId: i, creatorId: 0, category: 0, durationS: 0, uploadTsMs: 0, tags: [], clickbait: false, quality: 0.5 }));
  return { videos, indexOf: new Map(), itemIds, creatorIds, itemDense };
}

function randomRows(n: number, f: number): Float32Array {
  return new Float32Array(n * f).map(() => (rng.next() < 0.3 ? rng.next() * 2 - 0.5 : 0));
}

t.test('user and item towers: onnxruntime matches the TypeScript forward pass on 1,000 rows', async (t) => {
  const model = new TwoTowerModel(spec, { seed: 3 });
  const u = await userTowerParity(model, exportUserTower(model), randomUsers(ROWS));
  t.equal(u.rows, ROWS);
  t.ok(u.maxAbsDiff <= PARITY_TOLERANCE, `user tower max abs diff ${u.maxAbsDiff}`);
  const i = await itemTowerParity(model, exportItemTower(model), randomCatalogue(ROWS));
  t.equal(i.rows, ROWS);
  t.ok(i.maxAbsDiff <= PARITY_TOLERANCE, `item tower max abs diff ${i.maxAbsDiff}`);
});

t.test('MMoE ranker: onnxruntime matches the TypeScript forward pass on 1,000 rows', async (t) => {
  const f = rankerRowWidth(spec);
  const model = new MmoeModel(f, { seed: 5, experts: 5 });
  const rows = randomRows(ROWS, f);
  // A few steps so the weights are not just their initial values.
  const click = new Float32Array(256).map(() => (rng.next() < 0.2 ? 1 : 0));
  const watch = new Float32Array(256).map(() => rng.next() * 5);
  for (let s = 0; s < 5; s++) model.trainStep(rows.subarray(0, 256 * f), click, watch, 256);
  const r = await mmoeParity(model, exportMmoeRanker(model), rows);
  t.equal(r.rows, ROWS);
  t.ok(r.maxAbsDiff <= PARITY_TOLERANCE, `ranker max abs diff ${r.maxAbsDiff}`);
});

t.test('an MMoE of other widths (train --mmoe-*) exports and matches, and names its shape', async (t) => {
  const f = rankerRowWidth(spec);
  const model = new MmoeModel(f, { seed: 6, sharedDim: 128, experts: 3, expertDim: 64, towerDim: 32 });
  t.equal(mmoeShape(model), `${f}-128-3x64-32`);
  t.equal(mmoeShapeFor(f, { sharedDim: 128, experts: 3, expertDim: 64, towerDim: 32 }), mmoeShape(model), 'the shape is known before training');
  t.equal(mmoeShape(new MmoeModel(f)), `${f}-64-4x32-16`, 'the defaults');
  t.equal(mmoeShapeFor(f), mmoeShape(new MmoeModel(f)));
  const rows = randomRows(ROWS, f);
  const r = await mmoeParity(model, exportMmoeRanker(model), rows);
  t.ok(r.maxAbsDiff <= PARITY_TOLERANCE, `ranker max abs diff ${r.maxAbsDiff}`);
  t.ok(exportMmoeRanker(new MmoeModel(f, { seed: 6 })).length < exportMmoeRanker(model).length / 2, 'the default ranker is the smaller file');
  for (const bad of [{ sharedDim: 0 }, { experts: 1.5 }, { expertDim: -1 }, { towerDim: Number.NaN }]) {
    t.throws(() => new MmoeModel(f, bad), TypeError, JSON.stringify(bad));
  }
});

t.test('single-task ranker pair exports under the same contract', async (t) => {
  const f = rankerRowWidth(spec);
  const click = new SingleTaskModel('click', f, { seed: 1 });
  const watch = new SingleTaskModel('watch', f, { seed: 2 });
  const rows = randomRows(ROWS, f);
  const r = await rankerParity((x, b) => ({ pClick: click.predict(x, b), watchLog1p: watch.predict(x, b) }), f, exportSingleTaskRanker(click, watch, f), rows);
  t.ok(r.maxAbsDiff <= PARITY_TOLERANCE, `single-task max abs diff ${r.maxAbsDiff}`);
});

t.test('a broken export is caught: parity fails when a weight differs', async (t) => {
  const f = rankerRowWidth(spec);
  const model = new MmoeModel(f, { seed: 5 });
  const bytes = exportMmoeRanker(model);
  const w = model.towers[0]!.layers[1]!.bias.value;
  w[0] = w[0]! + 0.5;
  const r = await mmoeParity(model, bytes, randomRows(100, f), 100);
  t.ok(r.maxAbsDiff > PARITY_TOLERANCE, `diff ${r.maxAbsDiff} must exceed the tolerance`);
});
