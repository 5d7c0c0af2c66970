/**
 * Evaluates the popularity and MF baselines on worlds and merges the results into reports/eval.json:
 *   node dist/offline/baselines/cli.js data/worlds/default data/worlds/kuairand [--report reports/eval.json]
 * The dataset key is the world's name.
 */
import { parseArgs } from 'node:util';
import { evaluateRetrieval, loadRetrievalTask } from '../eval/retrieval.js';
import { formatReport, mergeIntoReport, DEFAULT_REPORT_PATH } from '../eval/report.js';
import type { EvalReport } from '../eval/report.js';
import { readWorldManifest } from '../world/reader.js';
import { MatrixFactorization } from './matrix-factorization.js';
import { PopularityRecommender } from './popularity.js';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { report: { type: 'string', default: DEFAULT_REPORT_PATH } } });
  if (positionals.length === 0) throw new TypeError('usage: cli.js <world dir>... [--report reports/eval.json]');
  const update: EvalReport = {};
  for (const dir of positionals) {
    const m = await readWorldManifest(dir);
    const task = await loadRetrievalTask(dir);
    const pop = await PopularityRecommender.fit(dir);
    const mf = await MatrixFactorization.fit(dir);
    update[m.name] = {
      popularity: await evaluateRetrieval(task, (u, k, ex) => pop.recommend(u, k, ex)),
      mf: await evaluateRetrieval(task, (u, k, ex) => mf.recommend(u, k, true, ex)),
    };
  }
  console.log(formatReport(await mergeIntoReport(update, values.report)));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
