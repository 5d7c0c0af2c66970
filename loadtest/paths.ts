/**
 * Where loadtest finds files that tsc does not copy into dist/ (the .proto files, scenario JSON).
 * Resolved from this module's own location, so it works from source and from the build alike.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository root: the nearest folder above this module that holds package.json. */
export const REPO_ROOT: string = (() => {
  let dir = here;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(here, '..', '..');
    dir = up;
  }
})();

/** protos/ at the repository root. */
export const PROTO_DIR = path.join(REPO_ROOT, 'protos');

/** loadtest/scenarios/ in the source tree (JSON files are read from there, not from dist/). */
export const SCENARIO_DIR = path.join(REPO_ROOT, 'loadtest', 'scenarios');
