/**
 * What resident user profiles cost one thread in garbage collection, for the capacity model
 * (docs/capacity.md "User state at scale"): builds N profiles with the real feature code
 * (`applyEventToUser`, `--engagements` each) in the partitions' {@link ProfileStore} (`--shape
 * columns`, the default) or as one UserProfile object per user in a Map (`--shape objects`, the
 * layout before the store), then runs serving-like work for
 * `--seconds`: each "request" allocates ~30 KB of short-lived objects (a reply's worth) and every
 * 4th applies one event to a random user. Prints the heap, a forced full GC, the requests done and
 * the time spent in scavenges and major GCs (PerformanceObserver 'gc' entries).
 *
 *   node --expose-gc --max-old-space-size=8000 dist/loadtest/bench/user-gc.js [--users 300000]
 *     [--engagements 41] [--seconds 15] [--seed 1] [--shape columns|objects]
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { gcEntryKind } from '../../cluster/node/stall-watch.js';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import type { EventItemInfo, UserProfile } from '../../core/features/user.js';
import { applyEventToUser, isEngagement, newUserProfile } from '../../core/features/user.js';
import { ProfileStore } from '../../actors/user-state/profile-store.js';
import { positiveIntFlag } from './flags.js';
import { printTable } from './table.js';

/** One run's figures. */
export interface UserGcResult {
  readonly shape: 'columns' | 'objects';
  readonly users: number;
  readonly heapBytes: number;
  readonly arrayBufferBytes: number;
  readonly fullGcMs: number;
  readonly seconds: number;
  readonly requests: number;
  /** Time in young-generation collections, ms, and the longest one. */
  readonly scavengeMs: number;
  readonly longestScavengeMs: number;
  /** Time in major (mark-compact) collections, ms, and the longest one. */
  readonly majorMs: number;
  readonly longestMajorMs: number;
}

const CATALOGUE = 10_000_000;

function watchEvent(userId: number, videoId: number, tsMs: number): InteractionEvent {
  return {
    eventId: '',
    userId,
    videoId,
    type: EventType.WATCH,
    tsMs,
    position: 0,
    watchSeconds: 20,
    context: { device: 'ios', country: 'US', localHour: 20 },
    surface: 'home',
    requestId: '',
  };
}

function itemOf(videoId: number): EventItemInfo {
  return { creatorId: 1 + (videoId % 200_000), category: videoId % DEFAULT_FEATURE_SPEC.numCategories };
}

/** Builds the profiles, then measures `seconds` of churn. Needs `--expose-gc`. */
export async function measureUserGc(o: { users: number; engagements: number; seconds: number; seed: number; shape: 'columns' | 'objects' }): Promise<UserGcResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run node with --expose-gc');
  const spec = DEFAULT_FEATURE_SPEC;
  const rng = new SeededRng(o.seed);
  const objects = new Map<number, UserProfile>();
  const store = new ProfileStore(spec);
  // One event applied to a user, in the chosen layout.
  const apply = (u: number, e: InteractionEvent): void => {
    const info = itemOf(e.videoId);
    if (o.shape === 'columns') {
      store.update(u, (p) => applyEventToUser(p, e, info, spec), isEngagement(e));
      return;
    }
    let p = objects.get(u);
    if (p === undefined) objects.set(u, (p = newUserProfile(u, spec)));
    applyEventToUser(p, e, info, spec);
  };
  let ts = Date.UTC(2026, 0, 1);
  for (let u = 1; u <= o.users; u++) {
    for (let i = 0; i < o.engagements; i++) apply(u, watchEvent(u, 1 + rng.int(CATALOGUE), ts++));
  }
  if (o.shape === 'columns') store.compact(); // as a partition does after its world replay
  // ArrayBuffers dropped by growth and compaction are released by a sweeper after the GC: give it time.
  gc();
  await new Promise((r) => setTimeout(r, 300));
  gc();
  const mem = process.memoryUsage();
  const t0 = performance.now();
  gc();
  const fullGcMs = performance.now() - t0;

  let scavengeMs = 0;
  let longestScavengeMs = 0;
  let majorMs = 0;
  let longestMajorMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = gcEntryKind(e);
      if (kind === 'minor') {
        scavengeMs += e.duration;
        longestScavengeMs = Math.max(longestScavengeMs, e.duration);
      } else if (kind === 'major') {
        majorMs += e.duration;
        longestMajorMs = Math.max(longestMajorMs, e.duration);
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  let requests = 0;
  let sink = 0;
  const end = performance.now() + o.seconds * 1000;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      for (let r = 0; r < 20; r++, requests++) {
        const reply: { id: number; score: number; pair: number[] }[] = [];
        for (let i = 0; i < 250; i++) reply.push({ id: i, score: Math.random(), pair: [i, i + 1] });
        sink += reply.length;
        if (requests % 4 === 0) {
          const u = 1 + rng.int(o.users);
          apply(u, watchEvent(u, 1 + rng.int(CATALOGUE), ts++));
        }
      }
      if (performance.now() < end) setImmediate(tick);
      else resolve();
    };
    tick();
  });
  // Let the observer deliver the last entries.
  await new Promise((r) => setTimeout(r, 50));
  observer.disconnect();
  if (sink < 0) throw new Error('unreachable');
  return {
    shape: o.shape,
    users: o.shape === 'columns' ? store.size : objects.size,
    heapBytes: mem.heapUsed,
    arrayBufferBytes: mem.arrayBuffers,
    fullGcMs,
    seconds: o.seconds,
    requests,
    scavengeMs,
    longestScavengeMs,
    majorMs,
    longestMajorMs,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { users: { type: 'string' }, engagements: { type: 'string' }, seconds: { type: 'string' }, seed: { type: 'string' }, shape: { type: 'string' } },
  });
  const shape = values.shape ?? 'columns';
  if (shape !== 'columns' && shape !== 'objects') throw new TypeError(`--shape must be columns or objects, got ${shape}`);
  const r = await measureUserGc({
    users: positiveIntFlag(values.users, 300_000, 'users'),
    engagements: positiveIntFlag(values.engagements, 41, 'engagements'),
    seconds: positiveIntFlag(values.seconds, 15, 'seconds'),
    seed: positiveIntFlag(values.seed, 1, 'seed'),
    shape,
  });
  printTable(
    'Resident user profiles on one thread: GC under serving-like churn',
    ['shape', 'profiles', 'heap MB', 'buffers MB', 'full GC ms', 'requests', 'scavenge s', 'scavenge share %', 'longest scavenge ms', 'major s', 'longest major ms'],
    [[r.shape, r.users, r.heapBytes / 1e6, r.arrayBufferBytes / 1e6, r.fullGcMs, r.requests, r.scavengeMs / 1000, (100 * r.scavengeMs) / (r.seconds * 1000), r.longestScavengeMs, r.majorMs / 1000, r.longestMajorMs]],
    { seconds: r.seconds, engagements_per_user: values.engagements ?? 41, churn: '~30 KB garbage per request, an event every 4th' },
    (s) => process.stdout.write(s),
  );
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  await main();
}
