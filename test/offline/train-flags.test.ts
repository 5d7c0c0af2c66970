/**
 * `cli.js train`'s ranker flags and version naming: the widths name a local model version, a bad
 * width or version fails before any world is generated, and a named version is never replaced.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { specHash } from '../../core/features/index.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { checkModelVersionName } from '../../actors/model/embedding-space.js';
import { localModelVersion } from '../../cluster/local/assets.js';
import { DEFAULT_MMOE_WIDTHS, mmoeShapeFor, mmoeWidthsTag } from '../../offline/models/mmoe.js';
import { rankerEpochsTag } from '../../offline/pipeline/fit.js';
import { REPO_ROOT } from '../../core/paths.js';

const CLI = path.join(REPO_ROOT, 'dist', 'offline', 'cli.js');

t.test('a local model version names the feature spec and the MMoE widths', async (t) => {
  const w = DEFAULT_MMOE_WIDTHS;
  t.equal(mmoeWidthsTag(), `r${w.sharedDim}-${w.experts}x${w.expertDim}-${w.towerDim}`);
  t.equal(mmoeWidthsTag({ sharedDim: 128, expertDim: 64, towerDim: 32 }), `r128-${w.experts}x64-32`);
  const v = localModelVersion('local-1000v-10u-3d-s1');
  t.equal(v, `local-1000v-10u-3d-s1-${specHash(DEFAULT_FEATURE_SPEC).slice(0, 12)}-${mmoeWidthsTag()}`, 'the default fixed 2 epochs add no tag');
  t.equal(rankerEpochsTag(3), 'e3', 'a fixed count names itself');
  t.equal(rankerEpochsTag('validation'), 'ev');
  t.equal(checkModelVersionName(v), v, 'a valid directory name');
  t.throws(() => mmoeShapeFor(80, { sharedDim: 0 }), TypeError);
});

t.test('train: bad widths and versions fail before any world is generated; a named version is not replaced', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'upnext-train-flags-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const worlds = path.join(root, 'worlds');
  const models = path.join(root, 'models');
  await mkdir(path.join(models, 'taken'), { recursive: true });
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, 'train', '--worlds-dir', worlds, '--world', 'w', '--videos', '500', '--users', '50', '--days', '3', '--out', models, '--no-kuairand', '--quiet', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
  for (const [args, needle] of [
    [['--mmoe-shared', '0'], '--mmoe-shared'],
    [['--mmoe-experts', '2.5'], '--mmoe-experts'],
    [['--mmoe-seed', 'x'], '--mmoe-seed'],
    [['--ranker-epochs', 'often'], '--ranker-epochs'],
    [['--ranker-epochs', '0'], '--ranker-epochs'],
    [['--kuairand-ranker-epochs', 'x'], '--kuairand-ranker-epochs'],
    [['--version', '../escape'], 'version'],
    [['--version', 'taken'], 'exists'],
  ] as const) {
    const r = run(...args);
    t.equal(r.status, 1, `${args.join(' ')}: exit status 1`);
    t.match(r.stderr, needle, `${args.join(' ')}: the message names ${needle}`);
    t.notOk(existsSync(path.join(worlds, 'w')), `${args.join(' ')}: no world generated`);
  }
  t.same(await readdir(path.join(models, 'taken')), [], 'the existing version is untouched');
});
