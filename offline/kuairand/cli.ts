/**
 * KuaiRand conversion CLI: `node dist/offline/kuairand/cli.js [--source DIR] [--out data/worlds/kuairand]`.
 */
import { parseArgs } from 'node:util';
import { KUAIRAND_SOURCE_DIR, convertKuaiRand } from './convert.js';

const { values } = parseArgs({
  options: { source: { type: 'string', default: KUAIRAND_SOURCE_DIR }, out: { type: 'string', default: 'data/worlds/kuairand' } },
});
convertKuaiRand({ sourceDir: values.source, outDir: values.out })
  .then((r) => {
    const { dir, rows, duplicateRowsDropped, rowsOutsideDays, videosWithPureFeatures, manifest } = r;
    console.log(JSON.stringify({ dir, rows, duplicateRowsDropped, rowsOutsideDays, videosWithPureFeatures, counts: manifest.counts }, null, 2));
  })
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
