/**
 * The in-process core of a user-state partition: the profiles (in columns, profile-store.ts) of the users with
 * `userPartitionOf(userId, P) === p`, updated by `applyEventToUser` (the one feature definition),
 * and the request handler that turns a profile plus a context into a UserStateReply with a fresh
 * user embedding. No NATS, no threads: user-state.ts hosts it (in a worker or inline) and the bench
 * calls it directly.
 *
 * Catalogue: events name videos of every shard, so a partition needs every video's category and
 * creator. It reads them from a compact {@link ItemCatalogue} (shared by all partitions of a node,
 * catalogue-cache.ts); videos registered later through setItemInfo live in a small Map beside it.
 *
 * Snapshots: {@link UserStatePartition.exportProfiles} / {@link UserStatePartition.restoreProfiles}
 * turn the profiles and appliedSeq into columns and back (snapshot.ts writes them).
 *
 * Embedding cache: an LRU keyed by (user, profile version, device, hour bucket, country bucket).
 * Applying an event bumps the user's version, so the next request misses and recomputes: entries of
 * older versions are never read again and age out.
 */
import { LRUCache } from 'lru-cache';
import type { InteractionEvent, RequestContext } from '../../core/events.js';
import type { EventItemInfo, UserProfile } from '../../core/features/user.js';
import { applyEventToUser, isEngagement, newUserProfile, userFeatureCompleteness } from '../../core/features/user.js';
import { countryBucket, deviceIndex, hourBucket } from '../../core/features/context.js';
import { userPartitionOf } from '../../core/hash.js';
import { invalidArgument } from '../../core/status.js';
import type { UserStateReplyMsg, UserStateRequestMsg } from '../../protos/codec.js';
import { contextFromMsg } from '../../protos/convert.js';
import { readEventBatches } from '../../offline/world/reader.js';
import { ItemCatalogue, buildCatalogueColumns } from './catalogue.js';
import type { UserProfileColumns } from './snapshot.js';
import { ProfileStore } from './profile-store.js';
import type { UserEmbedder } from './user-tower.js';
import { spacesAgree } from '../model/embedding-space.js';

/** The embedding of a reply to a request in another embedding space: none. */
const NO_EMBEDDING = new Float32Array(0);

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
  /**
   * Embedding space of the embedder's towers (actors/model/embedding-space.ts). A request naming
   * another space is embedded with that space's tower ({@link foreignEmbedder}) or, without one, gets
   * the profile without an embedding (`space` '' in the reply): a vector of this tower would be
   * searched against another tower's index. Default '' (no check).
   */
  readonly space?: string;
  /**
   * The user tower of another space when it is loaded, for a request that names it
   * (actors/user-state/foreign-towers.ts, which loads it in the background on a miss): the profile is
   * embedded in the requester's space. Undefined (the default), or returning undefined: such a
   * request is answered without an embedding.
   */
  readonly foreignEmbedder?: (space: string, modelVersion: string) => UserEmbedder | undefined;
  /** Cached embeddings (one per user × context bucket × version). Default 100000. */
  readonly embeddingCacheSize?: number;
  /** Category and creator of the catalogue's videos (shared, read-only). Default: none until loadWorld. */
  readonly catalogue?: ItemCatalogue;
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
  /** Requests that named another embedding space and were answered without an embedding. */
  readonly spaceMismatches: number;
  /** Requests that named another embedding space and were embedded with that space's user tower. */
  readonly spaceBridged: number;
  readonly memoryBytes: number;
  /** Bytes of the catalogue this partition reads (shared by every partition of the node). */
  readonly catalogueBytes: number;
}

/** Profiles and embedding cache of one partition (see the module comment). */
export class UserStatePartition {
  readonly partition: number;
  readonly partitionCount: number;
  readonly #embedder: UserEmbedder;
  readonly #space: string;
  readonly #foreign: UserStatePartitionOptions['foreignEmbedder'];
  #spaceMismatches = 0;
  #spaceBridged = 0;
  /** Profiles in columns (profile-store.ts): no JS object per user for the GC to walk. */
  #users: ProfileStore;
  /** Category and creator of every catalogue video (events name videos of every shard). */
  #catalogue: ItemCatalogue | undefined;
  /** Videos registered after the catalogue was built (new uploads); checked first. */
  readonly #uploads = new Map<number, EventItemInfo>();
  readonly #cache: LRUCache<string, Float32Array>;
  #appliedSeq = 0;
  #requests = 0;
  #unknown = 0;
  #hits = 0;
  #misses = 0;
  #eventsApplied = 0;

  constructor(opts: UserStatePartitionOptions) {
    this.partition = opts.partition;
    this.partitionCount = opts.partitionCount;
    this.#embedder = opts.embedder;
    this.#users = new ProfileStore(opts.embedder.spec);
    this.#space = opts.space ?? '';
    this.#foreign = opts.foreignEmbedder;
    this.#cache = new LRUCache({ max: opts.embeddingCacheSize ?? 100_000 });
    this.#catalogue = opts.catalogue;
  }

  /**
   * Replays the world's events for this partition's users, after reading its video catalogue when
   * the partition was given none.
   */
  async loadWorld(worldDir: string): Promise<{ users: number; events: number }> {
    this.#catalogue ??= new ItemCatalogue(await buildCatalogueColumns(worldDir, false));
    let events = 0;
    for await (const batch of readEventBatches(worldDir)) {
      for (const e of batch) if (this.#applyOne(e)) events++;
    }
    // The replay grew every recent list through the size classes: drop the slots it left behind.
    this.#users.compact();
    return { users: this.#users.size, events };
  }

  /** Registers a video's category and creator (new uploads) so later events update affinities. */
  setItemInfo(videoId: number, info: EventItemInfo): void {
    this.#uploads.set(videoId, info);
  }

  /** Bytes of the (shared) catalogue this partition reads; 0 when it has none. */
  get catalogueBytes(): number {
    return this.#catalogue?.bytes ?? 0;
  }

  /** The profiles and appliedSeq as columns (for a snapshot); rows in ascending user id. */
  exportProfiles(): UserProfileColumns {
    return this.#users.exportColumns(this.#appliedSeq);
  }

  /**
   * Replaces every profile and appliedSeq with a snapshot's (see exportProfiles). Throws a TypeError
   * when its category count differs from the spec's or a user belongs to another partition.
   */
  restoreProfiles(cols: UserProfileColumns): void {
    const spec = this.#embedder.spec;
    if (cols.numCategories !== spec.numCategories) throw new TypeError(`snapshot has ${cols.numCategories} categories, the spec ${spec.numCategories}`);
    for (const userId of cols.userIds) {
      if (userPartitionOf(userId, this.partitionCount) !== this.partition) throw new TypeError(`snapshot user ${userId} belongs to another partition`);
    }
    // Into a new store, swapped in only once complete: a refused snapshot leaves the profiles as they were.
    const restored = new ProfileStore(spec);
    restored.restoreColumns(cols);
    this.#users = restored;
    this.#cache.clear();
    this.#appliedSeq = cols.appliedSeq;
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
    // Lists that grew into larger size classes left slots behind; reclaim them when they pile up.
    if (applied > 0) this.#users.compactIfWasteful();
    return { applied, skipped, appliedSeq: this.#appliedSeq };
  }

  /** The profile of a user of this partition, or undefined when the user has no events yet. */
  profile(userId: number): Readonly<UserProfile> | undefined {
    return this.#users.get(userId);
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
    const known = this.#users.get(userId);
    if (known === undefined) this.#unknown++;
    const profile = known ?? newUserProfile(userId, spec);
    // The embedding is in the requester's space: ours, or another one's through its user tower.
    let embedder: UserEmbedder | undefined = this.#embedder;
    let space = this.#space;
    if (!spacesAgree(this.#space, req.space)) {
      space = req.space ?? '';
      embedder = this.#foreign?.(space, req.modelVersion ?? '');
      if (embedder === undefined) {
        this.#spaceMismatches++;
        space = '';
      } else this.#spaceBridged++;
    }
    const embedding = embedder === undefined ? NO_EMBEDDING : await this.#embedding(embedder, space, profile, this.#users.version(userId), ctx);
    return {
      known: known !== undefined,
      userId,
      // `profile` is this call's own copy (ProfileStore.get).
      recentVideoIds: profile.recentVideoIds,
      recentCreatorIds: profile.recentCreatorIds,
      categoryAffinity: Array.from(profile.categoryAffinity),
      impressions: profile.impressions,
      clicks: profile.clicks,
      watches: profile.watches,
      watchSeconds: profile.watchSeconds,
      embedding: Array.from(embedding),
      completeness: userFeatureCompleteness(profile, spec),
      partition: this.partition,
      appliedSeq: this.#appliedSeq,
      space,
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
      spaceMismatches: this.#spaceMismatches,
      spaceBridged: this.#spaceBridged,
      memoryBytes: this.memoryBytes(),
      catalogueBytes: this.catalogueBytes,
    };
  }

  /**
   * Bytes this partition holds on its own: the profile columns (exact), per cached embedding dim×4 B
   * + ~120 B, per registered upload ~90 B. The shared catalogue is not counted (catalogueBytes).
   */
  memoryBytes(): number {
    return this.#users.bytes + this.#cache.size * (this.#embedder.dim * 4 + 120) + this.#uploads.size * 90;
  }

  #itemInfo(videoId: number): EventItemInfo | undefined {
    return this.#uploads.get(videoId) ?? this.#catalogue?.eventInfo(videoId);
  }

  #applyOne(event: InteractionEvent): boolean {
    if (userPartitionOf(event.userId, this.partitionCount) !== this.partition) return false;
    const info = this.#itemInfo(event.videoId);
    const spec = this.#embedder.spec;
    this.#users.update(event.userId, (profile) => applyEventToUser(profile, event, info, spec), isEngagement(event));
    this.#eventsApplied++;
    return true;
  }

  async #embedding(embedder: UserEmbedder, space: string, profile: UserProfile, version: number, ctx: RequestContext): Promise<Float32Array> {
    const spec = embedder.spec;
    const key = `${space}:${profile.userId}:${version}:${deviceIndex(ctx.device)}:${hourBucket(ctx.localHour)}:${countryBucket(ctx.country, spec)}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#hits++;
      return cached;
    }
    this.#misses++;
    const vec = (await embedder.embed([profile], [ctx])).slice(0, embedder.dim);
    this.#cache.set(key, vec);
    return vec;
  }
}
