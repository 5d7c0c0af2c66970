/**
 * Ranker epochs that stop on the validation days: each model keeps the weights of its best epoch
 * on the validation rows, and those are exactly the weights a fixed run of that many epochs gives.
 */
import t from 'tap';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { buildExamples, indicesOf, SplitId } from '../../offline/pipeline/examples.js';
import type { ExampleSet } from '../../offline/pipeline/examples.js';
import { FIXED_RANKER_EPOCHS, fitRankers } from '../../offline/pipeline/fit.js';
import type { Rankers } from '../../offline/pipeline/fit.js';
import { ensureTinyAssets } from '../fixtures/assets.js';

/** The MMoE's mean loss over the validation rows, computed here independently of fit.ts. */
function mmoeValidationLoss(set: ExampleSet, rankers: Rankers): number {
  const f = rankerRowWidth(set.spec);
  const rows = indicesOf(set, SplitId.VALID);
  const x = new Float32Array(rows.length * f);
  const click = new Float32Array(rows.length);
  const watch = new Float32Array(rows.length);
  rows.forEach((r, k) => {
    x.set(set.ranker.subarray(r * f, (r + 1) * f), k * f);
    click[k] = set.click[r]!;
    watch[k] = Math.log1p(set.watchS[r]!);
  });
  return rankers.mmoe.loss(x, click, watch, rows.length);
}

t.test('epochs on validation keep the best epoch, the same weights as a fixed run of that length', async (t) => {
  const { worldDir } = await ensureTinyAssets();
  const set = await buildExamples(worldDir, DEFAULT_FEATURE_SPEC);
  t.ok(indicesOf(set, SplitId.VALID).length > 0, 'the tiny world has validation rows');
  const maxEpochs = 3;
  const stopped = fitRankers(set, { seed: 3, epochs: 'validation', maxEpochs });
  const kept = stopped.stats.mmoe.epochs;
  t.ok(kept >= 1 && kept <= maxEpochs, `kept epoch ${kept} within 1..${maxEpochs}`);
  const reported = stopped.stats.mmoe.validationLoss;
  t.ok(reported !== undefined && Number.isFinite(reported), 'the kept validation loss is reported');
  t.ok(Math.abs(mmoeValidationLoss(set, stopped) - reported!) < 1e-5, 'the returned weights are the ones that loss was measured on');

  const fixed = fitRankers(set, { seed: 3, epochs: kept });
  t.equal(fixed.stats.mmoe.validationLoss, undefined, 'a fixed run measures no validation loss');
  t.ok(Math.abs(mmoeValidationLoss(set, fixed) - reported!) < 1e-5, `a fixed ${kept}-epoch run gives the same weights`);
  if (kept < maxEpochs) {
    const longer = fitRankers(set, { seed: 3, epochs: kept + 1 });
    t.ok(mmoeValidationLoss(set, longer) >= reported!, 'it stopped because one more epoch did not lower the loss');
  }
});

t.test('without validation rows the fixed default applies; bad epochs are refused', async (t) => {
  const { worldDir } = await ensureTinyAssets();
  const set = await buildExamples(worldDir, DEFAULT_FEATURE_SPEC);
  const split = set.split.map((s) => (s === SplitId.VALID ? SplitId.OTHER : s));
  const noValid: ExampleSet = { ...set, split };
  const r = fitRankers(noValid, { seed: 3, epochs: 'validation', maxEpochs: 5 });
  t.equal(r.stats.mmoe.epochs, FIXED_RANKER_EPOCHS);
  t.equal(r.stats.mmoe.validationLoss, undefined);
  t.throws(() => fitRankers(set, { epochs: 0 }), /ranker epochs must be a positive integer or 'validation'/);
  t.throws(() => fitRankers(set, { epochs: 'validation', maxEpochs: 1.5 }), /ranker epochs/);
});
