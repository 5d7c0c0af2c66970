/**
 * Synthetic world CLI:
 *   node dist/offline/world/cli.js --name default --videos 1000000 --users 1000000 --days 7 --seed 1 --out data/worlds
 * Prints the manifest's counts and the generation speed on stdout, a progress bar on stderr.
 */
import { parseArgs } from 'node:util';
import { generateWorld } from './generate.js';
import { progressBar } from './progress.js';

const USAGE = `usage: cli.js [--name default] [--videos N] [--users N] [--days N] [--seed N] [--out data/worlds]
               [--creators N] [--categories 32] [--new-video-share 0.12] [--clickbait-share 0.05] [--zipf 0.9]`;

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new TypeError(`--${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      name: { type: 'string', default: 'default' },
      videos: { type: 'string' },
      users: { type: 'string' },
      days: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string', default: 'data/worlds' },
      creators: { type: 'string' },
      categories: { type: 'string' },
      'new-video-share': { type: 'string' },
      'clickbait-share': { type: 'string' },
      zipf: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const result = await generateWorld({
    name: values.name ?? 'default',
    outDir: values.out ?? 'data/worlds',
    videos: num('videos', values.videos),
    users: num('users', values.users),
    days: num('days', values.days),
    seed: num('seed', values.seed),
    creators: num('creators', values.creators),
    categories: num('categories', values.categories),
    newVideoShare: num('new-video-share', values['new-video-share']),
    clickbaitShare: num('clickbait-share', values['clickbait-share']),
    zipfExponent: num('zipf', values.zipf),
    onProgress: progressBar(),
  });
  const s = result.elapsedMs / 1000;
  const c = result.manifest.counts;
  console.log(
    JSON.stringify(
      {
        dir: result.dir,
        counts: c,
        ctr: c.impressions > 0 ? c.clicks / c.impressions : 0,
        droppedEvents: result.droppedEvents,
        seconds: Math.round(s * 10) / 10,
        eventsPerSec: Math.round(c.events / s),
        megabytes: Math.round(result.bytes / 1e5) / 10,
        mbPerSec: Math.round(result.bytes / 1e5 / s) / 10,
      },
      null,
      2,
    ),
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  console.error(USAGE);
  process.exit(1);
});
