/**
 * `cli.js eval` re-evaluates a published version's ONNX files (what serving runs) and merges its
 * rows into the report, labelled with the version and the MMoE's widths from the manifest.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureTinyAssets, REPO_ROOT } from '../fixtures/assets.js';

const CLI = path.join(REPO_ROOT, 'dist', 'offline', 'cli.js');

t.test('eval labels the rows with the evaluated version and its ranker widths', async (t) => {
  const assets = await ensureTinyAssets();
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-eval-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const report = path.join(dir, 'eval.json');
  const world = path.basename(assets.worldDir);
  const r = spawnSync(
    process.execPath,
    [CLI, 'eval', '--models', path.dirname(assets.modelDir), '--version', assets.manifest.version,
      '--worlds-dir', path.dirname(assets.worldDir), '--world', world, '--report', report, '--quiet'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  t.equal(r.status, 0, r.stderr);
  const rows = (JSON.parse(await readFile(report, 'utf8')) as Record<string, Record<string, Record<string, unknown>>>)[world];
  const mmoe = rows?.['mmoe'];
  t.ok(typeof mmoe?.['auc'] === 'number' && mmoe['auc'] > 0.5 && mmoe['auc'] < 1, 'a click AUC of the ONNX ranker');
  t.equal(mmoe?.['model_version'], assets.manifest.version);
  t.equal(mmoe?.['ranker_shape'], assets.manifest.trainingData['rankerShape']);
  t.match(String(mmoe?.['ranker_shape']), /^\d+-64-4x32-16$/);
  t.equal(mmoe?.['ranker_epochs'], `${String(assets.manifest.trainingData['rankerEpochs'])} (fixed)`, 'the fixture trains a fixed count of ranker epochs');
  t.match(String(rows?.['single_task']?.['ranker_epochs']), /^\d+\/\d+ \(fixed\)$/);
  t.equal(rows?.['two_tower']?.['model_version'], assets.manifest.version);
  t.equal(rows?.['popularity']?.['model_version'], undefined, 'baselines carry no version');
  t.match(r.stdout, /mmoe: model_version /, 'the printed table names the model');
});
