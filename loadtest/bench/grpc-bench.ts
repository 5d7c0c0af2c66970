/**
 * gRPC unary overhead: the stub Recommender (no work, ~1 KB reply for k=20) in its own process,
 * called through the same client pool the load generator uses, with 1 and 64 calls in flight.
 * Server cores come from /proc, so "calls per server core" is the ceiling the transport alone
 * puts on one coordinator core.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RecommenderClientPool } from '../client/recommender-client.js';
import { clockTicksPerSecond, readProc } from '../measure/proc-sampler.js';
import { cpuSecondsSince, printTable } from './table.js';

/** Options for {@link benchGrpc}. */
export interface GrpcBenchOptions {
  /** Calls per level. Default 20,000. */
  readonly calls?: number;
  /** In-flight levels. Default [1, 64]. */
  readonly concurrency?: readonly number[];
  /** Client channels. Default 4. */
  readonly channels?: number;
}

export interface GrpcLevelResult {
  readonly inFlight: number;
  readonly callsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly serverCores: number;
  /** callsPerSecond / serverCores. */
  readonly callsPerServerCore: number;
  readonly clientCores: number;
}

export interface GrpcBenchResult {
  readonly results: readonly GrpcLevelResult[];
  readonly conditions: { readonly calls: number; readonly channels: number; readonly reply: string };
}

export async function benchGrpc(opts: GrpcBenchOptions = {}): Promise<GrpcBenchResult> {
  const calls = opts.calls ?? 20_000;
  const channels = opts.channels ?? 4;
  const main = fileURLToPath(new URL('../stub/main.js', import.meta.url));
  const child = spawn(process.execPath, [main, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ticks = clockTicksPerSecond();
  const results: GrpcLevelResult[] = [];
  let pool: RecommenderClientPool | undefined;
  try {
    const line = await new Promise<string>((resolve, reject) => {
      child.once('error', reject);
      child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
    });
    const address = /on (\S+) /.exec(line)?.[1];
    if (!address) throw new Error(`stub did not report its address: ${line}`);
    pool = new RecommenderClientPool({ address, channels, deadlineMs: 10_000 });
    await pool.waitForReady();
    const req = { userId: 1, k: 20, context: { device: 'ios', country: 'US', localHour: 12 }, surface: 'home' };
    for (let i = 0; i < 200; i++) await pool.recommend(req); // warm-up
    for (const inFlight of opts.concurrency ?? [1, 64]) {
      const lat = new Float64Array(calls);
      let next = 0;
      const s0 = readProc(child.pid!, ticks)?.cpuSeconds ?? 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const p = pool;
      await Promise.all(Array.from({ length: inFlight }, async () => {
        for (let i = next++; i < calls; i = next++) {
          const a = performance.now();
          const r = await p.recommend(req);
          if (!r.ok) throw new Error(`stub call failed: ${r.message}`);
          lat[i] = performance.now() - a;
        }
      }));
      const wallS = (performance.now() - t0) / 1000;
      const serverCores = ((readProc(child.pid!, ticks)?.cpuSeconds ?? 0) - s0) / wallS;
      lat.sort();
      results.push({
        inFlight, callsPerSecond: calls / wallS, p50Ms: lat[Math.floor(calls / 2)] ?? 0, p99Ms: lat[Math.floor(calls * 0.99)] ?? 0,
        serverCores, callsPerServerCore: serverCores > 0 ? calls / wallS / serverCores : 0, clientCores: cpuSecondsSince(cpu0) / wallS,
      });
    }
  } finally {
    pool?.close();
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
  return { results, conditions: { calls, channels, reply: 'stub Recommender, k=20 (~1 KB)' } };
}

export function printGrpc(r: GrpcBenchResult): void {
  printTable('gRPC unary (stub Recommender in its own process)', ['in flight', 'calls/s', 'p50 ms', 'p99 ms', 'server cores', 'calls/server core', 'client cores'],
    r.results.map((x) => [x.inFlight, x.callsPerSecond, x.p50Ms, x.p99Ms, x.serverCores, x.callsPerServerCore, x.clientCores]), r.conditions);
}
