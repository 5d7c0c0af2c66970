/**
 * The public gRPC server (protos/upnext/v1/recommender.proto): Recommend, LogEvents and GetRouting, plus the
 * standard `grpc.health.v1.Health` service and server reflection, so grpcurl-style, Python and Go
 * clients work with no .proto files. Requests are validated here (INVALID_ARGUMENT naming the field);
 * failures carry UpnextError's gRPC code; a call without a client deadline gets the default one.
 * The server only translates: the pipeline and the event publisher are passed in.
 */
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { Deadline } from '../../core/deadline.js';
import type { InteractionEvent } from '../../core/events.js';
import { StatusCode, UpnextError, toStatus } from '../../core/status.js';
import { PROTO_DIR } from '../../protos/codec.js';
import type { RoutingTable } from '../../shardmap/routing-table.js';
import { routingTableToWire } from '../../shardmap/routing-table.js';
import type { ResolvedCoordinatorConfig } from './config.js';
import type { PublishResult } from './events.js';
import type { RecommendResult } from './types.js';
import type { RawLogEventsRequest, RawRecommendRequest, RecommendQuery } from './validate.js';
import { validateLogEventsRequest, validateRecommendRequest } from './validate.js';

/** Fully-qualified name of the public service (also its health-check service name). */
export const RECOMMENDER_SERVICE = 'upnext.v1.Recommender';

/**
 * Loads the public proto the way the server decodes it: camelCase fields, 64-bit integers as decimal
 * strings (so ids above 2^53-1 are rejected exactly instead of rounded), enums as numbers, defaults
 * filled in.
 */
export function loadRecommenderPackage(): protoLoader.PackageDefinition {
  return protoLoader.loadSync('upnext/v1/recommender.proto', {
    includeDirs: [PROTO_DIR],
    keepCase: false,
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
  });
}

/** What the server calls; the coordinator wires these to the pipeline and the event publisher. */
export interface RecommenderBackend {
  recommend(query: RecommendQuery, deadline: Deadline): Promise<RecommendResult>;
  logEvents(events: InteractionEvent[]): Promise<PublishResult>;
  /**
   * The user-routing table from the node's current shard map (shardmap/routing-table.ts); undefined
   * (or absent) when the coordinator runs without one: GetRouting then answers UNAVAILABLE.
   */
  routing?(): RoutingTable | undefined;
  /** Called for each call refused before reaching the backend (bad request, bad token). */
  onRejected?(status: { code: StatusCode }): void;
}

export interface RecommenderServerOptions {
  /** Bind address. Default 127.0.0.1. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 0. */
  readonly port?: number;
  readonly backend: RecommenderBackend;
  /** Reads auth.token, maxReceiveMessageBytes and defaultDeadlineMs. */
  readonly config: ResolvedCoordinatorConfig;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /**
   * Transport security of the port. Default insecure (plaintext); the node passes mutual-TLS
   * credentials built from the config's `tls` section (cluster/tls.ts) when it is set.
   */
  readonly credentials?: grpc.ServerCredentials;
}

export interface RecommenderServer {
  /** host:port actually bound. */
  readonly address: string;
  readonly port: number;
  /** Reports NOT_SERVING on health, then shuts down (in-flight calls get up to `graceMs`). Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Wire form of RecommendResponse (proto-loader object, camelCase). */
interface RecommendResponseWire {
  items: { videoId: number; score: number; pClick: number; expectedWatchSeconds: number; source: number; shard: number }[];
  coverage: number;
  degraded: string[];
  modelVersion: string;
  requestId: string;
  timings?: RecommendResult['timings'];
}

function toServiceError(err: unknown): grpc.ServerErrorResponse {
  const s = toStatus(err);
  const e = new Error(s.message) as grpc.ServerErrorResponse;
  e.code = s.code as number as grpc.status;
  e.details = s.message;
  return e;
}

function authCheck(token: string | undefined): (metadata: grpc.Metadata) => void {
  if (token === undefined) return () => {};
  const expected = Buffer.from(`Bearer ${token}`);
  return (metadata) => {
    const got = metadata.get('authorization')[0];
    const given = Buffer.from(typeof got === 'string' ? got : '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new UpnextError(StatusCode.UNAUTHENTICATED, 'missing or wrong caller token (metadata authorization: Bearer <token>)');
    }
  };
}

/** Starts the public server and reports SERVING once it is bound. */
export async function startRecommenderServer(opts: RecommenderServerOptions): Promise<RecommenderServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`port must be an integer in 0..65535, got ${String(port)}`);
  const clock = opts.clock ?? systemClock;
  const { backend, config } = opts;
  const checkAuth = authCheck(config.auth.token);
  const pkgDef = loadRecommenderPackage();
  const loaded = grpc.loadPackageDefinition(pkgDef) as unknown as {
    upnext: { v1: { Recommender: grpc.ServiceClientConstructor } };
  };
  const server = new grpc.Server({
    'grpc.max_receive_message_length': config.maxReceiveMessageBytes,
  });

  const reject = (err: unknown, callback: grpc.sendUnaryData<never>) => {
    const e = toServiceError(err);
    backend.onRejected?.({ code: e.code as number as StatusCode });
    callback(e);
  };

  const recommend: grpc.handleUnaryCall<RawRecommendRequest, RecommendResponseWire> = (call, callback) => {
    let query: RecommendQuery;
    try {
      checkAuth(call.metadata);
      query = validateRecommendRequest(call.request);
    } catch (err) {
      reject(err, callback);
      return;
    }
    const clientDeadline = call.getDeadline();
    const atMs = clientDeadline instanceof Date ? clientDeadline.getTime() : clientDeadline;
    const deadline = Number.isFinite(atMs) ? new Deadline(atMs, clock) : Deadline.after(config.defaultDeadlineMs, clock);
    backend.recommend(query, deadline).then(
      (r) => {
        const wire: RecommendResponseWire = {
          items: r.items.map((i) => ({
            videoId: i.videoId,
            score: i.score,
            pClick: i.pClick,
            expectedWatchSeconds: i.expectedWatchSeconds,
            source: i.source,
            shard: i.shard,
          })),
          coverage: r.coverage,
          degraded: [...r.degraded],
          modelVersion: r.modelVersion,
          requestId: r.requestId,
        };
        if (r.timings !== undefined) wire.timings = r.timings;
        callback(null, wire);
      },
      (err: unknown) => callback(toServiceError(err)),
    );
  };

  const logEvents: grpc.handleUnaryCall<RawLogEventsRequest, PublishResult> = (call, callback) => {
    let events: InteractionEvent[];
    try {
      checkAuth(call.metadata);
      events = validateLogEventsRequest(call.request, clock.nowMs());
    } catch (err) {
      reject(err, callback);
      return;
    }
    backend.logEvents(events).then(
      (r) => callback(null, r),
      (err: unknown) => callback(toServiceError(err)),
    );
  };

  const getRouting: grpc.handleUnaryCall<unknown, ReturnType<typeof routingTableToWire>> = (call, callback) => {
    try {
      checkAuth(call.metadata);
    } catch (err) {
      reject(err, callback);
      return;
    }
    const table = backend.routing?.();
    if (table === undefined) {
      callback(toServiceError(new UpnextError(StatusCode.UNAVAILABLE, 'this coordinator has no shard map to route by (it runs outside a cluster node); send requests to any coordinator')));
      return;
    }
    callback(null, routingTableToWire(table));
  };

  server.addService(loaded.upnext.v1.Recommender.service, { recommend, logEvents, getRouting } as grpc.UntypedServiceImplementation);
  const health = new HealthImplementation({ '': 'NOT_SERVING', [RECOMMENDER_SERVICE]: 'NOT_SERVING' });
  health.addToServer(server);
  new ReflectionService(pkgDef).addToServer(server);

  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  health.setStatus('', 'SERVING');
  health.setStatus(RECOMMENDER_SERVICE, 'SERVING');

  let stopped: Promise<void> | undefined;
  return {
    address: `${host}:${boundPort}`,
    port: boundPort,
    stop: (graceMs = 2000) => {
      stopped ??= new Promise<void>((resolve) => {
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(RECOMMENDER_SERVICE, 'NOT_SERVING');
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopped;
    },
  };
}
