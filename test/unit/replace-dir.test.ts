import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { replaceDir } from '../../core/replace-dir.js';

async function folder(root: string, name: string, content: string): Promise<string> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'meta.json'), content);
  return dir;
}

t.test('replaceDir puts the new folder in place of an older one', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'upnext-replace-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const final = path.join(root, 'snap');
  await replaceDir(await folder(root, 'a.tmp', 'A'), final);
  t.equal(await readFile(path.join(final, 'meta.json'), 'utf8'), 'A');
  await replaceDir(await folder(root, 'b.tmp', 'B'), final);
  t.equal(await readFile(path.join(final, 'meta.json'), 'utf8'), 'B', 'an older snapshot is replaced');
  t.notOk(existsSync(path.join(root, 'a.tmp')) || existsSync(path.join(root, 'b.tmp')), 'no temporary folder left');
});

t.test('twin writers racing for the same folder both finish, one of them wins, no temp left', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'upnext-replace-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  for (let round = 0; round < 20; round++) {
    const final = path.join(root, `snap-${round}`);
    const writers = await Promise.all(['x', 'y', 'z'].map((w) => folder(root, `${w}-${round}.tmp`, w)));
    await Promise.all(writers.map((tmp) => replaceDir(tmp, final)));
    t.match(await readFile(path.join(final, 'meta.json'), 'utf8'), /^[xyz]$/, `round ${round}: a complete folder in place`);
    t.notOk(writers.some((w) => existsSync(w)), `round ${round}: temporary folders gone`);
  }
});
