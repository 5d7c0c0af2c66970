/**
 * The in-process core of a user-state partition: the profiles of the users with
 * `userPartitionOf(userId, P) === p`, updated by `applyEventToUser` (the one feature definition),
 * and the request handler that turns a profile plus a context into a UserStateReply with a fresh
 * user embedding. No NATS, no threads: user-state.ts hosts it (in a worker or inline) and the bench
 * calls it directly.
 *
 * Embedding cache: an LRU keyed by (user, profile version, device, hour bucket, country bucket).
 * Applying an event bumps the user's version, so the next request misses and recomputes: entries of
 * older versions are never read again and age out.
 */
import { LRUCache } from 'lru-cache';
import type { InteractionEvent, RequestContext } from '../../core/events.js';
import type { EventItemInfo, UserProfile } from '../../core/features/user.js';
import { applyEventToUser, newUserProfile, userFeatureCompleteness } from '../../core/features/user.js';
import { countryBucket, deviceIndex, hourBucket } from '../../core/features/context.js';
import { userPartitionOf } from '../../core/hash.js';
import { invalidArgument } from '../../core/status.js';
import type { UserStateReplyMsg, UserStateRequestMsg } from '../../protos/codec.js';
import { contextFromMsg } from '../../protos/convert.js';
import { readEventBatches, readVideoBatches } from '../../offline/world/reader.js';
import type { UserEmbedder } from './user-tower.js';

/** An event with its event-stream sequence number (JetStream stream sequence). */
export interface SequencedEvent {
  readonly seq: number;
  readonly event: InteractionEvent;
}

/** Result of {@link UserStatePartition.applyEvents}. */
export interface ApplyResult {
  /** Events applied to a profile of this partition. */
  readonly applied: number;
  /** Events skipped: already applied (seq ≤ appliedSeq) or another partition's user. */
  readonly skipped: number;
  readonly appliedSeq: number;
}

/** Options of {@link UserStatePartition}. */
export interface UserStatePartitionOptions {
  readonly partition: number;
  readonly partitionCount: number;
  readonly embedder: UserEmbedder;
  /** Cached embeddings (one per user × context bucket × version). Default 100000. */
  readonly embeddingCacheSize?: number;
}

interface Entry {
  readonly profile: UserProfile;
  /** Bumped on every applied event; part of the embedding cache key. */
  version: number;
}

/** Counters for /metrics. */
export interface UserPartitionCounters {
  readonly users: number;
  readonly requests: number;
  readonly unknownUsers: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
  readonly eventsApplied: number;
  readonly appliedSeq: number;
  readonly cachedEmbeddings: number;
  readonly memoryBytes: number;
}

/** Profiles and embedding cache of one partition (see the module comment). */
export class UserStatePartition {
  readonly partition: number;
  readonly partitionCount: number;
  readonly #embedder: UserEmbedder;
  readonly #users = new Map<number, Entry>();
  /** Category and creator of every known video (events name videos of every shard). */
  readonly #items = new Map<number, EventItemInfo>();
  readonly #cache: LRUCache<string, Float32Array>;
  #appliedSeq = 0;
  #requests = 0;
  #unknown = 0;
  #hits = 0;
  #misses = 0;
  #eventsApplied = 0;
  /** Sum of recent-list lengths over all profiles (kept incrementally for memoryBytes). */
  #recentEntries = 0;

  constructor(opts: UserStatePartitionOptions) {
    this.partition = opts.partition;
    this.partitionCount = opts.partitionCount;
    this.#embedder = opts.embedder;
    this.#cache = new LRUCache({ max: opts.embeddingCacheSize ?? 100_000 });
  }

  /** Loads the world's video catalogue and replays its events for this partition's users. */
  async loadWorld(worldDir: string): Promise<{ users: number; events: number }> {
    for await (const batch of readVideoBatches(worldDir)) {
      for (const v of batch) this.#items.set(v.videoId, { category: v.category, creatorId: v.creatorId });
    }
    let events = 0;
    for await (const batch of readEventBatches(worldDir)) {
      for (const e of batch) if (this.#applyOne(e)) events++;
    }
    return { users: this.#users.size, events };
  }

  /** Registers a video's category and creator (new uploads) so later events update affinities. */
  setItemInfo(videoId: number, info: EventItemInfo): void {
    this.#items.set(videoId, info);
  }

  get appliedSeq(): number {
    return this.#appliedSeq;
  }

  /**
   * Applies stream events in order. An event with seq ≤ appliedSeq was applied before (redelivery
   * after a restart) and is skipped, so no event is applied twice; events of other partitions'
   * users are skipped too. Ack a message only after this returns.
   */
  applyEvents(events: readonly SequencedEvent[]): ApplyResult {
    let applied = 0;
    let skipped = 0;
    for (const { seq, event } of events) {
      if (seq <= this.#appliedSeq) {
        skipped++;
        continue;
      }
      this.#appliedSeq = seq;
      if (this.#applyOne(event)) applied++;
      else skipped++;
    }
    return { applied, skipped, appliedSeq: this.#appliedSeq };
  }

  /** The profile of a user of this partition, or undefined when the user has no events yet. */
  profile(userId: number): Readonly<UserProfile> | undefined {
    return this.#users.get(userId)?.profile;
  }

  /**
   * Answers a UserStateRequest. Unknown users get `known: false` and the embedding of an empty
   * history in the request's context (never an error). INVALID_ARGUMENT when the user id is not a
   * safe non-negative integer or belongs to another partition.
   */
  async get(req: UserStateRequestMsg): Promise<UserStateReplyMsg> {
    const userId = req.userId;
    if (!Number.isSafeInteger(userId) || userId < 0) throw invalidArgument('user_id', `must be a non-negative integer, got ${userId}`);
    const owner = userPartitionOf(userId, this.partitionCount);
    if (owner !== this.partition) throw invalidArgument('user_id', `user ${userId} belongs to partition ${owner}, not ${this.partition}`);
    this.#requests++;
    const ctx = contextFromMsg(req.context);
    const spec = this.#embedder.spec;
    const entry = this.#users.get(userId);
    if (entry === undefined) this.#unknown++;
    const profile = entry?.profile ?? newUserProfile(userId, spec);
    const embedding = await this.#embedding(profile, entry?.version ?? 0, ctx);
    return {
      known: entry !== undefined,
      userId,
      recentVideoIds: profile.recentVideoIds.slice(),
      recentCreatorIds: profile.recentCreatorIds.slice(),
      categoryAffinity: Array.from(profile.categoryAffinity),
      impressions: profile.impressions,
      clicks: profile.clicks,
      watches: profile.watches,
      watchSeconds: profile.watchSeconds,
      embedding: Array.from(embedding),
      completeness: userFeatureCompleteness(profile, spec),
      partition: this.partition,
      appliedSeq: this.#appliedSeq,
    };
  }

  counters(): UserPartitionCounters {
    return {
      users: this.#users.size,
      requests: this.#requests,
      unknownUsers: this.#unknown,
      cacheHits: this.#hits,
      cacheMisses: this.#misses,
      eventsApplied: this.#eventsApplied,
      appliedSeq: this.#appliedSeq,
      cachedEmbeddings: this.#cache.size,
      memoryBytes: this.memoryBytes(),
    };
  }

  /**
   * Rough bytes held: per profile ~ (recent lists 2×8 B per entry + affinity 4 B per category + ~200 B
   * of object and map overhead), per cached embedding dim×4 B + ~120 B, per catalogue entry ~90 B.
   */
  memoryBytes(): number {
    const perUser = 200 + this.#embedder.spec.numCategories * 4;
    return this.#users.size * perUser + this.#recentEntries * 16 + this.#cache.size * (this.#embedder.dim * 4 + 120) + this.#items.size * 90;
  }

  #applyOne(event: InteractionEvent): boolean {
    if (userPartitionOf(event.userId, this.partitionCount) !== this.partition) return false;
    let entry = this.#users.get(event.userId);
    if (entry === undefined) {
      entry = { profile: newUserProfile(event.userId, this.#embedder.spec), version: 0 };
      this.#users.set(event.userId, entry);
    }
    const before = entry.profile.recentVideoIds.length;
    applyEventToUser(entry.profile, event, this.#items.get(event.videoId), this.#embedder.spec);
    this.#recentEntries += entry.profile.recentVideoIds.length - before;
    entry.version++;
    this.#eventsApplied++;
    return true;
  }

  async #embedding(profile: UserProfile, version: number, ctx: RequestContext): Promise<Float32Array> {
    const spec = this.#embedder.spec;
    const key = `${profile.userId}:${version}:${deviceIndex(ctx.device)}:${hourBucket(ctx.localHour)}:${countryBucket(ctx.country, spec)}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#hits++;
      return cached;
    }
    this.#misses++;
    const vec = (await this.#embedder.embed([profile], [ctx])).slice(0, this.#embedder.dim);
    this.#cache.set(key, vec);
    return vec;
  }
}
