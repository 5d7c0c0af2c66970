/**
 * protobufjs codecs for upnext's internal messages (NATS payloads, the event stream). The .proto
 * files in this folder are the source of truth; these TypeScript interfaces mirror them.
 *
 * 64-bit integers: ids are carried as JS numbers (≤ 2^53-1, enforced at the public edge), so this
 * module switches protobufjs (this copy only; grpc-js' proto-loader has its own) to plain numbers
 * instead of Long objects: decoding then yields numbers with no conversion pass.
 */
import path from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_DIR } from '../core/paths.js';

export { PROTO_DIR };

// Plain numbers for int64/uint64 in this protobufjs instance (see module comment).
(protobuf.util as { Long: unknown }).Long = undefined;
protobuf.configure();

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
  root.loadSync(['upnext/v1/recommender.proto', 'upnext/v1/internal.proto'], { keepCase: false });
  root.resolveAll();
  return root;
}

const root = loadRoot();

/** A typed encoder/decoder for one message type. */
export interface Codec<T> {
  readonly typeName: string;
  encode(message: T): Uint8Array;
  /** Decodes bytes; absent fields take proto3 defaults (0, "", false, []). */
  decode(bytes: Uint8Array): T;
}

function codec<T>(typeName: string): Codec<T> {
  const type = root.lookupType(typeName);
  return {
    typeName,
    encode: (message: T) => type.encode(message as unknown as protobuf.Message).finish(),
    decode: (bytes: Uint8Array) => type.decode(bytes) as unknown as T,
  };
}

export interface StatusMsg {
  code: number;
  message: string;
  details?: string;
}

export interface ContextMsg {
  device: string;
  country: string;
  localHour: number;
}

export interface ShardSearchRequestMsg {
  userVector: number[] | Float32Array;
  k: number;
  excludeVideoIds: number[];
  /** Absolute epoch ms. */
  deadlineMs: number;
  /** Embedding space of userVector (actors/model/embedding-space.ts); '' or absent = unstated. */
  space?: string;
}

/** Columnar candidates: index i of every array describes candidate i, best first. */
export interface CandidateBatchMsg {
  videoIds: number[];
  scores: number[];
  creatorIds: number[];
  categories: number[];
  durationS: number[];
  uploadTsMs: number[];
  impressions: number[];
  clicks: number[];
  watches: number[];
  watchRatioSums: number[];
}

export interface ShardSearchReplyMsg {
  status?: StatusMsg | null;
  shard: number;
  candidates?: CandidateBatchMsg | null;
  shardSize: number;
  searchMs: number;
}

export interface UserStateRequestMsg {
  userId: number;
  context?: ContextMsg | null;
  deadlineMs: number;
  /** Embedding space the caller searches in; '' or absent = the partition's own. */
  space?: string;
  /** The caller's model version: where a partition of another space finds that space's user tower. */
  modelVersion?: string;
}

export interface UserStateReplyMsg {
  status?: StatusMsg | null;
  known: boolean;
  userId: number;
  recentVideoIds: number[];
  recentCreatorIds: number[];
  categoryAffinity: number[];
  impressions: number;
  clicks: number;
  watches: number;
  watchSeconds: number;
  embedding: number[];
  completeness: number;
  partition: number;
  appliedSeq: number;
  /** Embedding space of `embedding`; '' or absent = unstated (an older build). */
  space?: string;
}

export interface ItemUpsertMsg {
  videoId: number;
  creatorId: number;
  category: number;
  durationS: number;
  uploadTsMs: number;
}

export interface ItemAdminRequestMsg {
  upserts: ItemUpsertMsg[];
  removeVideoIds: number[];
}

export interface ItemAdminReplyMsg {
  status?: StatusMsg | null;
  upserted: number;
  removed: number;
  shardSize: number;
}

export interface PopularRequestMsg {
  country: string;
  device: string;
  n: number;
  trending: boolean;
}

export interface CandidateBatchReplyMsg {
  status?: StatusMsg | null;
  candidates?: CandidateBatchMsg | null;
}

/** Wire form of core/events.ts InteractionEvent (enum as its number). */
export interface InteractionEventMsg {
  eventId: string;
  userId: number;
  videoId: number;
  type: number;
  tsMs: number;
  position: number;
  watchSeconds: number;
  context?: ContextMsg | null;
  surface: string;
  requestId: string;
}

export interface EventEnvelopeMsg {
  event?: InteractionEventMsg | null;
}

/** A sample of served ranker rows (feature log); `rows` is float32 LE, videoIds.length × width. */
export interface ServedRowsMsg {
  requestId: string;
  userId: number;
  modelVersion: string;
  featureSpecHash: string;
  width: number;
  videoIds: number[];
  slots: number[];
  rows: Uint8Array;
  servedAtMs: number;
  surface: string;
}

export const Codecs = {
  shardSearchRequest: codec<ShardSearchRequestMsg>('upnext.internal.v1.ShardSearchRequest'),
  shardSearchReply: codec<ShardSearchReplyMsg>('upnext.internal.v1.ShardSearchReply'),
  userStateRequest: codec<UserStateRequestMsg>('upnext.internal.v1.UserStateRequest'),
  userStateReply: codec<UserStateReplyMsg>('upnext.internal.v1.UserStateReply'),
  itemAdminRequest: codec<ItemAdminRequestMsg>('upnext.internal.v1.ItemAdminRequest'),
  itemAdminReply: codec<ItemAdminReplyMsg>('upnext.internal.v1.ItemAdminReply'),
  popularRequest: codec<PopularRequestMsg>('upnext.internal.v1.PopularRequest'),
  candidateBatchReply: codec<CandidateBatchReplyMsg>('upnext.internal.v1.CandidateBatchReply'),
  eventEnvelope: codec<EventEnvelopeMsg>('upnext.internal.v1.EventEnvelope'),
  servedRows: codec<ServedRowsMsg>('upnext.internal.v1.ServedRows'),
} as const;
