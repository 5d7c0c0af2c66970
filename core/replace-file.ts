/**
 * Puts new contents in place of a file so that a reader sees either the old file or the new one,
 * never half of one (rename(2) within one file system), with the new file's mode set before it
 * appears (seeds and keys are 0600 from the first byte) and its data synced before the rename, so a
 * crash cannot leave an empty file under the final name. The temporary sibling is removed when a
 * step fails.
 */
import { randomBytes } from 'node:crypto';
import { chmod, open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

/** Replaces `file` with `data` (mode `mode`, default 0600). */
export async function replaceFile(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx', mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await chmod(tmp, mode); // open's mode is masked by the umask
    await rename(tmp, file);
  } catch (err) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
