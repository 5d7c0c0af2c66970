/**
 * Where loadtest finds files that tsc does not copy into dist/ (the .proto files, scenario JSON).
 * Resolved from this module's own location, so it works from source and from the build alike.
 */
import path from 'node:path';
import { PROTO_DIR, REPO_ROOT } from '../core/paths.js';

export { PROTO_DIR, REPO_ROOT };

/** loadtest/scenarios/ in the source tree (JSON files are read from there, not from dist/). */
export const SCENARIO_DIR = path.join(REPO_ROOT, 'loadtest', 'scenarios');
