/**
 * The click oracle of a synthetic world: the generator's own click probability for every test-day
 * impression, computed from the world's hidden truths (each user's interests on that day, each
 * video's quality, clickbait and trend; offline/world/behaviour.ts `clickLogitOf`) and scored with
 * the same AUC as the rankers. No ranker can beat it on average: it knows everything the world used
 * except the per-impression noise. It says how much of the gap between a ranker and a perfect AUC
 * of 1 is left to learn (the rest is the world's randomness).
 *
 * The hidden truths are rebuilt from the world's manifest (seed, sizes, start), which holds only the
 * options `make train` varies; the rebuilt catalogue is checked against the world's videos.ndjson, so
 * a world generated with other shares (clickbait, new videos, Zipf exponent) is refused rather than
 * scored against the wrong truth. Converted datasets (KuaiRand) have no oracle.
 */
import { EventType } from '../../core/events.js';
import { failedPrecondition } from '../../core/status.js';
import { clickLogitOf, matchOf } from '../world/behaviour.js';
import { DAY_MS } from '../world/format.js';
import { GENERATOR_VERSION, Population, catalogOf, resolveGenerateOptions, sessionDayOf } from '../world/generate.js';
import type { SimUser } from '../world/population.js';
import { readEventBatches, readVideos, readWorldManifest } from '../world/reader.js';
import { auc } from './metrics.js';

/** The oracle's score on a world's test days. */
export interface ClickOracle {
  /** ROC AUC of the true click log-odds against the logged clicks. */
  readonly auc: number;
  readonly impressions: number;
  readonly clicks: number;
}

/** Videos compared between the rebuilt catalogue and videos.ndjson before trusting the rebuild. */
const CHECKED_VIDEOS = 500;

/**
 * Scores the oracle on the world's test days. Throws FAILED_PRECONDITION for a converted world, a
 * world of another generator version, or one whose catalogue does not rebuild from its manifest.
 */
export async function clickOracle(worldDir: string): Promise<ClickOracle> {
  const m = await readWorldManifest(worldDir);
  if (m.source !== 'synthetic') throw failedPrecondition(`world ${m.name} is ${m.source}: only a generated world has a click oracle`);
  if (m.generatorVersion !== GENERATOR_VERSION) {
    throw failedPrecondition(`world ${m.name} was written by generator version ${m.generatorVersion}, this build's is ${GENERATOR_VERSION}: regenerate it`);
  }
  const options = resolveGenerateOptions({
    name: m.name,
    outDir: worldDir,
    videos: m.numVideos,
    users: m.numUsers,
    creators: m.numCreators,
    categories: m.numCategories,
    days: m.days,
    seed: m.seed,
    startMs: m.startMs,
  });
  const catalog = catalogOf(options);
  let checked = 0;
  for await (const v of readVideos(worldDir)) {
    const r = catalog.record(v.videoId);
    const same =
      r.creatorId === v.creatorId && r.category === v.category && r.durationS === v.durationS && r.uploadTsMs === v.uploadTsMs && r.clickbait === v.clickbait && r.quality === v.quality;
    if (!same) {
      throw failedPrecondition(`world ${m.name}: video ${v.videoId} does not rebuild from the manifest (generated with non-default options?): no oracle`);
    }
    if (++checked >= CHECKED_VIDEOS) break;
  }
  const population = new Population(options.seed, options.users, catalog);

  const testDays = [...m.split.testDays];
  const users = new Map<string, SimUser>();
  const logits: number[] = [];
  const shown = new Map<string, number>();
  const labels: number[] = [];
  for await (const batch of readEventBatches(worldDir, { days: testDays })) {
    for (const e of batch) {
      // The response model's unit is one slot of one feed: (request, video, position).
      const slot = `${e.requestId}|${e.videoId}|${e.position}`;
      if (e.type === EventType.IMPRESSION) {
        if (!(e.videoId >= 1 && e.videoId <= m.numVideos)) continue; // never clicked by construction
        // The user's interests are those of the day the session started (it may run past midnight).
        const day = sessionDayOf(e.requestId) ?? Math.floor((e.tsMs - m.startMs) / DAY_MS);
        const key = `${e.userId}|${day}`;
        let user = users.get(key);
        if (user === undefined) {
          user = population.user(e.userId, day);
          users.set(key, user);
        }
        shown.set(slot, logits.length);
        logits.push(clickLogitOf(catalog, matchOf(catalog, user, e.videoId), e.videoId, e.tsMs, e.position));
        labels.push(0);
      } else if (e.type === EventType.CLICK) {
        const i = shown.get(slot);
        if (i !== undefined) labels[i] = 1;
      }
    }
  }
  return { auc: auc(labels, logits), impressions: labels.length, clicks: labels.reduce((a, b) => a + b, 0) };
}
