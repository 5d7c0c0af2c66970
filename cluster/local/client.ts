/**
 * A small typed gRPC client of the public `upnext.v1.Recommender` service (Recommend, LogEvents),
 * built with @grpc/proto-loader from protos/upnext/v1/recommender.proto. Used by `make run` to show
 * real recommendations and by the end-to-end tests; any other gRPC client works the same way.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_DIR } from '../../protos/codec.js';
import type { TlsSection } from '../tls.js';
import { grpcChannelCredentials } from '../tls.js';

/** Fields of `upnext.v1.RecommendRequest` (ids as numbers; proto-loader sends them as uint64). */
export interface RecommendCall {
  readonly userId: number;
  readonly k: number;
  readonly context?: { readonly device?: string; readonly country?: string; readonly localHour?: number };
  readonly surface?: string;
  readonly debug?: boolean;
  readonly excludeVideoIds?: readonly number[];
  readonly requestId?: string;
}

/** `upnext.v1.RecommendedItem` with ids decoded to numbers and the source as its enum name. */
export interface RecommendedItemReply {
  readonly videoId: number;
  readonly score: number;
  readonly pClick: number;
  readonly expectedWatchSeconds: number;
  readonly source: string;
  readonly shard: number;
}

/** `upnext.v1.RecommendResponse`. */
export interface RecommendReply {
  readonly items: RecommendedItemReply[];
  readonly coverage: number;
  readonly degraded: string[];
  readonly modelVersion: string;
  readonly requestId: string;
  readonly timings: Readonly<Record<string, number>> | null;
}

/** One interaction event for LogEvents (fields as in recommender.proto's InteractionEvent). */
export interface LogEventCall {
  readonly eventId: string;
  readonly userId: number;
  readonly videoId: number;
  /** 'IMPRESSION' | 'CLICK' | 'WATCH' | 'LIKE' | 'SKIP'. */
  readonly type: string;
  /** Event time, epoch ms; 0 = now. */
  readonly tsMs?: number;
  readonly position?: number;
  readonly watchSeconds?: number;
  readonly context?: { device?: string; country?: string; localHour?: number };
  readonly surface?: string;
  readonly requestId?: string;
}

/** A connected client; `close()` releases the channel. */
export interface RecommenderClient {
  /** Rejects with a grpc ServiceError (its `code` is the gRPC status) on failure. */
  recommend(req: RecommendCall, opts?: { deadlineMs?: number; metadata?: grpc.Metadata }): Promise<RecommendReply>;
  /** LogEvents: resolves with the accepted and duplicate counts; rejects with a grpc ServiceError. */
  logEvents(events: readonly LogEventCall[], opts?: { deadlineMs?: number; metadata?: grpc.Metadata }): Promise<{ accepted: number; duplicates: number }>;
  /** The underlying grpc-js client, for health/reflection calls on the same channel. */
  readonly raw: grpc.Client;
  close(): void;
}

interface RawItem {
  videoId: string;
  score: number;
  pClick: number;
  expectedWatchSeconds: number;
  source: string;
  shard: number;
}

interface RawReply {
  items?: RawItem[];
  coverage?: number;
  degraded?: string[];
  modelVersion?: string;
  requestId?: string;
  timings?: Record<string, number> | null;
}

/** Options of {@link connectRecommender}. */
export interface ConnectRecommenderOptions {
  /**
   * The cluster's `tls` section (cluster/config.ts): when set, the client dials with mutual TLS
   * (trusts `caFile`, presents `certFile`/`keyFile`). Default unset: plaintext.
   */
  readonly tls?: TlsSection;
}

/** Connects to `address` (host:port): plaintext, or mutual TLS when `opts.tls` is set. */
export function connectRecommender(address: string, opts: ConnectRecommenderOptions = {}): RecommenderClient {
  const def = protoLoader.loadSync(path.join(PROTO_DIR, 'upnext/v1/recommender.proto'), {
    includeDirs: [PROTO_DIR],
    longs: String,
    enums: String,
    defaults: true,
    keepCase: false,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    upnext: { v1: { Recommender: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client } };
  };
  const client = new pkg.upnext.v1.Recommender(address, grpcChannelCredentials(opts.tls ?? {}));
  const call = client as unknown as Record<
    string,
    (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: RawReply) => void) => void
  >;
  return {
    raw: client,
    recommend: (req, opts = {}) =>
      new Promise<RecommendReply>((resolve, reject) => {
        const body = {
          userId: String(req.userId),
          k: req.k,
          context: req.context ?? {},
          surface: req.surface ?? '',
          debug: req.debug ?? false,
          excludeVideoIds: (req.excludeVideoIds ?? []).map(String),
          requestId: req.requestId ?? '',
        };
        call.recommend!.call(
          client,
          body,
          opts.metadata ?? new grpc.Metadata(),
          { deadline: Date.now() + (opts.deadlineMs ?? 5000) },
          (err, res) => {
            if (err) return reject(err);
            resolve({
              items: (res.items ?? []).map((i) => ({ ...i, videoId: Number(i.videoId) })),
              coverage: res.coverage ?? 0,
              degraded: res.degraded ?? [],
              modelVersion: res.modelVersion ?? '',
              requestId: res.requestId ?? '',
              timings: res.timings ?? null,
            });
          },
        );
      }),
    logEvents: (events, opts = {}) =>
      new Promise<{ accepted: number; duplicates: number }>((resolve, reject) => {
        const body = {
          events: events.map((e) => ({
            eventId: e.eventId,
            userId: String(e.userId),
            videoId: String(e.videoId),
            type: e.type,
            tsMs: String(e.tsMs ?? 0),
            position: e.position ?? -1,
            watchSeconds: e.watchSeconds ?? 0,
            context: e.context ?? {},
            surface: e.surface ?? '',
            requestId: e.requestId ?? '',
          })),
        };
        const cb = (err: grpc.ServiceError | null, res: { accepted?: number; duplicates?: number }) =>
          err ? reject(err) : resolve({ accepted: res.accepted ?? 0, duplicates: res.duplicates ?? 0 });
        (call.logEvents as unknown as (req: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { accepted?: number; duplicates?: number }) => void) => void).call(
          client,
          body,
          opts.metadata ?? new grpc.Metadata(),
          { deadline: Date.now() + (opts.deadlineMs ?? 5000) },
          cb,
        );
      }),
    close: () => client.close(),
  };
}
