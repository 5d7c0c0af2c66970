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
import { userPartitionOf } from '../../core/hash.js';
import type { RoutingTable, RoutingTableWire } from '../../shardmap/routing-table.js';
import { routingTableFromWire } from '../../shardmap/routing-table.js';

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
  /**
   * How Recommend calls pick a coordinator. 'spread' (default): round-robin over `address`.
   * 'user': read the cluster's routing table (GetRouting, shardmap/routing-table.ts) from `address`
   * and send each user to a coordinator whose node hosts the user's partition, so the coordinator
   * reads the user's state in its own process instead of over NATS; users whose partition no
   * coordinator hosts, and every call before the first table arrives, are spread. A routed call
   * that fails UNAVAILABLE (its coordinator is gone) is sent once more to another coordinator, and
   * that coordinator's users are spread for the next 2 s (then tried again).
   * LogEvents is always spread (events reach the partitions through the event stream).
   */
  readonly routing?: RoutingMode;
  /** With routing 'user': re-read the table this often, ms (and after a routed call fails UNAVAILABLE). Default 5000. */
  readonly routingRefreshMs?: number;
}

export type RoutingMode = 'spread' | 'user';

/** How long routing skips a coordinator after a routed call to it failed UNAVAILABLE, ms. */
const DOWN_MS = 2000;

/** `value` as a {@link RoutingMode}; throws a TypeError "`what` must be spread or user, got …". */
export function parseRoutingMode(value: unknown, what: string): RoutingMode {
  if (value !== 'spread' && value !== 'user') throw new TypeError(`${what} must be "spread" or "user", got ${JSON.stringify(value)}`);
  return value;
}

/** What routing did (routing 'user'). */
export interface RoutingStats {
  readonly mode: RoutingMode;
  /** Recommend calls sent to a coordinator hosting the user's partition. */
  readonly routed: number;
  /** Recommend calls spread (no table yet, no coordinator hosts the partition, or its coordinator failed in the last 2 s). */
  readonly spread: number;
  /** Routed calls per coordinator address (how unevenly the partitions' traffic lands). */
  readonly routedByAddress: Readonly<Record<string, number>>;
  /** Routed calls that failed UNAVAILABLE (the coordinator is gone) and were sent once more to another coordinator. */
  readonly failovers: number;
  /** Map version of the table in use; -1 before the first. */
  readonly mapVersion: number;
  readonly refreshes: number;
  readonly refreshFailures: number;
  /** Message of the last failed refresh, if any. */
  readonly lastError?: string;
}

type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => unknown;
interface RecommenderStub extends grpc.Client {
  Recommend: UnaryFn;
  LogEvents: UnaryFn;
  GetRouting: UnaryFn;
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

/**
 * Round-robin pool of Recommender clients, `channels` connections per address, over one or several
 * addresses; with routing 'user', Recommend calls go to the coordinators hosting each user's partition.
 */
export class RecommenderClientPool {
  /** Clients of the given addresses, interleaved (a1, a2, …, a1, a2, …) for the spread round-robin. */
  readonly #clients: RecommenderStub[];
  readonly #byAddress = new Map<string, RecommenderStub[]>();
  readonly #deadlineMs: number;
  readonly #channels: number;
  readonly #makeClient: (address: string, channel: number) => RecommenderStub;
  readonly #routing: RoutingMode;
  readonly #refreshMs: number;
  #next = 0;
  /** routes[p]: clients of the coordinators hosting partition p, interleaved; empty: spread. */
  #routes: RecommenderStub[][] = [];
  /** routeAddresses[p][i]: the address of routes[p][i]. */
  #routeAddresses: string[][] = [];
  readonly #routedByAddress = new Map<string, number>();
  #table: RoutingTable | undefined;
  #routeNext = 0;
  #refreshing: Promise<RoutingTable | undefined> | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #lastRefreshMs = 0;
  #stats = { routed: 0, spread: 0, failovers: 0, refreshes: 0, refreshFailures: 0, lastError: undefined as string | undefined };
  #failoverNext = 0;
  /** Coordinators that failed a routed call UNAVAILABLE, until when they are skipped (epoch ms). */
  readonly #downUntil = new Map<string, number>();
  #closed = false;

  constructor(opts: RecommenderClientOptions) {
    const channels = opts.channels ?? 4;
    if (!Number.isInteger(channels) || channels < 1) throw new TypeError(`channels must be an integer >= 1, got ${channels}`);
    this.#channels = channels;
    this.#deadlineMs = opts.deadlineMs ?? 2000;
    this.#routing = parseRoutingMode(opts.routing ?? 'spread', 'routing');
    this.#refreshMs = opts.routingRefreshMs ?? 5000;
    if (!Number.isFinite(this.#refreshMs) || this.#refreshMs < 100) throw new TypeError(`routingRefreshMs must be a number >= 100, got ${String(opts.routingRefreshMs)}`);
    const Ctor = grpc.makeGenericClientConstructor(loadRecommenderService(), 'Recommender');
    const credentials = grpcChannelCredentials(opts.tls ?? {});
    // A distinct option value plus a local subchannel pool: otherwise grpc-js would share one
    // connection between all clients with the same target.
    this.#makeClient = (address, channel) =>
      new Ctor(address, credentials, {
        'grpc.use_local_subchannel_pool': 1,
        'upnext.loadtest_channel': channel,
        'grpc.max_receive_message_length': 4 * 1024 * 1024,
      }) as unknown as RecommenderStub;
    const addresses = typeof opts.address === 'string' ? [opts.address] : opts.address;
    if (addresses.length === 0) throw new TypeError('address needs at least one host:port');
    for (const address of addresses) this.#clientsOf(address);
    this.#clients = [];
    for (let i = 0; i < channels; i++) {
      for (const address of new Set(addresses)) this.#clients.push(this.#byAddress.get(address)![i]!);
    }
    if (this.#routing === 'user') {
      this.#refreshTimer = setInterval(() => void this.refreshRouting(), this.#refreshMs);
      this.#refreshTimer.unref();
    }
  }

  /** The `channels` clients of `address`, made on first use (a routing table may name new coordinators). */
  #clientsOf(address: string): RecommenderStub[] {
    let clients = this.#byAddress.get(address);
    if (clients === undefined) {
      clients = [];
      for (let i = 0; i < this.#channels; i++) clients.push(this.#makeClient(address, i));
      this.#byAddress.set(address, clients);
    }
    return clients;
  }

  /**
   * Waits until every channel is connected (or the deadline passes); with routing 'user', reads the
   * routing table first and waits for the coordinators it names too.
   */
  async waitForReady(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.#routing === 'user') {
      const table = await this.refreshRouting();
      if (table === undefined) throw new Error(`routing 'user': no routing table from ${[...this.#byAddress.keys()].join(', ')}: ${this.#stats.lastError ?? 'unknown error'}`);
    }
    await Promise.all(
      [...this.#byAddress.values()].flat().map((c) => new Promise<void>((resolve, reject) => c.waitForReady(deadline, (err) => (err ? reject(err) : resolve())))),
    );
  }

  /**
   * Reads the routing table from the given addresses (the first that answers) and routes by it from
   * the next call on. Resolves to the table, or undefined when none answered (the previous table,
   * if any, stays in use). Concurrent calls share one read.
   */
  refreshRouting(): Promise<RoutingTable | undefined> {
    this.#refreshing ??= this.#readTable().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #readTable(): Promise<RoutingTable | undefined> {
    this.#lastRefreshMs = Date.now();
    this.#stats.refreshes++;
    let lastError = 'no address';
    for (const clients of [...this.#byAddress.values()]) {
      if (this.#closed) return undefined;
      const r = await this.#unary<RoutingTableWire>(clients[0]!, 'GetRouting', {});
      if (!r.ok) {
        lastError = `${grpc.status[r.code] ?? r.code}: ${r.message}`;
        continue;
      }
      try {
        const table = routingTableFromWire(r.value);
        this.#useTable(table);
        return table;
      } catch (err) {
        lastError = `invalid routing table: ${(err as Error).message}`;
      }
    }
    this.#stats.refreshFailures++;
    this.#stats.lastError = lastError;
    return undefined;
  }

  #useTable(table: RoutingTable): void {
    if (this.#closed) return;
    const routes: RecommenderStub[][] = [];
    const routeAddresses: string[][] = [];
    for (const addresses of table.partitions) {
      const clients: RecommenderStub[] = [];
      const of: string[] = [];
      for (let i = 0; i < this.#channels; i++) {
        for (const a of addresses) {
          clients.push(this.#clientsOf(a)[i]!);
          of.push(a);
        }
      }
      routes.push(clients);
      routeAddresses.push(of);
    }
    this.#routes = routes;
    this.#routeAddresses = routeAddresses;
    this.#table = table;
  }

  /** The routing table in use (routing 'user'); undefined before the first read. */
  get routingTable(): RoutingTable | undefined {
    return this.#table;
  }

  routingStats(): RoutingStats {
    const { lastError, ...counts } = this.#stats;
    return {
      mode: this.#routing,
      ...counts,
      routedByAddress: Object.fromEntries(this.#routedByAddress),
      mapVersion: this.#table?.mapVersion ?? -1,
      ...(lastError !== undefined ? { lastError } : {}),
    };
  }

  recommend(req: RecommendRequestMessage): Promise<CallResult<RecommendResponseMessage>> {
    if (this.#routing === 'user') {
      const table = this.#table;
      const p = table === undefined ? -1 : userPartitionOf(req.userId, table.userPartitions);
      const clients = this.#routes[p];
      const at = clients === undefined || clients.length === 0 ? -1 : this.#routeNext++ % clients.length;
      const address = at < 0 ? undefined : this.#routeAddresses[p]![at]!;
      if (address !== undefined && !this.#isDown(address)) {
        this.#stats.routed++;
        this.#routedByAddress.set(address, (this.#routedByAddress.get(address) ?? 0) + 1);
        return this.#unary<RecommendResponseMessage>(clients![at]!, 'Recommend', req).then((r) => {
          if (r.ok || r.code !== grpc.status.UNAVAILABLE) return r;
          // The coordinator is gone (a killed node keeps its address in the map until it returns):
          // skip it for a while, re-read the table soon (at most once a second), and send this call
          // once more to another coordinator, which serves every user (reading this one's state
          // over NATS, or degraded as a new user's).
          this.#downUntil.set(address, Date.now() + DOWN_MS);
          if (Date.now() - this.#lastRefreshMs > 1000) void this.refreshRouting();
          const other = this.#clientNotAt(address);
          if (other === undefined) return r;
          this.#stats.failovers++;
          return this.#unary<RecommendResponseMessage>(other, 'Recommend', req);
        });
      }
      this.#stats.spread++;
      // Its coordinator failed a call in the last DOWN_MS: straight to another one.
      const other = address === undefined ? undefined : this.#clientNotAt(address);
      if (other !== undefined) return this.#unary<RecommendResponseMessage>(other, 'Recommend', req);
    }
    return this.#call('Recommend', req);
  }

  #isDown(address: string): boolean {
    const until = this.#downUntil.get(address);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#downUntil.delete(address);
    return false;
  }

  /** A client of a known coordinator other than `address`, and not down (round-robin), or undefined when there is none. */
  #clientNotAt(address: string): RecommenderStub | undefined {
    const others = [...this.#byAddress.entries()].filter(([a]) => a !== address && !this.#isDown(a));
    if (others.length === 0) return undefined;
    const [, clients] = others[this.#failoverNext++ % others.length]!;
    return clients[this.#failoverNext % clients.length];
  }

  logEvents(events: readonly InteractionEventMessage[]): Promise<CallResult<{ accepted: number; duplicates: number }>> {
    return this.#call('LogEvents', { events });
  }

  close(): void {
    this.#closed = true;
    if (this.#refreshTimer !== undefined) clearInterval(this.#refreshTimer);
    for (const clients of this.#byAddress.values()) for (const c of clients) c.close();
  }

  #call<T>(method: 'Recommend' | 'LogEvents', req: unknown): Promise<CallResult<T>> {
    const client = this.#clients[this.#next]!;
    this.#next = (this.#next + 1) % this.#clients.length;
    return this.#unary<T>(client, method, req);
  }

  #unary<T>(client: RecommenderStub, method: 'Recommend' | 'LogEvents' | 'GetRouting', req: unknown): Promise<CallResult<T>> {
    return new Promise((resolve) => {
      client[method](req, new grpc.Metadata(), { deadline: Date.now() + this.#deadlineMs }, (err, res) => {
        if (err) resolve({ ok: false, code: err.code ?? grpc.status.UNKNOWN, message: err.details ?? err.message });
        else resolve({ ok: true, value: res as T });
      });
    });
  }
}
