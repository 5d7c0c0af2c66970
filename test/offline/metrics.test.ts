import t from 'tap';
import { auc, ece, groupedAuc, logLoss, mae, meanRecallAtK, recallAtK, weightedAuc } from '../../offline/eval/metrics.js';
import { formatReport, mergeIntoReport, mergeReports, readReport } from '../../offline/eval/report.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

t.test('auc: hand-computed cases with ties', async (t) => {
  t.equal(auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), 1);
  t.equal(auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]), 0);
  // pairs (pos,neg): (0.35,0.1)=1 (0.35,0.4)=0 (0.8,0.1)=1 (0.8,0.4)=1 -> 3/4
  t.equal(auc([0, 1, 0, 1], [0.1, 0.35, 0.4, 0.8]), 0.75);
  // a tie between a positive and a negative counts 1/2: pairs (0.5,0.5)=.5 (0.5,0.2)=1 -> 0.75
  t.equal(auc([1, 0, 0], [0.5, 0.5, 0.2]), 0.75);
  t.equal(auc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]), 0.5, 'all tied');
  t.ok(Number.isNaN(auc([1, 1], [0.2, 0.3])), 'one class -> NaN');
  t.throws(() => auc([1], [0.1, 0.2]), TypeError);
});

t.test('weightedAuc: positives weighted by watch time', async (t) => {
  // positives: A (score .9, 10 s), B (score .2, 1 s); negative N (score .5).
  // pairs: A>N weight 10 -> 10, B<N weight 1 -> 0; total 11 -> 10/11.
  t.equal(weightedAuc([1, 1, 0], [0.9, 0.2, 0.5], [10, 1, 1]), 10 / 11);
  t.equal(weightedAuc([1, 1, 0], [0.9, 0.2, 0.5], [1, 1, 1]), auc([1, 1, 0], [0.9, 0.2, 0.5]));
  t.throws(() => weightedAuc([1, 0], [0.1, 0.2], [-1, 1]), /weight/);
});

t.test('groupedAuc: only pairs inside a group count, weighted by their number', async (t) => {
  // Slot 0: one positive between two negatives -> AUC 1/2 over 2 pairs. Slot 1: both positives above
  // the negative -> AUC 1 over 2 pairs. Slot 2: one class, no pairs.
  const labels = [1, 0, 0, 1, 1, 0, 0, 0];
  const scores = [0.2, 0.5, 0.1, 0.9, 0.8, 0.4, 0.3, 0.6];
  const slots = [0, 0, 0, 1, 1, 1, 2, 2];
  t.equal(groupedAuc(labels, scores, slots), (0.5 * 2 + 1 * 2) / 4);
  t.not(groupedAuc(labels, scores, slots), auc(labels, scores), 'differs from the pooled AUC here');
  t.equal(groupedAuc(labels, scores, new Array(8).fill(0)), auc(labels, scores), 'one group = the pooled AUC');
  t.ok(Number.isNaN(groupedAuc([1, 0], [0.5, 0.4], [0, 1])), 'no group with both classes: NaN');
  t.throws(() => groupedAuc([1], [0.5, 0.4], [0, 0]), TypeError);
});

t.test('logLoss, mae, ece', async (t) => {
  t.ok(Math.abs(logLoss([1, 0], [0.8, 0.4]) - -(Math.log(0.8) + Math.log(0.6)) / 2) < 1e-12);
  t.ok(Number.isFinite(logLoss([1], [0])), 'clamped, not Infinity');
  t.equal(mae([1, 2, 3], [2, 2, 5]), 1);
  // 2 bins: bin0 p={0.1,0.3} y={0,1}: |0.4-1|=0.6; bin1 p={0.9} y={1}: |0.9-1|=0.1 -> 0.7/3
  t.ok(Math.abs(ece([0, 1, 1], [0.1, 0.3, 0.9], 2) - 0.7 / 3) < 1e-12);
  t.equal(ece([1, 0], [1, 0], 15), 0, 'p = 1 lands in the last bin');
  t.throws(() => ece([1], [0.5], 0), TypeError);
});

t.test('recallAtK and its mean over users with positives', async (t) => {
  t.equal(recallAtK([5, 3, 9, 1], new Set([3, 1, 7]), 2), 1 / 3);
  t.equal(recallAtK([5, 3, 9, 1], [3, 1, 7], 4), 2 / 3);
  t.equal(recallAtK([3, 3, 3], [3, 4], 3), 1 / 2, 'duplicates count once');
  t.ok(Number.isNaN(recallAtK([1], [], 1)));
  t.equal(
    meanRecallAtK(
      [
        { ranked: [1, 2], positives: new Set([1]) },
        { ranked: [1, 2], positives: new Set([3]) },
        { ranked: [1, 2], positives: new Set() },
      ],
      2,
    ),
    0.5,
  );
});

t.test('report: merge replaces per model, keeps others, drops non-finite; file round trip', async (t) => {
  const merged = mergeReports(
    { synth: { popularity: { recall_at_100: 0.1 }, mf: { recall_at_100: 0.2 } } },
    { synth: { mf: { recall_at_100: 0.3, auc: NaN, model_version: '' } }, kuairand: { popularity: { recall_at_10: 0.01 }, mmoe: { auc: 0.7, ranker_shape: '80-64-4x32-16' } } },
  );
  t.same(merged, {
    synth: { popularity: { recall_at_100: 0.1 }, mf: { recall_at_100: 0.3 } },
    kuairand: { popularity: { recall_at_10: 0.01 }, mmoe: { auc: 0.7, ranker_shape: '80-64-4x32-16' } },
  }, 'an empty label is dropped like a non-finite metric; a label is kept');
  t.match(formatReport(merged), /mf\s+0\.3000/);
  const dir = await mkdtemp(join(tmpdir(), 'upnext-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'reports', 'eval.json');
  t.same(await readReport(path), {});
  await mergeIntoReport({ a: { m: { auc: 0.7 } } }, path);
  await mergeIntoReport({ a: { n: { auc: 0.6 } } }, path);
  t.same(await readReport(path), { a: { m: { auc: 0.7 }, n: { auc: 0.6 } } });
});
