/**
 * Where the repository's non-compiled files live (the .proto files, scenario JSON, data), resolved
 * from this module's own location so it works from the build (dist/core/paths.js) and from source
 * alike. Pure path arithmetic: no file-system access.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const inDist = path.basename(path.dirname(here)) === 'dist';

/** The repository root (the folder holding package.json). */
export const REPO_ROOT: string = inDist ? path.resolve(here, '..', '..') : path.resolve(here, '..');

/** protos/ at the repository root. */
export const PROTO_DIR: string = path.join(REPO_ROOT, 'protos');

/** The workspace's shared folder beside the checkout (DESIGN.md, data/kuairand). */
export const SHARED_DIR: string = path.resolve(REPO_ROOT, '..', 'shared');
