/**
 * What the popular actor's index costs as the counted (list key, video) pairs grow, for the capacity
 * model (docs/capacity.md "The popular actor at scale"): replays `--events` engagements over
 * `--videos` videos (squared-uniform popularity) and 20 (country, device) keys, spread over 7 days,
 * then times the first refresh pass (every entry) and passes after 1,000 new events each (what the
 * actor's 5-second timer does while events flow). Prints the JS heap and the counter tables' bytes.
 *
 *   node --expose-gc dist/loadtest/bench/popular-scale.js [--events 3000000] [--videos 2000000]
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import type { InteractionEvent } from '../../core/events.js';
import { PopularIndex } from '../../actors/popular/popular-index.js';
import { positiveIntFlag } from './flags.js';
import { printTable } from './table.js';

const HOUR_MS = 3_600_000;
const COUNTRIES = ['US', 'BR', 'IN', 'DE', 'JP'];
const DEVICES = ['ios', 'android', 'web', 'tv'];

/** One run's figures. */
export interface PopularScaleResult {
  readonly events: number;
  readonly counterEntries: number;
  readonly counterBytes: number;
  readonly heapBytes: number;
  readonly replayMs: number;
  readonly firstPassMs: number;
  /** Later passes (after 1,000 new events each): wall ms and entries examined. */
  readonly passes: readonly { readonly ms: number; readonly scanned: number }[];
}

export function measurePopularScale(o: { events: number; videos: number; seed: number; passes: number }): PopularScaleResult {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run node with --expose-gc');
  const rng = new SeededRng(o.seed);
  const index = new PopularIndex({});
  const end = Date.UTC(2026, 5, 1);
  const span = 7 * 24 * HOUR_MS;
  const event = (i: number, tsMs: number): InteractionEvent => ({
    eventId: `e${i}`,
    userId: 1 + (i % 100_000),
    videoId: 1 + Math.floor(o.videos * rng.next() * rng.next()),
    type: EventType.CLICK,
    tsMs,
    position: 0,
    watchSeconds: 0,
    context: { device: DEVICES[i % DEVICES.length] as string, country: COUNTRIES[i % COUNTRIES.length] as string, localHour: 12 },
    surface: 'home',
    requestId: '',
  });
  let t0 = performance.now();
  for (let i = 0; i < o.events; i++) index.applyEvent(event(i, end - span + Math.floor((i * span) / o.events)));
  const replayMs = performance.now() - t0;
  gc();
  const heapBytes = process.memoryUsage().heapUsed;
  t0 = performance.now();
  index.refresh(end);
  const firstPassMs = performance.now() - t0;
  const passes: { ms: number; scanned: number }[] = [];
  let now = end;
  for (let p = 0; p < o.passes; p++) {
    for (let i = 0; i < 1000; i++) index.applyEvent(event(o.events + p * 1000 + i, now + i));
    now += 5000;
    t0 = performance.now();
    index.refresh(now);
    passes.push({ ms: performance.now() - t0, scanned: index.lastRefreshScanned });
  }
  return { events: o.events, counterEntries: index.counterEntries, counterBytes: index.counterBytes, heapBytes, replayMs, firstPassMs, passes };
}

function main(): void {
  const { values } = parseArgs({ options: { events: { type: 'string' }, videos: { type: 'string' }, seed: { type: 'string' }, passes: { type: 'string' } } });
  const r = measurePopularScale({ events: positiveIntFlag(values.events, 3_000_000, 'events'), videos: positiveIntFlag(values.videos, 2_000_000, 'videos'), seed: positiveIntFlag(values.seed, 3, 'seed'), passes: positiveIntFlag(values.passes, 4, 'passes') });
  const later = r.passes.map((p) => p.ms);
  printTable(
    'Popular index at scale: memory and refresh passes',
    ['events', 'counters', 'counter MB (off-heap)', 'JS heap MB', 'replay s', 'first pass ms', 'later passes ms (min-max)', 'entries examined per later pass'],
    [[r.events, r.counterEntries, r.counterBytes / 1e6, r.heapBytes / 1e6, r.replayMs / 1000, r.firstPassMs, `${Math.min(...later).toFixed(1)}-${Math.max(...later).toFixed(1)}`, r.passes[r.passes.length - 1]?.scanned ?? 0]],
    { keys: COUNTRIES.length * DEVICES.length + 1, days: 7, new_events_per_later_pass: 1000 },
    (s) => process.stdout.write(s),
  );
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))) main();
