import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describeConfig } from '../../cluster/config.js';
import { REPO_ROOT } from '../../core/paths.js';

t.test('README documents every config knob with its current default', async (t) => {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const stale = describeConfig()
    .filter((row) => !readme.includes(`| \`${row.key}\` | ${String(row.default)} |`))
    .map((row) => `${row.key} (default ${String(row.default)})`);
  t.same(stale, [], 'knobs missing from README.md or shown with a stale default');
});
