/**
 * The cost of one worker-thread hop, the unit every Recommend pays several of (user state, each
 * item shard, the ranker: docs/capacity.md). A round trip main → worker → main carrying a small
 * transferred buffer, measured two ways:
 * - back to back ("hot"): both threads stay awake, the cost a loaded node pays;
 * - paced, one round trip every `gapMs` ("cold"): the worker sleeps between calls, as it does at a
 *   few dozen requests per second, so each hop pays a thread wake-up and cold caches. The same
 *   loop without the hop (the pacing timer's own wake-up) is reported beside it; their difference
 *   is the cold hop. Both are small numbers measured on a busy machine: read the difference as a
 *   range over runs, not a constant.
 * CPU = this process's CPU seconds (both threads) / iterations.
 */
import { Worker } from 'node:worker_threads';
import { cpuSecondsSince, printTable } from './table.js';
import type { BenchRows } from './table.js';

/** Options for {@link benchHops}. */
export interface HopBenchOptions {
  /** Round trips back to back. Default 20,000. */
  readonly hotTrips?: number;
  /** Paced round trips per gap. Default 400. */
  readonly pacedTrips?: number;
  /** Gaps between paced round trips, ms. Default [4, 16] (250 and ~60 requests/s). */
  readonly gapsMs?: readonly number[];
  /** Payload bytes (transferred both ways). Default 512 (an item-shard search request). */
  readonly payloadBytes?: number;
}

export interface HopResult {
  readonly mode: string;
  readonly trips: number;
  /** CPU per round trip, µs (both threads). */
  readonly cpuUsPerTrip: number;
}

export type HopBenchResult = BenchRows<HopResult>;

const ECHO = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (m) => {
  const out = new Uint8Array(m.bytes.byteLength);
  parentPort.postMessage({ id: m.id, bytes: out.buffer }, [out.buffer]);
});`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function benchHops(opts: HopBenchOptions = {}): Promise<HopBenchResult> {
  const hotTrips = opts.hotTrips ?? 20_000;
  const pacedTrips = opts.pacedTrips ?? 400;
  const payload = opts.payloadBytes ?? 512;
  const worker = new Worker(ECHO, { eval: true });
  const waiting = new Map<number, () => void>();
  worker.on('message', (m: { id: number }) => {
    waiting.get(m.id)?.();
    waiting.delete(m.id);
  });
  let nextId = 0;
  const hop = () =>
    new Promise<void>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      const b = new Uint8Array(payload);
      worker.postMessage({ id, bytes: b.buffer }, [b.buffer]);
    });
  const results: HopResult[] = [];
  try {
    for (let i = 0; i < 2_000; i++) await hop(); // warm-up: JIT, message port
    let cpu = process.cpuUsage();
    for (let i = 0; i < hotTrips; i++) await hop();
    results.push({ mode: 'back to back', trips: hotTrips, cpuUsPerTrip: (cpuSecondsSince(cpu) * 1e6) / hotTrips });
    for (const gap of opts.gapsMs ?? [4, 16]) {
      cpu = process.cpuUsage();
      for (let i = 0; i < pacedTrips; i++) await sleep(gap);
      const timerOnly = cpuSecondsSince(cpu);
      cpu = process.cpuUsage();
      for (let i = 0; i < pacedTrips; i++) {
        await hop();
        await sleep(gap);
      }
      const withHop = cpuSecondsSince(cpu);
      results.push({ mode: `every ${gap} ms: timer + hop`, trips: pacedTrips, cpuUsPerTrip: (withHop * 1e6) / pacedTrips });
      results.push({ mode: `every ${gap} ms: timer alone`, trips: pacedTrips, cpuUsPerTrip: (timerOnly * 1e6) / pacedTrips });
    }
  } finally {
    await worker.terminate();
  }
  return { results, conditions: { payload_bytes: payload, note: 'paced: a cold hop costs (timer + hop) − (timer alone)' } };
}

export function printHops(r: HopBenchResult): void {
  printTable('Worker-thread hop (main -> worker -> main, transferred payload)', ['mode', 'iterations', 'CPU µs per iteration'], r.results.map((x) => [x.mode, x.trips, x.cpuUsPerTrip]), r.conditions);
}
