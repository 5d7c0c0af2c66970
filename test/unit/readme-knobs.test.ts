import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describeConfig } from '../../cluster/config.js';
import { REPO_ROOT } from '../../core/paths.js';

t.test('README documents every config knob', async (t) => {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const missing = describeConfig()
    .map((row) => row.key)
    .filter((key) => !readme.includes(`\`${key}\``));
  t.same(missing, [], 'knobs missing from README.md');
});
