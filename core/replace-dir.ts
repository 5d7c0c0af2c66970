/**
 * Puts a fully written temporary folder in place of a snapshot folder, so that `final` is at every
 * moment either absent or a complete folder. rename(2) cannot replace a non-empty directory, so the
 * old folder is first renamed aside (atomic, unlike a recursive rm that a reader or another writer
 * could observe half done) and removed afterwards. Another writer (a twin replica on the same
 * machine, which with `cluster.itemReplicas` "all" builds the same shard at the same time) may
 * rename its folder into place between our two renames; ours then fails with ENOTEMPTY or EEXIST,
 * and we retry a few times (last writer wins, as for one writer), then keep the other writer's
 * folder: both describe the same key.
 */
import { rename, rm } from 'node:fs/promises';

const ATTEMPTS = 5;
let aside = 0;

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** Replaces `final` with `tmp` (both folders on one file system); `tmp` is gone afterwards. */
export async function replaceDir(tmp: string, final: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const old = `${final}.old-${process.pid}-${aside++}`;
    try {
      await rename(final, old);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw err;
    }
    try {
      await rename(tmp, final);
      return;
    } catch (err) {
      const code = codeOf(err);
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      if (attempt >= ATTEMPTS) {
        await rm(tmp, { recursive: true, force: true });
        return;
      }
    } finally {
      await rm(old, { recursive: true, force: true });
    }
  }
}
