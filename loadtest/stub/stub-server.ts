/**
 * A stand-in Recommender (gRPC, real grpc-js) for testing the load generator itself and for
 * smoke-testing a load-test setup without a cluster. It answers from memory in microseconds and can
 * be told to misbehave: a fixed delay, a share of fallback answers, or one event-loop stall.
 */
import grpc from '@grpc/grpc-js';
import { loadRecommenderService } from '../client/recommender-client.js';

/** Options for {@link startStubRecommender}. */
export interface StubOptions {
  /** Bind host. Default 127.0.0.1. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** Delay before each answer, ms (timer, not CPU). Default 0. */
  readonly delayMs?: number;
  /** Every Nth answer is a fallback (source FALLBACK); 0 = never. Default 0. */
  readonly fallbackEvery?: number;
  /** Every Nth answer is degraded; 0 = never. Default 0. */
  readonly degradedEvery?: number;
  /**
   * What GetRouting answers (the wire form, read on every call, so a test can change it); absent:
   * GetRouting fails UNIMPLEMENTED, as a server without routing would.
   */
  readonly routing?: () => unknown;
  /** Record the user_id of every Recommend call ({@link StubRecommender.recommendUsers}). Default false: a long calibration run would grow the list without bound. */
  readonly recordUsers?: boolean;
}

export interface StubRecommender {
  /** `host:port`. */
  readonly address: string;
  /** Recommend calls answered so far. */
  recommendCalls(): number;
  /** LogEvents events accepted so far. */
  eventsAccepted(): number;
  /** user_id of every Recommend call answered so far, in arrival order (with `recordUsers`; else empty). */
  recommendUsers(): readonly number[];
  /** Blocks this process's event loop for `ms` when the next Recommend call arrives (once). */
  stallOnNextCall(ms: number): void;
  stop(): Promise<void>;
}

interface RecommendReq { userId: number; k: number; debug?: boolean }

export async function startStubRecommender(opts: StubOptions = {}): Promise<StubRecommender> {
  const server = new grpc.Server();
  let calls = 0;
  let events = 0;
  const users: number[] = [];
  let stallMs = 0;
  const delay = opts.delayMs ?? 0;
  server.addService(loadRecommenderService(), {
    Recommend: (call: grpc.ServerUnaryCall<RecommendReq, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      calls++;
      if (opts.recordUsers === true) users.push(Number(call.request.userId));
      if (stallMs > 0) {
        // A busy wait on purpose: it stands for a GC pause or a blocked event loop, during which
        // nothing else in the process (a co-located generator included) can run.
        const until = performance.now() + stallMs;
        stallMs = 0;
        while (performance.now() < until) { /* stall */ }
      }
      const k = Math.min(Math.max(call.request.k || 10, 1), 1000);
      const fallback = (opts.fallbackEvery ?? 0) > 0 && calls % opts.fallbackEvery! === 0;
      const degraded = (opts.degradedEvery ?? 0) > 0 && calls % opts.degradedEvery! === 0;
      const items = Array.from({ length: k }, (_, i) => ({
        videoId: (call.request.userId * 31 + i) % 1_000_000, score: 1 - i / k, pClick: 0.1, expectedWatchSeconds: 30,
        source: fallback ? 'FALLBACK' : 'RETRIEVAL', shard: i % 4,
      }));
      // Asked for debug, the stub times its answer delay as its one stage (ranking); a stall is outside
      // the "pipeline", as an event-loop stall before the handler is for a real node.
      const timings = call.request.debug === true ? { admissionMs: 0, userStateMs: 0, retrievalMs: 0, rankingMs: delay, policyMs: 0, totalMs: delay } : null;
      const res = { items, coverage: degraded ? 0.75 : 1, degraded: degraded ? ['shard 3 timed out'] : [], modelVersion: 'stub', requestId: '', timings };
      if (delay > 0) setTimeout(() => cb(null, res), delay);
      else cb(null, res);
    },
    LogEvents: (call: grpc.ServerUnaryCall<{ events: unknown[] }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      events += call.request.events.length;
      cb(null, { accepted: call.request.events.length, duplicates: 0 });
    },
    GetRouting: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (opts.routing === undefined) cb({ code: grpc.status.UNIMPLEMENTED, details: 'this stub has no routing table' }, null);
      else cb(null, opts.routing());
    },
  });
  const host = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `${host}:${port}`,
    recommendCalls: () => calls,
    eventsAccepted: () => events,
    recommendUsers: () => users,
    stallOnNextCall: (ms) => {
      stallMs = ms;
    },
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
