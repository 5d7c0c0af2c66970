/**
 * One load phase as plain data ({@link PhaseSpec}: it crosses process boundaries), and the
 * in-process runner that executes it against a gRPC address.
 */
import { SeededRng } from '../../core/clock.js';
import type { TlsSection } from '../../cluster/tls.js';
import { RecommenderClientPool } from '../client/recommender-client.js';
import type { RoutingMode, RoutingStats } from '../client/recommender-client.js';
import { PhaseRecorder } from '../measure/recorder.js';
import type { RateSegment } from './arrivals.js';
import { PoissonSchedule } from './arrivals.js';
import { runClosedLoop, runOpenLoop } from './loops.js';
import type { HotWindow, RequestMixSpec } from './request-mix.js';
import { RequestMix } from './request-mix.js';
import type { IdSource, LoadedIds } from './world-ids.js';
import { loadUserIds, loadVideoIds } from './world-ids.js';

/** Everything one generator process needs to run one phase. */
export interface PhaseSpec {
  readonly name: string;
  /** gRPC `host:port` of every coordinator to call; requests are spread evenly over them. */
  readonly addresses: readonly string[];
  /** TLS files for the Recommend connection (paths: they cross to the generator processes). Default plaintext. */
  readonly tls?: TlsSection;
  /** "open": Poisson arrivals at `segments`; "closed": `concurrency` callers back to back. */
  readonly mode: 'open' | 'closed';
  /** Open loop: arrival rate (req/s) over time, starting at 0 ms. */
  readonly segments: readonly RateSegment[];
  /** Closed loop: number of concurrent callers. */
  readonly concurrency: number;
  readonly durationMs: number;
  /** Outstanding Recommend calls beyond which arrivals are dropped by the generator. */
  readonly maxInFlight: number;
  /** gRPC connections (per coordinator). */
  readonly channels: number;
  /** How Recommend calls pick a coordinator (GeneratorSettings.routing). Default "spread". */
  readonly routing?: RoutingMode;
  /** Per-call deadline, ms. */
  readonly deadlineMs: number;
  readonly mix: RequestMixSpec;
  readonly users: IdSource;
  readonly videos: IdSource;
  readonly hot?: HotWindow;
  /** Concurrent LogEvents stream: batches per second and events per batch. */
  readonly events?: { readonly rate: number; readonly batchSize: number };
  readonly seed: number;
  /** Prefix of generated event ids (unique per process and run). */
  readonly idPrefix: string;
  /** Wall-clock epoch ms at which to start (aligns several generator processes). */
  readonly startAtEpochMs?: number;
}

/** What one phase produced in one process. */
export interface PhaseRun {
  readonly recorder: PhaseRecorder;
  /** CPU seconds (user + system) the generator process spent in the phase. */
  readonly generatorCpuSeconds: number;
  /** Wall time of the phase, ms (schedule plus draining the last answers). */
  readonly wallMs: number;
  /** Epoch ms the phase started. */
  readonly startedAtEpochMs: number;
  readonly userIdsOrigin: string;
  /** With routing "user": Recommend calls routed to a partition's coordinator, and spread, in this phase. */
  readonly routing?: PhaseRouting;
}

export interface PhaseRouting {
  readonly routed: number;
  readonly spread: number;
  /** Recommend attempts per coordinator address (routed, spread and failed over). */
  readonly callsByAddress: Readonly<Record<string, number>>;
  /** Routed calls that never reached their coordinator (UNAVAILABLE), sent once more elsewhere. */
  readonly failovers: number;
  /** Routing-table reads that failed in the phase (the table in use may be stale), and the last error. */
  readonly refreshFailures: number;
  readonly lastError?: string;
}

/** What routing did between two {@link RoutingStats} snapshots of one pool. */
export function routingDelta(before: RoutingStats, after: RoutingStats): PhaseRouting {
  const callsByAddress: Record<string, number> = {};
  for (const [a, n] of Object.entries(after.callsByAddress)) {
    const d = n - (before.callsByAddress[a] ?? 0);
    if (d > 0) callsByAddress[a] = d;
  }
  const refreshFailures = after.refreshFailures - before.refreshFailures;
  return {
    routed: after.routed - before.routed,
    spread: after.spread - before.spread,
    callsByAddress,
    failovers: after.failovers - before.failovers,
    refreshFailures,
    ...(refreshFailures > 0 && after.lastError !== undefined ? { lastError: after.lastError } : {}),
  };
}

/** Sums the routing of several generator processes' share of one phase. */
export function mergeRouting(parts: readonly PhaseRouting[]): PhaseRouting {
  const callsByAddress: Record<string, number> = {};
  for (const p of parts) for (const [a, n] of Object.entries(p.callsByAddress)) callsByAddress[a] = (callsByAddress[a] ?? 0) + n;
  const lastError = [...parts].reverse().find((p) => p.lastError !== undefined)?.lastError;
  return {
    routed: parts.reduce((s, p) => s + p.routed, 0),
    spread: parts.reduce((s, p) => s + p.spread, 0),
    callsByAddress,
    failovers: parts.reduce((s, p) => s + p.failovers, 0),
    refreshFailures: parts.reduce((s, p) => s + p.refreshFailures, 0),
    ...(lastError !== undefined ? { lastError } : {}),
  };
}

/** Runs phases in this process; keeps loaded ids and connections across phases. */
export class PhaseRunner {
  readonly #ids = new Map<string, Promise<LoadedIds>>();
  #pool: { key: string; pool: RecommenderClientPool } | undefined;

  async run(spec: PhaseSpec, onTick?: (tMs: number) => void): Promise<PhaseRun> {
    const users = await this.#load('u', spec.users, loadUserIds);
    const videos = await this.#load('v', spec.videos, loadVideoIds);
    const pool = await this.#poolFor(spec);
    const rng = new SeededRng(spec.seed);
    const mix = new RequestMix(spec.mix, users.ids, videos.ids, rng, spec.hot, spec.idPrefix, users.contexts);
    const recorder = new PhaseRecorder();
    if (spec.startAtEpochMs !== undefined) {
      const wait = spec.startAtEpochMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const routing0 = pool.routingStats();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const startedAtEpochMs = Date.now();
    if (spec.mode === 'open') {
      const events = spec.events && spec.events.rate > 0
        ? { schedule: PoissonSchedule.constant(spec.events.rate, new SeededRng(spec.seed ^ 0x5bd1e995)), batchSize: spec.events.batchSize, maxInFlight: 64 }
        : undefined;
      await runOpenLoop({
        schedule: new PoissonSchedule(spec.segments, new SeededRng(spec.seed ^ 0x9e3779b9)),
        durationMs: spec.durationMs,
        maxInFlight: spec.maxInFlight,
        mix,
        transport: pool,
        recorder,
        ...(events ? { events } : {}),
        ...(onTick ? { onTick } : {}),
      });
    } else {
      await runClosedLoop({ concurrency: spec.concurrency, durationMs: spec.durationMs, mix, transport: pool, recorder });
    }
    const cpu = process.cpuUsage(cpu0);
    const routing1 = pool.routingStats();
    return {
      ...(routing1.mode === 'user' ? { routing: routingDelta(routing0, routing1) } : {}),
      recorder,
      generatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
      wallMs: performance.now() - t0,
      startedAtEpochMs,
      userIdsOrigin: users.origin,
    };
  }

  close(): void {
    this.#pool?.pool.close();
    this.#pool = undefined;
  }

  #load(kind: string, src: IdSource, loader: (s: IdSource) => Promise<LoadedIds>): Promise<LoadedIds> {
    const key = `${kind}:${JSON.stringify(src)}`;
    let p = this.#ids.get(key);
    if (!p) {
      p = loader(src);
      this.#ids.set(key, p);
    }
    return p;
  }

  async #poolFor(spec: PhaseSpec): Promise<RecommenderClientPool> {
    const routing = spec.routing ?? 'spread';
    const key = `${spec.addresses.join(',')}|${spec.channels}|${spec.deadlineMs}|${JSON.stringify(spec.tls ?? {})}|${routing}`;
    if (this.#pool?.key !== key) {
      this.#pool?.pool.close();
      const pool = new RecommenderClientPool({
        address: spec.addresses,
        channels: spec.channels,
        deadlineMs: spec.deadlineMs,
        routing,
        ...(spec.tls !== undefined ? { tls: spec.tls } : {}),
      });
      this.#pool = { key, pool };
      // Connect before the clock starts, so the first requests do not pay for the handshake.
      await pool.waitForReady().catch(() => undefined);
    }
    return this.#pool.pool;
  }
}
