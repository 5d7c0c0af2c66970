/**
 * The coordinator's collaborators as small interfaces: the pipeline depends only on these, so unit
 * tests plug in fakes and production plugs in the NATS adapters (nats-ports.ts), the ranker's
 * KServe client (actors/ranker/client.ts) and the popular cache (actors/popular/).
 *
 * Contract for every port: resolve with the answer, or reject with an {@link UpnextError} (or any
 * error, treated as INTERNAL); never hang past `deadline` by much — but the pipeline does not rely on
 * it: it owns one timer per stage and stops waiting at the stage deadline regardless.
 */
import type { Deadline } from '../../core/deadline.js';
import type { RequestContext } from '../../core/events.js';
import type { Calibration } from '../../core/model/contract.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { CandidateBatchMsg, ShardSearchReplyMsg, ShardSearchRequestMsg, UserStateReplyMsg } from '../../protos/codec.js';

/**
 * The embedding space a user-state read asks for (actors/model/embedding-space.ts): the caller's
 * space, and its model version, under which a partition of other towers finds the caller's user tower.
 */
export interface WantedSpace {
  readonly space: string;
  readonly modelVersion: string;
}

/** The user's partition: recent watches, counters and the fresh user embedding. */
export interface UserStateSource {
  /**
   * Rejects on failure; `known: false` is a normal answer for a new user. `want`: the space the
   * embedding must be in; absent = unstated (the partition's own).
   */
  get(userId: number, context: RequestContext, deadline: Deadline, want?: WantedSpace): Promise<UserStateReplyMsg>;
}

/** One item shard's ANN search (one NATS subject per virtual shard; replicas in a queue group). */
export interface ShardSearcher {
  /** Rejects when the shard fails or answers with a non-OK status. */
  search(shard: number, request: ShardSearchRequestMsg, deadline: Deadline): Promise<ShardSearchReplyMsg>;
}

/** Ranker scores for `nRows` rows, index-aligned with the rows. */
export interface RankerScores {
  /** Uncalibrated P(click), length ≥ nRows. */
  readonly pClick: Float32Array;
  /** Predicted log1p(watch seconds), length ≥ nRows. */
  readonly watchLog1p: Float32Array;
  /** Which replica answered (for logs), when known. */
  readonly replica?: string;
}

/**
 * A ranker replica set (actors/ranker/client.ts RankerClient satisfies this; with a ranker in the
 * same process, actors/ranker/local-first.ts LocalFirstRankerScorer).
 */
export interface RankerScorer {
  /**
   * `rows` holds `nRows` × rankerRowWidth(spec) floats written by writeRankerRow. The scorer may
   * take `rows` over (the local path transfers its buffer to a worker thread, detaching it): do not
   * read them after the call.
   */
  score(rows: Float32Array, nRows: number, deadline: Deadline): Promise<RankerScores>;
}

/** Popular / trending lists (actors/popular PopularCache satisfies this). */
export interface PopularSource {
  /** Up to `n` candidates with item features, best first; `trending` selects the trending list. */
  get(country: string, device: string, n: number, trending: boolean): Promise<CandidateBatchMsg>;
}

/** Everything the pipeline needs from outside. */
export interface PipelinePorts {
  readonly userState: UserStateSource;
  readonly shards: ShardSearcher;
  readonly ranker: RankerScorer;
  readonly popular: PopularSource;
}

/** What the coordinator needs of the current model: its version, feature spec and calibration. */
export interface ServingModel {
  readonly version: string;
  readonly spec: FeatureSpec;
  /** specHash(spec), checked against the manifest when the model was loaded. */
  readonly specHash: string;
  /** Calibration of the ranker's P(click). */
  readonly calibration: Calibration;
  /**
   * Embedding space of the towers the cluster serves this model with (actors/model/embedding-space.ts):
   * named in every user-state read and shard search; a user vector of another space is never
   * searched. '' or absent = unstated (nothing is checked).
   */
  readonly space?: string;
}
