/**
 * NATS adapters of the coordinator's ports: user state and item-shard search as request/reply on
 * the per-partition / per-shard subjects (core/subjects.ts), protobuf payloads (protos/codec.ts).
 *
 * Timers: the pipeline owns the stage deadline (stage-timer.ts). The NATS request timeout here is the
 * remaining time plus a small grace, only so the client's own bookkeeping of a lost reply ends; it
 * never decides the stage's outcome.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/nats-core';
import type { Deadline } from '../../core/deadline.js';
import type { RequestContext } from '../../core/events.js';
import { userPartitionOf } from '../../core/hash.js';
import { StatusCode, UpnextError, deadlineExceeded, unavailable } from '../../core/status.js';
import { Subjects } from '../../core/subjects.js';
import type { ShardSearchReplyMsg, ShardSearchRequestMsg, StatusMsg, UserStateReplyMsg } from '../../protos/codec.js';
import { Codecs } from '../../protos/codec.js';
import { contextToMsg } from '../../protos/convert.js';
import type { ShardSearcher, UserStateSource, WantedSpace } from './ports.js';

/** Extra ms the NATS client waits beyond the stage deadline before dropping its reply slot. */
const CLIENT_GRACE_MS = 50;

/** Maps a NATS request failure onto the status vocabulary (by error class, never by message text). */
export function natsRequestError(subject: string, err: unknown): UpnextError {
  if (err instanceof UpnextError) return err;
  if (isNoResponders(err)) {
    return unavailable(`no responders on ${subject}`);
  }
  if (err instanceof TimeoutError) return deadlineExceeded(`no reply on ${subject} in time`);
  return new UpnextError(StatusCode.UNAVAILABLE, `request on ${subject} failed: ${err instanceof Error ? err.message : String(err)}`);
}

/** Rejects a reply that carries a non-OK status, naming where it came from. */
export function throwIfStatus(subject: string, status: StatusMsg | null | undefined): void {
  if (status && status.code !== 0) {
    throw new UpnextError(status.code, `${subject}: ${status.message}`, status.details || undefined);
  }
}

/** One NATS request; `onNoResponders`, when given, answers instead when nobody listens on `subject`. */
async function request(nc: NatsConnection, subject: string, payload: Uint8Array, deadline: Deadline, onNoResponders?: () => Promise<Uint8Array>): Promise<Uint8Array> {
  try {
    const msg = await nc.request(subject, payload, { timeout: Math.max(1, Math.ceil(deadline.remainingMs())) + CLIENT_GRACE_MS });
    return msg.data;
  } catch (err) {
    if (onNoResponders !== undefined && isNoResponders(err)) return onNoResponders();
    throw natsRequestError(subject, err);
  }
}

function isNoResponders(err: unknown): boolean {
  return err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders());
}

// The scatter sends the same request to every shard, local or over NATS: encode it once per request object.
const encodedSearchRequests = new WeakMap<ShardSearchRequestMsg, Uint8Array>();

/** The ShardSearchRequest's bytes, encoded once per request object (the caller must not mutate it after). */
export function encodeShardSearchRequest(req: ShardSearchRequestMsg): Uint8Array {
  let payload = encodedSearchRequests.get(req);
  if (payload === undefined) {
    payload = Codecs.shardSearchRequest.encode(req);
    encodedSearchRequests.set(req, payload);
  }
  return payload;
}

/** The UserStateRequest bytes for one user (one request per Recommend, so nothing to cache). */
export function encodeUserStateRequest(userId: number, context: RequestContext, deadline: Deadline, want?: WantedSpace): Uint8Array {
  return Codecs.userStateRequest.encode({ userId, context: contextToMsg(context), deadlineMs: deadline.atMs, space: want?.space ?? '', modelVersion: want?.modelVersion ?? '' });
}

/** User state over NATS: one request to the user's partition subject. */
export class NatsUserStateSource implements UserStateSource {
  readonly #nc: NatsConnection;
  readonly #cluster: string;
  readonly #partitions: number;

  constructor(nc: NatsConnection, cluster: string, partitions: number) {
    this.#nc = nc;
    this.#cluster = cluster;
    this.#partitions = partitions;
  }

  async get(userId: number, context: RequestContext, deadline: Deadline, want?: WantedSpace): Promise<UserStateReplyMsg> {
    const subject = Subjects.userGet(this.#cluster, userPartitionOf(userId, this.#partitions));
    const payload = encodeUserStateRequest(userId, context, deadline, want);
    const reply = Codecs.userStateReply.decode(await request(this.#nc, subject, payload, deadline));
    throwIfStatus(subject, reply.status);
    return reply;
  }
}

/** Item-shard search over NATS: one request per virtual shard subject (replicas in a queue group). */
export class NatsShardSearcher implements ShardSearcher {
  readonly #nc: NatsConnection;
  readonly #cluster: string;

  constructor(nc: NatsConnection, cluster: string) {
    this.#nc = nc;
    this.#cluster = cluster;
  }

  async search(shard: number, req: ShardSearchRequestMsg, deadline: Deadline): Promise<ShardSearchReplyMsg> {
    // In a space, only replicas on the same towers are asked (a tower switch or roll may be under way).
    const plain = Subjects.itemSearch(this.#cluster, shard);
    const payload = encodeShardSearchRequest(req);
    let subject = req.space ? Subjects.itemSearchInSpace(this.#cluster, shard, req.space) : plain;
    // No replica on the space subject: the shard's hosts may run a build from before spaces (a rolling
    // upgrade), so ask on the plain subject; a replica of other towers still refuses the vector there
    // (FAILED_PRECONDITION), so this never mixes spaces.
    const onNoResponders = subject === plain ? undefined : () => request(this.#nc, (subject = plain), payload, deadline);
    const reply = Codecs.shardSearchReply.decode(await request(this.#nc, subject, payload, deadline, onNoResponders));
    throwIfStatus(subject, reply.status);
    return reply;
  }
}

