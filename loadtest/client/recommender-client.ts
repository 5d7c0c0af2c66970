/**
 * A gRPC client for `upnext.v1.Recommender` spread over several channels. One grpc-js channel (one
 * HTTP/2 connection) stalls near 4.6k req/s on our machines (docs ENVIRONMENT.md), so the
 * generator round-robins over `channels` independent connections.
 */
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import path from 'node:path';
import { PROTO_DIR } from '../paths.js';
import { grpcChannelCredentials } from '../../cluster/tls.js';
import type { TlsSection } from '../../cluster/tls.js';

/** `upnext.v1.Context` as proto-loader presents it (camelCase fields). */
export interface ContextMessage {
  readonly device: string;
  readonly country: string;
  readonly localHour: number;
}

/** `upnext.v1.RecommendRequest`. */
export interface RecommendRequestMessage {
  readonly userId: number;
  readonly k: number;
  readonly context: ContextMessage;
  readonly surface: string;
  readonly debug?: boolean;
  readonly excludeVideoIds?: readonly number[];
  readonly requestId?: string;
}

/** The part of `upnext.v1.RecommendResponse` the load test looks at. */
export interface RecommendResponseMessage {
  readonly items: ReadonlyArray<{ readonly videoId: number; readonly source: string }>;
  readonly coverage: number;
  readonly degraded: readonly string[];
  readonly modelVersion: string;
}

/** `upnext.v1.InteractionEvent` (enum `type` by name). */
export interface InteractionEventMessage {
  readonly eventId: string;
  readonly userId: number;
  readonly videoId: number;
  readonly type: 'IMPRESSION' | 'CLICK' | 'WATCH' | 'LIKE' | 'SKIP';
  readonly tsMs: number;
  readonly position: number;
  readonly watchSeconds: number;
  readonly context: ContextMessage;
  readonly surface: string;
}

/** Result of one call as plain data: a response, or the gRPC status code it failed with. */
export type CallResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: number; readonly message: string };

/** Options for {@link RecommenderClientPool}. */
export interface RecommenderClientOptions {
  /**
   * `host:port`, or several: the pool then spreads its calls evenly over them (client-side
   * balancing over a cluster's coordinators, as the callers' own balancer would).
   */
  readonly address: string | readonly string[];
  /** Independent HTTP/2 connections per address to round-robin over. Default 4. */
  readonly channels?: number;
  /** Per-call deadline, ms. Default 2000. */
  readonly deadlineMs?: number;
  /** Mutual TLS against a cluster whose config sets `tls` (cli.ts --tls-* flags). Default unset: plaintext. */
  readonly tls?: TlsSection;
}

type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => unknown;
interface RecommenderStub extends grpc.Client {
  Recommend: UnaryFn;
  LogEvents: UnaryFn;
}

/** Loads the Recommender service definition (also used by test servers). */
export function loadRecommenderService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(path.join('upnext', 'v1', 'recommender.proto'), {
    includeDirs: [PROTO_DIR],
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { upnext: { v1: { Recommender: grpc.ServiceClientConstructor } } };
  return pkg.upnext.v1.Recommender.service;
}

/** Round-robin pool of Recommender clients, one connection each, over one or several addresses. */
export class RecommenderClientPool {
  readonly #clients: RecommenderStub[];
  readonly #deadlineMs: number;
  #next = 0;

  constructor(opts: RecommenderClientOptions) {
    const channels = opts.channels ?? 4;
    if (!Number.isInteger(channels) || channels < 1) throw new TypeError(`channels must be an integer >= 1, got ${channels}`);
    this.#deadlineMs = opts.deadlineMs ?? 2000;
    const Ctor = grpc.makeGenericClientConstructor(loadRecommenderService(), 'Recommender');
    const credentials = grpcChannelCredentials(opts.tls ?? {});
    const addresses = typeof opts.address === 'string' ? [opts.address] : opts.address;
    if (addresses.length === 0) throw new TypeError('address needs at least one host:port');
    this.#clients = [];
    // Interleaved (a1, a2, …, a1, a2, …) so round-robin alternates between addresses call by call.
    for (let i = 0; i < channels; i++) {
      for (const address of addresses) {
        // A distinct option value plus a local subchannel pool: otherwise grpc-js would share one
        // connection between all clients with the same target.
        const client = new Ctor(address, credentials, {
          'grpc.use_local_subchannel_pool': 1,
          'upnext.loadtest_channel': i,
          'grpc.max_receive_message_length': 4 * 1024 * 1024,
        }) as unknown as RecommenderStub;
        this.#clients.push(client);
      }
    }
  }

  /** Waits until every channel is connected (or the deadline passes). */
  async waitForReady(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      this.#clients.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(deadline, (err) => (err ? reject(err) : resolve())))),
    );
  }

  recommend(req: RecommendRequestMessage): Promise<CallResult<RecommendResponseMessage>> {
    return this.#call('Recommend', req);
  }

  logEvents(events: readonly InteractionEventMessage[]): Promise<CallResult<{ accepted: number; duplicates: number }>> {
    return this.#call('LogEvents', { events });
  }

  close(): void {
    for (const c of this.#clients) c.close();
  }

  #call<T>(method: 'Recommend' | 'LogEvents', req: unknown): Promise<CallResult<T>> {
    const client = this.#clients[this.#next]!;
    this.#next = (this.#next + 1) % this.#clients.length;
    return new Promise((resolve) => {
      client[method](req, new grpc.Metadata(), { deadline: Date.now() + this.#deadlineMs }, (err, res) => {
        if (err) resolve({ ok: false, code: err.code ?? grpc.status.UNKNOWN, message: err.details ?? err.message });
        else resolve({ ok: true, value: res as T });
      });
    });
  }
}
