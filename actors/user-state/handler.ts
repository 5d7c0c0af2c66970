/**
 * Bytes in, bytes out: one UserStateRequest answered by a partition, the same code whether the
 * partition lives in a worker thread or on the main thread (user-state.ts).
 */
import { StatusCode, toStatus } from '../../core/status.js';
import { Codecs } from '../../protos/codec.js';
import type { UserStateReplyMsg } from '../../protos/codec.js';
import { statusToMsg } from '../../protos/convert.js';
import type { UserStatePartition } from './partition.js';

/** A reply carrying only a status (no user state). */
export function userErrorReply(partition: number, status: { code: number; message: string; details?: string }, userId = 0): UserStateReplyMsg {
  return {
    status: statusToMsg(status),
    known: false,
    userId,
    recentVideoIds: [],
    recentCreatorIds: [],
    categoryAffinity: [],
    impressions: 0,
    clicks: 0,
    watches: 0,
    watchSeconds: 0,
    embedding: [],
    completeness: 0,
    partition,
    appliedSeq: 0,
  };
}

/**
 * Decodes, answers and encodes one request; null when its deadline has passed (dropped silently:
 * the coordinator has already moved on). `deadline_ms` 0 means none.
 */
export async function handleUserStateRequest(p: UserStatePartition, bytes: Uint8Array, nowMs: number = Date.now()): Promise<Uint8Array | null> {
  let req;
  try {
    req = Codecs.userStateRequest.decode(bytes);
  } catch (err) {
    const status = { code: StatusCode.INVALID_ARGUMENT, message: `undecodable UserStateRequest: ${toStatus(err).message}` };
    return Codecs.userStateReply.encode(userErrorReply(p.partition, status));
  }
  if (req.deadlineMs > 0 && nowMs >= req.deadlineMs) return null;
  try {
    return Codecs.userStateReply.encode(await p.get(req));
  } catch (err) {
    return Codecs.userStateReply.encode(userErrorReply(p.partition, toStatus(err), req.userId));
  }
}
