// reports/eval.json keys the default synthetic world as `synthetic` and KuaiRand as `kuairand`
// (the names); other worlds keep their own name so they never overwrite those rows.
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatReport, mergeIntoReport } from '../../offline/eval/report.js';
import { mergeRows, reportDatasetKey, reportFor, reportRows } from '../../offline/pipeline/report.js';

t.test('dataset keys', async (t) => {
  t.equal(reportDatasetKey('default'), 'synthetic');
  t.equal(reportDatasetKey('kuairand'), 'kuairand');
  t.equal(reportDatasetKey('tiny-2k'), 'tiny-2k');
});

t.test('the default world lands under `synthetic` in the report file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upnext-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'eval.json');
  await mergeIntoReport(reportFor(reportDatasetKey('default'), { two_tower: { recall_at_100: 0.17 }, popularity: { recall_at_100: 0.07 } }), path);
  await mergeIntoReport(reportFor(reportDatasetKey('kuairand'), { mmoe: { auc: 0.78 } }), path);
  const report = JSON.parse(await readFile(path, 'utf8')) as Record<string, Record<string, Record<string, number>>>;
  t.same(Object.keys(report).sort(), ['kuairand', 'synthetic']);
  t.equal(report['synthetic']?.['two_tower']?.['recall_at_100'], 0.17);
  t.equal(report['kuairand']?.['mmoe']?.['auc'], 0.78);
});

t.test('popularity gets its click metrics and its recall in one row', async (t) => {
  const rows = reportRows({
    popularity: { click_auc: 0.6, click_weighted_auc: 0.62, click_log_loss: 0.5, ece_raw: 0.02, impressions: 10 },
    mmoe: { click_auc: 0.7, click_weighted_auc: 0.72, click_log_loss_calibrated: 0.45, ece_calibrated: 0.01, ece_raw: 0.03, watch_mae_log1p: 1.1 },
  });
  const merged = mergeRows(rows, { popularity: { recall_at_10: 0.02, recall_at_100: 0.07 }, mf: { recall_at_100: 0.06 } });
  t.same(merged['popularity'], { auc: 0.6, weighted_auc: 0.62, logloss: 0.5, ece: 0.02, recall_at_10: 0.02, recall_at_100: 0.07 });
  t.equal(merged['mmoe']?.auc, 0.7);
  t.same(merged['mf'], { recall_at_100: 0.06 });
});

t.test('rows say which model: version on our models, widths on the MMoE, none on baselines', async (t) => {
  const metrics = {
    two_tower: { recall_at_10: 0.05, recall_at_100: 0.17 },
    mmoe: { click_auc: 0.75, click_weighted_auc: 0.78, click_log_loss_calibrated: 0.45, ece_calibrated: 0.006, ece_raw: 0.018, watch_mae_log1p: 1.1 },
    single_task: { click_auc: 0.74, click_weighted_auc: 0.77, click_log_loss_calibrated: 0.46, ece_calibrated: 0.007, ece_raw: 0.02, watch_mae_log1p: 1.2 },
    popularity: { click_auc: 0.56, click_weighted_auc: 0.57, click_log_loss: 0.55, ece_raw: 0.07 },
  };
  const rows = reportRows(metrics, { version: 'v1-r64', rankerShape: '80-64-4x32-16', rankerEpochs: { mmoe: 4, singleClick: 3, singleWatch: 5, from: 'validation' } });
  t.equal(rows['mmoe']?.ranker_epochs, '4 (validation)', 'the epoch the MMoE\'s weights are from');
  t.equal(rows['single_task']?.ranker_epochs, '3/5 (validation)', 'click/watch epochs of the single-task pair');
  t.equal(rows['two_tower']?.ranker_epochs, undefined);
  t.equal(rows['two_tower']?.model_version, 'v1-r64');
  t.equal(rows['mmoe']?.model_version, 'v1-r64');
  t.equal(rows['mmoe']?.ranker_shape, '80-64-4x32-16');
  t.equal(rows['single_task']?.model_version, 'v1-r64');
  t.equal(rows['single_task']?.ranker_shape, undefined, 'the widths are the MMoE\'s');
  t.equal(rows['popularity']?.model_version, undefined);
  const unpublished = reportRows(metrics, { rankerShape: '80-64-4x32-16' });
  t.equal(unpublished['mmoe']?.model_version, undefined, 'no version where nothing was published');
  t.equal(unpublished['mmoe']?.ranker_shape, '80-64-4x32-16');

  // The labels survive the file's merge and show under the table.
  const dir = await mkdtemp(join(tmpdir(), 'upnext-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'eval.json');
  const merged = await mergeIntoReport(reportFor('synthetic', rows), path);
  const onDisk = JSON.parse(await readFile(path, 'utf8')) as Record<string, Record<string, Record<string, unknown>>>;
  t.equal(onDisk['synthetic']?.['mmoe']?.['ranker_shape'], '80-64-4x32-16');
  t.equal(onDisk['synthetic']?.['mmoe']?.['auc'], 0.75);
  t.match(formatReport(merged), /mmoe: model_version v1-r64, ranker_shape 80-64-4x32-16/);
});
