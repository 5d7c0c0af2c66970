/**
 * Ranker epochs that stop on the validation days: each model keeps the weights of its best epoch
 * on the validation rows, and those are exactly the weights a fixed run of that many epochs gives.
 */
import t from 'tap';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { buildExamples, indicesOf, SplitId } from '../../offline/pipeline/examples.js';
import type { ExampleSet } from '../../offline/pipeline/examples.js';
import { DEFAULT_MAX_RANKER_EPOCHS, FIXED_RANKER_EPOCHS, fitRankers } from '../../offline/pipeline/fit.js';
import type { Rankers } from '../../offline/pipeline/fit.js';
import { ensureTinyAssets } from '../fixtures/assets.js';

/** Each model's mean loss over the validation rows, computed here independently of fit.ts. */
function validationLosses(set: ExampleSet, r: Rankers): { mmoe: number; click: number; watch: number } {
  const f = rankerRowWidth(set.spec);
  const rows = indicesOf(set, SplitId.VALID);
  const n = rows.length;
  const x = new Float32Array(n * f);
  const click = new Float32Array(n);
  const watch = new Float32Array(n);
  rows.forEach((row, k) => {
    x.set(set.ranker.subarray(row * f, (row + 1) * f), k * f);
    click[k] = set.click[row]!;
    watch[k] = Math.log1p(set.watchS[row]!);
  });
  return { mmoe: r.mmoe.loss(x, click, watch, n), click: r.singleClick.loss(x, click, n), watch: r.singleWatch.loss(x, watch, n) };
}

const close = (a: number, b: number | undefined): boolean => b !== undefined && Math.abs(a - b) < 1e-5;

t.test('epochs on validation keep each model\'s best epoch, the weights of a fixed run of that length', async (t) => {
  const { worldDir } = await ensureTinyAssets();
  const set = await buildExamples(worldDir, DEFAULT_FEATURE_SPEC);
  t.ok(indicesOf(set, SplitId.VALID).length > 0, 'the tiny world has validation rows');
  const stopped = fitRankers(set, { seed: 7, epochs: 'validation' });
  const kept = stopped.epochs;
  // Seed 7 stops the MMoE before the cap, so the restore of an earlier epoch's weights is exercised.
  t.ok(kept.mmoe.epoch >= 1 && kept.mmoe.epoch < DEFAULT_MAX_RANKER_EPOCHS, `the MMoE kept epoch ${kept.mmoe.epoch} < ${DEFAULT_MAX_RANKER_EPOCHS}`);
  t.equal(stopped.stats.mmoe.epochs, kept.mmoe.epoch);
  t.equal(stopped.stats.mmoe.epochsTrained, kept.mmoe.epoch + 1, 'it trained one epoch past the kept one');
  t.equal(stopped.stats.mmoe.finalLoss, kept.mmoe.trainLoss, 'the final loss is the kept epoch\'s');

  const now = validationLosses(set, stopped);
  t.ok(close(now.mmoe, kept.mmoe.validationLoss), 'the MMoE returned is the one its kept loss was measured on');
  t.ok(close(now.click, kept.singleClick.validationLoss), 'so is the single-task click model');
  t.ok(close(now.watch, kept.singleWatch.validationLoss), 'and the single-task watch model');

  const fixedRuns = new Map<number, Rankers>();
  const fixed = (epochs: number): Rankers => {
    let r = fixedRuns.get(epochs);
    if (r === undefined) fixedRuns.set(epochs, (r = fitRankers(set, { seed: 7, epochs })));
    return r;
  };
  t.equal(fixed(kept.mmoe.epoch).stats.mmoe.validationLoss, undefined, 'a fixed run measures no validation loss');
  t.ok(close(validationLosses(set, fixed(kept.mmoe.epoch)).mmoe, kept.mmoe.validationLoss), `the MMoE = a fixed ${kept.mmoe.epoch}-epoch run's`);
  t.ok(close(validationLosses(set, fixed(kept.singleClick.epoch)).click, kept.singleClick.validationLoss), `the click model = a fixed ${kept.singleClick.epoch}-epoch run's`);
  t.ok(close(validationLosses(set, fixed(kept.singleWatch.epoch)).watch, kept.singleWatch.validationLoss), `the watch model = a fixed ${kept.singleWatch.epoch}-epoch run's`);
  t.ok(validationLosses(set, fixed(kept.mmoe.epoch + 1)).mmoe >= kept.mmoe.validationLoss!, 'it stopped because one more epoch did not lower the loss');
});

t.test('without validation rows the fixed count applies; bad epochs are refused', async (t) => {
  const { worldDir } = await ensureTinyAssets();
  const set = await buildExamples(worldDir, DEFAULT_FEATURE_SPEC);
  const split = set.split.map((s) => (s === SplitId.VALID ? SplitId.OTHER : s));
  const noValid: ExampleSet = { ...set, split };
  const r = fitRankers(noValid, { seed: 3, epochs: 'validation', maxEpochs: 5 });
  t.equal(r.stats.mmoe.epochs, FIXED_RANKER_EPOCHS);
  t.equal(r.stats.mmoe.validationLoss, undefined);
  t.throws(() => fitRankers(set, { epochs: 0 }), /ranker epochs must be a positive integer or 'validation'/);
  t.throws(() => fitRankers(set, { epochs: 'validation', maxEpochs: 1.5 }), /maxEpochs/);
});
