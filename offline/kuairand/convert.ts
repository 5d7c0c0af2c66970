/**
 * Converts the KuaiRand sample (../shared/data/kuairand, CC BY-SA 4.0) into a world directory
 * (offline/world/format.ts) so every downstream tool treats it like any world.
 *
 * Mapping (one input row = one impression of `video_id` to `user_id` at `time_ms`):
 * - IMPRESSION always; CLICK when `is_click=1`; WATCH with `play_time_ms / 1000` s when > 0;
 *   LIKE when `label=1` (explicitly liked); SKIP when `label=0` (explicitly hated — the closest
 *   negative event we have). All events of a row share the row's `time_ms` (so a row never straddles
 *   a day file) and are written in that order; position -1 (unknown); localHour from `hourmin`
 *   (Beijing time); device "unknown", country "" (the sample has neither).
 * - Duplicates: 433 (user, video) pairs occur twice. Rule: keep the EARLIEST row (by `time_ms`,
 *   then file order) and drop the later ones — a repeat showing of a video the user already judged
 *   would leak the label into later days and double-count positives.
 * - Videos: every video in the interactions. `durationS` = the largest non-zero `duration_ms` of its
 *   rows (else Pure `video_duration`, else 0 = unknown). Category = first Pure `tag` hashed into
 *   numCategories (else `video_type` hashed, else the video id hashed: a stand-in with no meaning).
 *   Creator = Pure `author_id`, else a stand-in 2^32 + hash(video id) (one per video: grouping
 *   unrelated videos under a fake creator would invent a signal). Upload time = Pure `upload_dt`
 *   (UTC midnight), else the video's first impression in the sample. `clickbait` false, quality 0.5.
 * - Users: every user in the interactions; activity = distinct active days / days.
 * - Days: UTC days from 2022-04-07; split (README): train through 2022-04-17, validate 2022-04-18,
 *   test 2022-04-19..21.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { hashId, hashString } from '../../core/hash.js';
import type { UserRecord, VideoRecord, WorldManifest, WorldSplit } from '../world/format.js';
import { DAY_MS, dayOf } from '../world/format.js';
import { WorldWriter, userLine, videoLine } from '../world/writer.js';
import { parseTable } from './csv.js';
import { SHARED_DIR } from '../../core/paths.js';

/** Where the sample lives: ../shared/data/kuairand beside the checkout. */
export const KUAIRAND_SOURCE_DIR = join(SHARED_DIR, 'data', 'kuairand');
/** 2022-04-07T00:00:00Z, day 0 of the converted world. */
export const KUAIRAND_START_MS = Date.UTC(2022, 3, 7);
/** Days 0..14 = 2022-04-07..21; train ≤ 04-17 (days 0..10), valid 04-18 (11), test 04-19..21 (12..14). */
export const KUAIRAND_SPLIT: WorldSplit = Object.freeze({
  trainDays: Object.freeze([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
  validDays: Object.freeze([11]),
  testDays: Object.freeze([12, 13, 14]),
});
const KUAIRAND_DAYS = 15;
const SEED_CATEGORY = 0x6b0a0001;
const SEED_CREATOR = 0x6b0a0002;

/** Options of {@link convertKuaiRand}. */
export interface KuaiRandOptions {
  /** Input directory. Default {@link KUAIRAND_SOURCE_DIR}. */
  readonly sourceDir?: string;
  /** Output world directory. Default `data/worlds/kuairand`. */
  readonly outDir?: string;
  /** Categories to hash into. Default 32. */
  readonly numCategories?: number;
  /** `createdAt` of the manifest. Default now. */
  readonly createdAt?: string;
}

/** What the conversion did (for the report and tests). */
export interface KuaiRandConversion {
  readonly dir: string;
  readonly manifest: WorldManifest;
  readonly rows: number;
  readonly duplicateRowsDropped: number;
  readonly rowsOutsideDays: number;
  readonly videosWithPureFeatures: number;
}

interface Row {
  readonly userId: number;
  readonly videoId: number;
  readonly tsMs: number;
  readonly localHour: number;
  readonly click: boolean;
  readonly playMs: number;
  readonly durationMs: number;
  readonly label: number;
  readonly order: number;
}

function int(v: string | undefined): number {
  const n = Number(v);
  return Number.isFinite(n) && v !== undefined && v !== '' ? n : NaN;
}

/** Converts the sample; replaces any previous world at `outDir`. */
export async function convertKuaiRand(opts: KuaiRandOptions = {}): Promise<KuaiRandConversion> {
  const src = opts.sourceDir ?? KUAIRAND_SOURCE_DIR;
  const outDir = opts.outDir ?? join('data', 'worlds', 'kuairand');
  const numCategories = opts.numCategories ?? 32;
  const table = parseTable(await readFile(join(src, 'interactions_kcore15.tsv'), 'utf8'), '\t');
  const rows: Row[] = table.map((r, order) => ({
    userId: int(r['user_id']),
    videoId: int(r['video_id']),
    tsMs: int(r['time_ms']),
    localHour: Math.floor(int(r['hourmin']) / 100),
    click: r['is_click'] === '1',
    playMs: int(r['play_time_ms']) || 0,
    durationMs: int(r['duration_ms']) || 0,
    label: int(r['label']),
    order,
  }));
  for (const r of rows) {
    if (!Number.isFinite(r.userId) || !Number.isFinite(r.videoId) || !Number.isFinite(r.tsMs)) {
      throw new TypeError(`interactions_kcore15.tsv row ${r.order + 2}: user_id, video_id and time_ms must be numbers`);
    }
  }
  rows.sort((a, b) => a.tsMs - b.tsMs || a.order - b.order);
  const firstSeen = new Set<string>();
  const kept: Row[] = [];
  let duplicates = 0;
  let outside = 0;
  for (const r of rows) {
    const key = `${r.userId}:${r.videoId}`;
    if (firstSeen.has(key)) {
      duplicates++;
      continue;
    }
    firstSeen.add(key);
    const day = dayOf(r.tsMs, KUAIRAND_START_MS);
    if (day < 0 || day >= KUAIRAND_DAYS) {
      outside++;
      continue;
    }
    kept.push(r);
  }

  // Pure video features (a small subset of the videos).
  const pure = new Map<number, Record<string, string>>();
  for (const v of parseTable(await readFile(join(src, 'video_features_basic_pure.csv'), 'utf8'))) pure.set(int(v['video_id']), v);

  const videoIds = [...new Set(kept.map((r) => r.videoId))].sort((a, b) => a - b);
  const durationMs = new Map<number, number>();
  const firstTs = new Map<number, number>();
  for (const r of kept) {
    if (r.durationMs > (durationMs.get(r.videoId) ?? 0)) durationMs.set(r.videoId, r.durationMs);
    if (!firstTs.has(r.videoId)) firstTs.set(r.videoId, r.tsMs);
  }
  let withPure = 0;
  const creators = new Set<number>();
  const videos: VideoRecord[] = videoIds.map((videoId) => {
    const f = pure.get(videoId);
    if (f !== undefined) withPure++;
    const tags = (f?.['tag'] ?? '')
      .split(',')
      .map((t) => int(t.trim()))
      .filter((t) => Number.isInteger(t));
    const author = int(f?.['author_id']);
    const creatorId = Number.isFinite(author) ? author : 2 ** 32 + hashId(videoId, SEED_CREATOR);
    creators.add(creatorId);
    const type = f?.['video_type'] ?? '';
    const category =
      tags[0] !== undefined
        ? hashId(tags[0], SEED_CATEGORY) % numCategories
        : type !== ''
          ? hashString(type, SEED_CATEGORY) % numCategories
          : hashId(videoId, SEED_CATEGORY) % numCategories;
    const pureDur = int(f?.['video_duration']);
    const dMs = durationMs.get(videoId) ?? 0;
    const durationS = dMs > 0 ? dMs / 1000 : Number.isFinite(pureDur) && pureDur > 0 ? pureDur / 1000 : 0;
    const uploadDt = f?.['upload_dt'];
    const uploadTsMs = uploadDt !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(uploadDt) ? Date.parse(`${uploadDt}T00:00:00Z`) : (firstTs.get(videoId) ?? 0);
    return { videoId, creatorId, category, durationS, uploadTsMs, tags, clickbait: false, quality: 0.5 };
  });

  const activeDays = new Map<number, Set<number>>();
  for (const r of kept) {
    let s = activeDays.get(r.userId);
    if (s === undefined) activeDays.set(r.userId, (s = new Set()));
    s.add(dayOf(r.tsMs, KUAIRAND_START_MS));
  }
  const users: UserRecord[] = [...activeDays.keys()]
    .sort((a, b) => a - b)
    .map((userId) => ({
      userId,
      country: '',
      device: 'unknown',
      activity: Math.round(((activeDays.get(userId)?.size ?? 0) / KUAIRAND_DAYS) * 1000) / 1000,
    }));

  const world = await WorldWriter.create(outDir);
  try {
    const vw = world.videos();
    for (const v of videos) await vw.writeLine(videoLine(v));
    await world.close(vw);
    const uw = world.users();
    for (const u of users) await uw.writeLine(userLine(u));
    await world.close(uw);
    const counts = { events: 0, impressions: 0, clicks: 0, watches: 0, likes: 0, skips: 0 };
    let i = 0;
    for (let day = 0; day < KUAIRAND_DAYS; day++) {
      const file = world.day(day);
      const dayEnd = KUAIRAND_START_MS + (day + 1) * DAY_MS;
      for (; i < kept.length && (kept[i] as Row).tsMs < dayEnd; i++) {
        const r = kept[i] as Row;
        const base = {
          userId: r.userId,
          videoId: r.videoId,
          tsMs: r.tsMs,
          position: -1,
          context: { device: 'unknown', country: '', localHour: Number.isFinite(r.localHour) ? r.localHour : 12 },
          surface: 'home',
          requestId: '',
        };
        const ev = (type: EventType, suffix: string, watchSeconds = 0): InteractionEvent => ({ ...base, eventId: `k${r.order}${suffix}`, type, watchSeconds });
        const out: InteractionEvent[] = [ev(EventType.IMPRESSION, 'i')];
        counts.impressions++;
        if (r.click) {
          out.push(ev(EventType.CLICK, 'c'));
          counts.clicks++;
        }
        if (r.playMs > 0) {
          out.push(ev(EventType.WATCH, 'w', r.playMs / 1000));
          counts.watches++;
        }
        if (r.label === 1) {
          out.push(ev(EventType.LIKE, 'l'));
          counts.likes++;
        } else if (r.label === 0) {
          out.push(ev(EventType.SKIP, 's'));
          counts.skips++;
        }
        for (const e of out) await file.write(e);
        counts.events += out.length;
      }
      await world.close(file);
    }
    const manifest: WorldManifest = {
      name: 'kuairand',
      seed: 0,
      numVideos: videos.length,
      numUsers: users.length,
      numCreators: creators.size,
      numCategories,
      days: KUAIRAND_DAYS,
      startMs: KUAIRAND_START_MS,
      countries: [],
      split: KUAIRAND_SPLIT,
      counts,
      source: 'kuairand',
      generatorVersion: 1,
      createdAt: opts.createdAt ?? new Date().toISOString(),
    };
    await world.writeText('README.md', readme(kept.length, duplicates, withPure));
    try {
      await world.writeText('LICENSE', await readFile(join(src, 'LICENSE'), 'utf8'));
    } catch {
      // The licence text is referenced in README.md either way.
    }
    await world.commit(manifest);
    return { dir: outDir, manifest, rows: rows.length, duplicateRowsDropped: duplicates, rowsOutsideDays: outside, videosWithPureFeatures: withPure };
  } catch (err) {
    await world.abort();
    throw err;
  }
}

function readme(rows: number, duplicates: number, withPure: number): string {
  return `# KuaiRand world (converted)

Converted by upnext's offline/kuairand/convert.ts from the KuaiRand sample in ${KUAIRAND_SOURCE_DIR}.

Attribution: Chongming Gao et al., "KuaiRand: An Unbiased Sequential Recommendation Dataset with
Randomly Exposed Videos", CIKM 2022, doi:10.1145/3511808.3557624. Licensed CC BY-SA 4.0 (see
LICENSE, https://creativecommons.org/licenses/by-sa/4.0/). This directory is an adaptation and stays
under CC BY-SA 4.0 with this attribution.

- ${rows} rows kept; ${duplicates} duplicate (user, video) rows dropped (the earliest row of each pair is kept).
- ${withPure} videos have KuaiRand-Pure features (creator, tag → category, upload date); the rest
  carry stand-ins (hashed category, one stand-in creator per video, first impression as upload time).
- Events: IMPRESSION per row; CLICK (is_click=1); WATCH (play_time_ms > 0, watchSeconds =
  play_time_ms / 1000); LIKE (label=1, explicit like); SKIP (label=0, explicit hate). All events
  of a row share its time_ms. Position unknown (-1), device unknown, country empty.
- Split (UTC days from 2022-04-07): train days 0-10 (through 2022-04-17), valid day 11
  (2022-04-18), test days 12-14 (2022-04-19..21).
- Caveat (from the source README): heavily selected rows (explicit like/hate only), so click rates
  are far above a real feed's; compare models with each other on this split, not as absolute figures.
`;
}
