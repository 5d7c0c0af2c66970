/**
 * A gRPC client for `upnext.v1.Recommender` spread over several channels. One grpc-js channel (one
 * HTTP/2 connection) stalls near 4.6k req/s on our machines (docs ENVIRONMENT.md), so the
 * generator round-robins over `channels` independent connections.
 */
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import path from 'node:path';
import { PROTO_DIR } from '../paths.js';
import type { StageTimings } from '../../actors/coordinator/types.js';
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
  /** `StageTimings` (the coordinator's own type, ms): set when the request asked for debug (null or absent otherwise). */
  readonly timings?: Readonly<StageTimings> | null;
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
   * coordinator hosts, and every call before the first table arrives, are spread. A coordinator
   * that fails a call UNAVAILABLE is skipped for 2 s; a routed call that never reached it is sent
   * once more, within its deadline, to another coordinator (one that dropped it in flight is not).
   * LogEvents is always spread (events reach the partitions through the event stream).
   */
  readonly routing?: RoutingMode;
  /** With routing 'user': re-read the table this often, ms (and after a routed call fails UNAVAILABLE). Default 5000. */
  readonly routingRefreshMs?: number;
}

export type RoutingMode = 'spread' | 'user';

/** How long routing skips a coordinator after a call to it failed UNAVAILABLE, ms. */
const DOWN_MS = 2000;

/**
 * Whether a failed call never reached the server, so sending it again cannot run it twice: grpc-js
 * reports "No connection established" when no connection could be made and "Stream refused" when
 * the server refused the stream; "Connection dropped" (a call in flight when the server died) may
 * have run.
 */
function neverSent(r: { readonly message: string }): boolean {
  return /No connection established|Stream refused/.test(r.message);
}

export function isRoutingMode(value: unknown): value is RoutingMode {
  return value === 'spread' || value === 'user';
}

/** `value` as a {@link RoutingMode}; throws a TypeError "`what` must be "spread" or "user", got …". */
export function parseRoutingMode(value: unknown, what: string): RoutingMode {
  if (!isRoutingMode(value)) throw new TypeError(`${what} must be "spread" or "user", got ${JSON.stringify(value)}`);
  return value;
}

/** What routing did (routing 'user'). */
export interface RoutingStats {
  readonly mode: RoutingMode;
  /** Recommend calls sent to a coordinator hosting the user's partition. */
  readonly routed: number;
  /** Recommend calls spread (no table yet, no coordinator hosts the partition, or its coordinator failed in the last 2 s). */
  readonly spread: number;
  /** Recommend attempts per coordinator address (routed, spread and failed over): how unevenly the load lands. */
  readonly callsByAddress: Readonly<Record<string, number>>;
  /** Routed calls that could not reach their coordinator (UNAVAILABLE, never sent) and were sent once more to another. */
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

/** One client of one coordinator, with the coordinator's address (what routing counts and marks down). */
interface Target {
  readonly client: RecommenderStub;
  readonly address: string;
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
  /** routes[p]: the coordinators hosting partition p, `channels` clients each, interleaved; empty: spread. */
  #routes: Target[][] = [];
  /** Recommend attempts per coordinator address (routing 'user'): how unevenly the load lands. */
  readonly #callsByAddress = new Map<string, number>();
  /** The addresses given to the constructor: kept when a table no longer names them. */
  readonly #seeds: ReadonlySet<string>;
  #table: RoutingTable | undefined;
  #routeNext = 0;
  #refreshing: Promise<RoutingTable | undefined> | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #lastRefreshMs = 0;
  #stats = { routed: 0, spread: 0, failovers: 0, refreshes: 0, refreshFailures: 0, lastError: undefined as string | undefined };
  #failoverNext = 0;
  #failoverChannel = 0;
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
    this.#seeds = new Set(addresses);
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
    this.#routes = table.partitions.map((addresses) => {
      const targets: Target[] = [];
      for (let i = 0; i < this.#channels; i++) for (const address of addresses) targets.push({ client: this.#clientsOf(address)[i]!, address });
      return targets;
    });
    this.#table = table;
    // Coordinators that left the table (a node restarted on another port, or removed): close them.
    const wanted = new Set([...this.#seeds, ...table.coordinators, ...table.partitions.flat()]);
    for (const [address, clients] of this.#byAddress) {
      if (wanted.has(address)) continue;
      for (const c of clients) c.close();
      this.#byAddress.delete(address);
      this.#downUntil.delete(address);
    }
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
      callsByAddress: Object.fromEntries(this.#callsByAddress),
      mapVersion: this.#table?.mapVersion ?? -1,
      ...(lastError !== undefined ? { lastError } : {}),
    };
  }

  recommend(req: RecommendRequestMessage): Promise<CallResult<RecommendResponseMessage>> {
    if (this.#routing === 'spread') return this.#call('Recommend', req);
    const table = this.#table;
    const p = table === undefined ? -1 : userPartitionOf(req.userId, table.userPartitions);
    const targets = this.#routes[p] ?? [];
    // The partition's hosts in round-robin order, skipping any that failed in the last DOWN_MS.
    const start = targets.length > 0 ? this.#routeNext++ % targets.length : 0;
    let target: Target | undefined;
    for (let k = 0; k < targets.length && target === undefined; k++) {
      const t = targets[(start + k) % targets.length]!;
      if (!this.#isDown(t.address)) target = t;
    }
    const deadlineAt = Date.now() + this.#deadlineMs;
    if (target === undefined) {
      // No table yet, no coordinator hosts the partition, or every one that does is down.
      this.#stats.spread++;
      const other = this.#failoverTarget(p, undefined);
      return other === undefined ? this.#call('Recommend', req) : this.#send(other, req, deadlineAt);
    }
    this.#stats.routed++;
    const address = target.address;
    return this.#send(target, req, deadlineAt).then((r) => {
      if (r.ok || r.code !== grpc.status.UNAVAILABLE) return r;
      // The coordinator is gone (a killed node keeps its address in the map until it returns):
      // skip it for DOWN_MS and re-read the table soon (at most once a second). When the call was
      // never sent (no connection, or the stream refused), send it once more, within the same
      // deadline, to another coordinator, which serves every user (reading this one's state over
      // NATS, or degraded as a new user's); a call the connection dropped may have run, so it is
      // not repeated.
      if (Date.now() - this.#lastRefreshMs > 1000) void this.refreshRouting();
      if (!neverSent(r)) return r;
      const other = this.#failoverTarget(p, address);
      if (other === undefined) return r;
      this.#stats.failovers++;
      return this.#send(other, req, deadlineAt);
    });
  }

  /** One Recommend attempt, counted by address; an UNAVAILABLE marks the address down for DOWN_MS. */
  #send(target: Target, req: RecommendRequestMessage, deadlineAt: number): Promise<CallResult<RecommendResponseMessage>> {
    this.#callsByAddress.set(target.address, (this.#callsByAddress.get(target.address) ?? 0) + 1);
    return this.#unary<RecommendResponseMessage>(target.client, 'Recommend', req, deadlineAt).then((r) => {
      if (!r.ok && r.code === grpc.status.UNAVAILABLE) this.#downUntil.set(target.address, Date.now() + DOWN_MS);
      return r;
    });
  }

  #isDown(address: string): boolean {
    const until = this.#downUntil.get(address);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#downUntil.delete(address);
    return false;
  }

  /**
   * Where a call of partition `p` goes when `not` (its routed coordinator) cannot take it: another
   * coordinator hosting `p` first, else any coordinator of the table (else the given addresses),
   * none of them down; undefined when there is none.
   */
  #failoverTarget(p: number, not: string | undefined): Target | undefined {
    const usable = (a: string) => a !== not && !this.#isDown(a) && this.#byAddress.has(a);
    const hosts = [...new Set((this.#routes[p] ?? []).map((t) => t.address))].filter(usable);
    const pool = hosts.length > 0 ? hosts : [...new Set([...(this.#table?.coordinators ?? []), ...this.#seeds])].filter(usable);
    if (pool.length === 0) return undefined;
    const address = pool[this.#failoverNext++ % pool.length]!;
    const clients = this.#byAddress.get(address)!;
    return { client: clients[this.#failoverChannel++ % clients.length]!, address };
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

  #unary<T>(client: RecommenderStub, method: 'Recommend' | 'LogEvents' | 'GetRouting', req: unknown, deadlineAt = Date.now() + this.#deadlineMs): Promise<CallResult<T>> {
    return new Promise((resolve) => {
      client[method](req, new grpc.Metadata(), { deadline: deadlineAt }, (err, res) => {
        if (err) resolve({ ok: false, code: err.code ?? grpc.status.UNKNOWN, message: err.details ?? err.message });
        else resolve({ ok: true, value: res as T });
      });
    });
  }
}
