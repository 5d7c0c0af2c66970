/**
 * NATS request/reply round trip through a real nats-server started for the purpose (free port,
 * JetStream on in a temp dir, as the cluster runs it): 1 KB payloads, at 1 and at 64 requests in
 * flight, the responder in this process. Reports round trips per second, latency, and the
 * nats-server's CPU from /proc.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../../cluster/nats/server.js';
import { clockTicksPerSecond, readProc } from '../measure/proc-sampler.js';
import { cpuSecondsSince, printTable } from './table.js';

/** Options for {@link benchNats}. */
export interface NatsBenchOptions {
  /** Round trips per concurrency level. Default 20,000. */
  readonly requests?: number;
  /** Payload bytes. Default 1024. */
  readonly payloadBytes?: number;
  /** In-flight levels. Default [1, 64]. */
  readonly concurrency?: readonly number[];
}

export interface NatsLevelResult {
  readonly inFlight: number;
  readonly roundTripsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** nats-server cores used during the level. */
  readonly serverCores: number;
  /** Cores used by this process (client + responder). */
  readonly clientCores: number;
}

export interface NatsBenchResult {
  readonly results: readonly NatsLevelResult[];
  readonly conditions: { readonly payloadBytes: number; readonly requests: number; readonly server: string };
}

export async function benchNats(opts: NatsBenchOptions = {}): Promise<NatsBenchResult> {
  const requests = opts.requests ?? 20_000;
  const payload = new Uint8Array(opts.payloadBytes ?? 1024).fill(7);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'upnext-bench-nats-'));
  const server = await startNatsServer({ dataDir: dir });
  const ticks = clockTicksPerSecond();
  const nc = await connect({ servers: server.url });
  const results: NatsLevelResult[] = [];
  try {
    const sub = nc.subscribe('bench.echo', { callback: (_err, msg) => { msg.respond(msg.data); } });
    await nc.flush();
    for (const inFlight of opts.concurrency ?? [1, 64]) {
      const lat = new Float64Array(requests);
      let next = 0;
      const s0 = readProc(server.pid, ticks)?.cpuSeconds ?? 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(Array.from({ length: inFlight }, async () => {
        for (let i = next++; i < requests; i = next++) {
          const a = performance.now();
          await nc.request('bench.echo', payload, { timeout: 5000 });
          lat[i] = performance.now() - a;
        }
      }));
      const wallS = (performance.now() - t0) / 1000;
      const serverS = (readProc(server.pid, ticks)?.cpuSeconds ?? 0) - s0;
      lat.sort();
      results.push({
        inFlight, roundTripsPerSecond: requests / wallS, p50Ms: lat[Math.floor(requests / 2)] ?? 0, p99Ms: lat[Math.floor(requests * 0.99)] ?? 0,
        serverCores: serverS / wallS, clientCores: cpuSecondsSince(cpu0) / wallS,
      });
    }
    sub.unsubscribe();
  } finally {
    await nc.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return { results, conditions: { payloadBytes: payload.length, requests, server: 'nats-server (Debian), local, JetStream enabled' } };
}

export function printNats(r: NatsBenchResult): void {
  printTable('NATS request/reply round trip', ['in flight', 'round trips/s', 'p50 ms', 'p99 ms', 'server cores', 'client cores'],
    r.results.map((x) => [x.inFlight, x.roundTripsPerSecond, x.p50Ms, x.p99Ms, x.serverCores, x.clientCores]), r.conditions);
}
