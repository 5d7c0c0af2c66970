/**
 * The in-process core of an item shard: a faiss index over L2-normalised item vectors (inner
 * product = cosine) plus the items' features in columns. No I/O besides snapshots, no NATS, no
 * threads: the worker (worker.ts) wraps it, and benchmarks call it directly for the in-process
 * ceiling.
 *
 * faiss labels are column rows, not video ids: a hit maps to its features by index, and a row is
 * never reused (an upsert of a known item tombstones its row and appends a new one), so indexes that
 * cannot remove vectors (HNSW, and IVF-PQ with a refine stage) stay correct by filtering tombstoned
 * rows.
 */
import type { ItemFeatures, ItemMeta } from '../../core/features/item.js';
import { emptyItemStats } from '../../core/features/item.js';
import type { InteractionEvent } from '../../core/events.js';
import { invalidArgument } from '../../core/status.js';
import type { CandidateBatchMsg } from '../../protos/codec.js';
import { emptyCandidateBatch } from '../../protos/convert.js';
import { ItemColumns } from './columns.js';
import type { FaissBuild, FaissIndex } from './faiss.js';
import { faissBuild, faissFromFactory } from './faiss.js';
import type { CalibratedNprobe, IndexOptions, ResolvedIndexOptions } from './index-options.js';
import { bytesPerVector, factoryFor, hasRefine, nlistOf, nprobeFor, resolveIndexOptions } from './index-options.js';
import type { NprobeCalibration } from './nprobe-calibration.js';
import { MIN_CALIBRATION_QUERIES, calibrateNprobe, pickCalibratedNprobe } from './nprobe-calibration.js';

/** Results per shard search an 'auto' nprobe is calibrated for by default: the coordinator's default perShardK (a test keeps them equal). */
export const DEFAULT_PER_SHARD_K = 200;

/**
 * k of the cluster recall@k an 'auto' nprobe is calibrated for (the serving goal's recall@100); a
 * shard of S measures recall@⌈k/S⌉, its average share of the global top-k (nprobe-calibration.ts).
 */
export const CALIBRATION_K = 100;

/** What {@link ItemShardIndex.build} calibrates an 'auto' nprobe with (see nprobe-calibration.ts). */
export interface NprobeCalibrationSource {
  /** The model's retrieval queries (`nq × dim`), or undefined when it ships none (the fixed rule). */
  readonly queries: Float32Array | undefined;
  /** Results the coordinator asks of each shard (its perShardK): recall is measured in that many. */
  readonly fetch: number;
  /** Item shards S in the cluster: the shard measures recall@⌈{@link CALIBRATION_K}/S⌉. */
  readonly shardCount: number;
}

/** Largest k a shard search accepts (DESIGN §6: sizes bounded). */
export const MAX_SEARCH_K = 2000;
/** Largest exclusion list a shard search accepts. */
export const MAX_EXCLUDE_IDS = 10_000;

/** Validates a search's inputs; throws INVALID_ARGUMENT naming the wire field. */
export function validateSearch(dim: number, vectorLength: number, k: number, excludeCount: number): void {
  if (vectorLength !== dim) throw invalidArgument('user_vector', `must have ${dim} floats, got ${vectorLength}`);
  if (!Number.isInteger(k) || k < 1 || k > MAX_SEARCH_K) {
    throw invalidArgument('k', `must be in 1..${MAX_SEARCH_K}, got ${k}`);
  }
  if (excludeCount > MAX_EXCLUDE_IDS) {
    throw invalidArgument('exclude_video_ids', `at most ${MAX_EXCLUDE_IDS} ids, got ${excludeCount}`);
  }
}

/** One query of {@link ItemShardIndex.searchMany}. */
export interface ShardQuery {
  /** The user vector, `dim` floats (unit norm). */
  readonly query: Float32Array;
  /** Candidates wanted, 1..{@link MAX_SEARCH_K}. */
  readonly k: number;
  /** Video ids never returned (at most {@link MAX_EXCLUDE_IDS}). Default none. */
  readonly exclude?: readonly number[];
}

/** What an index was built from; stored in snapshots. */
export interface ItemShardIndexInfo {
  readonly dim: number;
  /** Concrete faiss factory string. */
  readonly factory: string;
}

/**
 * How an index was built, kept in its snapshot so a restore compares what was decided at build time
 * with what this process accepts, instead of re-deciding from the current item count (upserts may
 * have moved the count across `flatMaxItems` or an 'auto' nlist step since the build).
 */
export interface ItemShardBuildFacts {
  /** `index.factory` as configured at build: 'auto' or a faiss factory string. */
  readonly requestedFactory: string;
  /** `index.flatMaxItems` at build (decides 'auto''s Flat/IVF choice), items. */
  readonly flatMaxItems: number;
  /** The concrete factory string the build resolved (same as {@link ItemShardIndex.factory}). */
  readonly factory: string;
  /** IVF lists of `factory`, or null for non-IVF indexes. */
  readonly nlist: number | null;
  /** IVF training vectors per list at build. */
  readonly trainPerList: number;
  /** faiss build (faiss.ts `faissBuild()`) of the thread that built the index. */
  readonly faissBuild: FaissBuild;
  /** Live items when the index was built. */
  readonly itemsAtBuild: number;
  /** Build time, epoch ms. */
  readonly builtAtMs: number;
  /**
   * The 'auto' nprobe measured on the model's retrieval queries at build, or null when none was
   * (not IVF, a configured nprobe, calibration off, or a model without queries); absent in
   * snapshots written before calibration existed.
   */
  readonly nprobeCalibration?: NprobeCalibration | null;
}

/** What a snapshot records about how an index was built (snapshot.ts checks it on restore). */
function buildFactsOf(opts: ResolvedIndexOptions, factory: string, build: FaissBuild, itemsAtBuild: number, builtAtMs: number, nprobeCalibration: NprobeCalibration | null = null): ItemShardBuildFacts {
  return {
    nprobeCalibration,
    requestedFactory: opts.factory,
    flatMaxItems: opts.flatMaxItems,
    factory,
    nlist: nlistOf(factory) ?? null,
    trainPerList: opts.trainPerList,
    faissBuild: build,
    itemsAtBuild,
    builtAtMs,
  };
}

/** One shard's ANN index and item features (see the module comment). */
export class ItemShardIndex {
  readonly dim: number;
  readonly factory: string;
  /** How the index was built (carried through snapshots; see {@link ItemShardBuildFacts}). */
  readonly buildFacts: ItemShardBuildFacts;
  readonly #faiss: FaissIndex;
  readonly #columns: ItemColumns;
  /** Rows whose vector is still in a faiss index that cannot remove (HNSW). */
  #deadInIndex = 0;
  readonly #opts: ResolvedIndexOptions;
  /** nprobe currently set on the faiss index (IVF only). */
  #nprobe: number | undefined;
  /** The calibrated 'auto' base nprobe for the options' recall target, when there is one. */
  readonly #calibrated: CalibratedNprobe | undefined;

  private constructor(faiss: FaissIndex, columns: ItemColumns, info: ItemShardIndexInfo, opts: ResolvedIndexOptions, facts: ItemShardBuildFacts) {
    this.#faiss = faiss;
    this.buildFacts = Object.freeze({ ...facts });
    this.#columns = columns;
    this.dim = info.dim;
    this.factory = info.factory;
    this.#deadInIndex = Math.max(0, faiss.ntotal() - columns.size);
    this.#opts = opts;
    // Calibration turned off since the build: the rule, as the options say.
    const calibrated = opts.calibrationQueries === 0 ? undefined : calibratedNprobe(facts.nprobeCalibration, opts.recallTarget);
    this.#calibrated = calibrated === undefined || !facts.nprobeCalibration ? undefined : { nprobe: calibrated, fetch: facts.nprobeCalibration.fetch };
    if (info.factory.includes('HNSW')) faiss.setParam('efSearch', opts.efSearch);
    // Set on every construction, snapshots included: the options, not the file, decide the factor.
    if (hasRefine(info.factory)) faiss.setParam('k_factor_rf', opts.refineFactor);
  }

  /**
   * Builds an index over `items` whose vectors are rows of `vectors` (`items.length × dim`, unit
   * norm). IVF indexes are trained on an evenly spaced sample of `trainPerList × nlist` vectors.
   * An IVF index with nprobe 'auto' is then calibrated on `calibration.queries` when the model has
   * them (see {@link calibrationFor}); without them it keeps the fixed rule.
   */
  static build(items: readonly ItemFeatures[], vectors: Float32Array, dim: number, options: IndexOptions = {}, calibration?: NprobeCalibrationSource): ItemShardIndex {
    if (vectors.length !== items.length * dim) {
      throw new TypeError(`vectors must hold items.length × dim = ${items.length * dim} floats, got ${vectors.length}`);
    }
    const opts = resolveIndexOptions(options);
    const build = faissBuild();
    const factory = factoryFor(items.length, opts, build, dim);
    const faiss = faissFromFactory(dim, factory);
    if (factory.includes('HNSW')) faiss.setParam('efConstruction', opts.efConstruction);
    const columns = new ItemColumns(items.length);
    const keep: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (item === undefined || columns.rowOf(item.videoId) !== undefined) continue; // first wins
      columns.append(item, item);
      keep.push(i);
    }
    const vecs = keep.length === items.length ? vectors : gatherRows(vectors, keep, dim);
    if (!faiss.isTrained()) {
      const nlist = nlistOf(factory) ?? 1;
      faiss.trainF32(sampleRows(vecs, dim, Math.max(nlist, nlist * opts.trainPerList)));
    }
    if (keep.length > 0) faiss.addWithIds(vecs, rowLabels(0, keep.length));
    const calibrated = calibrationFor(faiss, factory, opts, vecs, dim, calibration);
    return new ItemShardIndex(faiss, columns, { dim, factory }, opts, buildFactsOf(opts, factory, build, keep.length, Date.now(), calibrated));
  }

  /**
   * Wraps parts read from a snapshot (snapshot.ts). `facts` are the build facts the snapshot
   * recorded; without them (a format-1 snapshot, a benchmark's own parts) they are taken from
   * `options`, this thread's faiss build and the parts themselves (items at build = live items now).
   */
  static fromParts(faiss: FaissIndex, columns: ItemColumns, info: ItemShardIndexInfo, options: IndexOptions = {}, facts?: ItemShardBuildFacts): ItemShardIndex {
    const opts = resolveIndexOptions(options);
    return new ItemShardIndex(faiss, columns, info, opts, facts ?? buildFactsOf(opts, info.factory, faissBuild(), columns.size, 0));
  }

  /** The build's nprobe calibration (see {@link ItemShardBuildFacts.nprobeCalibration}), or null. */
  get nprobeCalibration(): NprobeCalibration | null {
    return this.buildFacts.nprobeCalibration ?? null;
  }

  /**
   * The nprobe a search fetching `fetch` results runs at now (undefined for non-IVF indexes), and
   * where its base came from: 'configured' (index.nprobe), 'calibrated' (measured on the model's
   * queries), 'rule' ('auto' without a calibration) or 'none' (no lists).
   */
  searchNprobe(fetch: number): { readonly nprobe: number | undefined; readonly source: 'configured' | 'calibrated' | 'rule' | 'none' } {
    const nprobe = nprobeFor(this.factory, this.#opts, Math.min(fetch, this.#faiss.ntotal()), this.#faiss.ntotal(), this.#calibrated);
    const source = nprobe === undefined ? 'none' : this.#opts.nprobe !== 'auto' ? 'configured' : this.#calibrated !== undefined ? 'calibrated' : 'rule';
    return { nprobe, source };
  }

  /** Live items. */
  get size(): number {
    return this.#columns.size;
  }

  get columns(): ItemColumns {
    return this.#columns;
  }

  get faiss(): FaissIndex {
    return this.#faiss;
  }

  has(videoId: number): boolean {
    return this.#columns.rowOf(videoId) !== undefined;
  }

  /**
   * Top-`k` items by inner product with `query`, best first, none of `exclude`. Over-fetches by the
   * number of excluded ids (and of dead vectors left in an HNSW index) so up to k survive. The
   * one-query case of {@link searchMany}.
   */
  search(query: Float32Array, k: number, exclude: readonly number[] = []): CandidateBatchMsg {
    const [batch] = this.searchMany([{ query, k, exclude }]);
    if (batch === undefined) throw new Error('searchMany returned no batch for one query');
    return batch;
  }

  /**
   * {@link search} for several queries in ONE faiss call (`nq × dim` query matrix): faiss scans
   * the index once per call, so a batch costs less per query than one call each (IVF-PQ fast-scan,
   * one 500k shard: 0.58 ms/query alone, 0.39 ms at 16 per call). Each query keeps its own k and
   * exclusion list; the call fetches the largest over-fetch any query needs (k + its exclusions +
   * dead vectors), and an IVF index probes the lists that fetch calls for, so a small-k query
   * batched with a large-k one is answered from at least as many lists as alone (on a Flat index the
   * answers are exactly those of one search each). Returns one batch per query, in order.
   * Throws INVALID_ARGUMENT for the first bad query (nothing is searched then): callers that must
   * answer bad queries one by one check each with {@link validateSearch} first.
   */
  searchMany(queries: readonly ShardQuery[]): CandidateBatchMsg[] {
    for (const q of queries) validateSearch(this.dim, q.query.length, q.k, q.exclude?.length ?? 0);
    const ntotal = this.#faiss.ntotal();
    if (ntotal === 0 || queries.length === 0) return queries.map(() => emptyCandidateBatch());
    let fetch = 0;
    for (const q of queries) fetch = Math.max(fetch, this.#fetchFor(q, ntotal));
    const nprobe = nprobeFor(this.factory, this.#opts, fetch, ntotal, this.#calibrated);
    if (nprobe !== undefined && nprobe !== this.#nprobe) {
      this.#faiss.setParam('nprobe', nprobe);
      this.#nprobe = nprobe;
    }
    const { distances, labels } = this.#faiss.searchF32(queryMatrix(queries, this.dim), fetch);
    return queries.map((q, i) => this.#collect(q, distances.subarray(i * fetch, (i + 1) * fetch), labels.subarray(i * fetch, (i + 1) * fetch)));
  }

  /** Hits to ask faiss for so that `q.k` survive its exclusions and the tombstoned rows. */
  #fetchFor(q: ShardQuery, ntotal: number): number {
    return Math.min(ntotal, q.k + (q.exclude?.length ?? 0) + this.#deadInIndex);
  }

  /** One query's answer from its row of a faiss result: live rows, not excluded, at most k. */
  #collect(q: ShardQuery, distances: Float32Array, labels: BigInt64Array): CandidateBatchMsg {
    const batch = emptyCandidateBatch();
    const excluded = q.exclude !== undefined && q.exclude.length > 0 ? new Set(q.exclude) : undefined;
    for (let i = 0; i < labels.length && batch.videoIds.length < q.k; i++) {
      const label = labels[i] ?? -1n;
      if (label < 0n) break;
      const row = Number(label);
      const videoId = this.#columns.videoIdAt(row);
      if (videoId < 0 || excluded?.has(videoId)) continue;
      this.#columns.pushCandidate(batch, row, distances[i] ?? 0);
    }
    return batch;
  }

  /**
   * Adds or replaces items with their vectors (`items.length × dim`): recommendable at once. A
   * known item keeps its counters. Returns the number of items written.
   */
  upsert(items: readonly ItemMeta[], vectors: Float32Array): number {
    if (vectors.length !== items.length * this.dim) {
      throw new TypeError(`vectors must hold ${items.length * this.dim} floats, got ${vectors.length}`);
    }
    const first = this.#columns.rows;
    const replaced: number[] = [];
    for (const item of items) {
      const old = this.#columns.rowOf(item.videoId);
      const stats = old === undefined ? emptyItemStats() : this.#columns.statsAt(old);
      if (old !== undefined) {
        this.#columns.remove(item.videoId);
        replaced.push(old);
      }
      this.#columns.append(item, stats);
    }
    this.#dropFromIndex(replaced);
    if (items.length > 0) this.#faiss.addWithIds(vectors, rowLabels(first, items.length));
    return items.length;
  }

  /** Removes items; unknown ids are ignored. Returns how many were removed. */
  remove(videoIds: readonly number[]): number {
    const rows: number[] = [];
    for (const id of videoIds) {
      const row = this.#columns.remove(id);
      if (row !== undefined) rows.push(row);
    }
    this.#dropFromIndex(rows);
    return rows.length;
  }

  /** Moves the counters of the event's video when it lives here (stream consumer hook). */
  applyEvent(event: InteractionEvent): boolean {
    return this.#columns.applyEvent(event);
  }

  /** Estimated bytes: columns + faiss codes, vectors and ids (+ IVF centroids). */
  memoryBytes(): number {
    const n = this.#faiss.ntotal();
    const centroids = (nlistOf(this.factory) ?? 0) * this.dim * 4;
    return this.#columns.memoryBytes() + n * bytesPerVector(this.factory, this.dim) + centroids;
  }

  /** Removes the vectors of already-tombstoned rows (one faiss call: Flat removal is O(n)). */
  #dropFromIndex(rows: readonly number[]): void {
    if (rows.length === 0) return;
    try {
      const removed = this.#faiss.removeIdsI64(BigInt64Array.from(rows, (r) => BigInt(r)));
      this.#deadInIndex += rows.length - removed;
    } catch {
      // HNSW and refine indexes cannot remove: the vectors stay and searches skip tombstoned rows.
      this.#deadInIndex += rows.length;
    }
  }
}

/**
 * Calibrates an IVF index's 'auto' nprobe on the model's retrieval queries (nprobe-calibration.ts):
 * up to `calibrationQueries` of them, recall@⌈{@link CALIBRATION_K}/S⌉ in the top-`fetch`, starting
 * from the rule's value. Null (the rule stays) for non-IVF indexes, a configured nprobe,
 * calibration off, or fewer than {@link MIN_CALIBRATION_QUERIES} queries.
 */
function calibrationFor(faiss: FaissIndex, factory: string, opts: ResolvedIndexOptions, vectors: Float32Array, dim: number, source: NprobeCalibrationSource | undefined): NprobeCalibration | null {
  const nlist = nlistOf(factory);
  if (nlist === undefined || opts.nprobe !== 'auto' || opts.calibrationQueries === 0 || source?.queries === undefined) return null;
  const shipped = Math.floor(source.queries.length / dim);
  const nq = Math.min(opts.calibrationQueries, shipped);
  if (nq < MIN_CALIBRATION_QUERIES || vectors.length === 0) return null;
  return calibrateNprobe({
    faiss,
    nlist,
    start: nprobeFor(factory, opts) ?? nlist,
    vectors,
    dim,
    queries: evenlySpacedRows(source.queries, dim, shipped, nq),
    target: opts.recallTarget,
    k: Math.ceil(CALIBRATION_K / Math.max(1, source.shardCount)),
    fetch: source.fetch,
    refineFactor: hasRefine(factory) ? opts.refineFactor : null,
  });
}

/** `want` of `rows` rows spread evenly (all of them when want ≥ rows): a subset, not the first few. */
function evenlySpacedRows(vectors: Float32Array, dim: number, rows: number, want: number): Float32Array {
  if (want >= rows) return vectors.subarray(0, rows * dim);
  return gatherRows(vectors, Array.from({ length: want }, (_, i) => Math.floor((i * rows) / want)), dim);
}

/**
 * The 'auto' base nprobe a calibration gives for `target`: the smallest setting it tried that met
 * `target`; for the target it was run for but missed, its best setting; otherwise (no calibration,
 * or a higher target than anything tried met) undefined, and snapshot.ts refuses such a snapshot
 * rather than serve below the target.
 */
export function calibratedNprobe(c: NprobeCalibration | null | undefined, target: number): number | undefined {
  if (c === null || c === undefined) return undefined;
  const met = pickCalibratedNprobe(c.points, target);
  if (met !== undefined) return met.nprobe;
  return target === c.target ? c.nprobe : undefined;
}

/** The queries' vectors as one `nq × dim` matrix (the vector itself for one query: no copy). */
function queryMatrix(queries: readonly ShardQuery[], dim: number): Float32Array {
  const only = queries.length === 1 ? queries[0] : undefined;
  if (only !== undefined) return only.query;
  const out = new Float32Array(queries.length * dim);
  queries.forEach((q, i) => out.set(q.query, i * dim));
  return out;
}

function rowLabels(first: number, count: number): BigInt64Array {
  const ids = new BigInt64Array(count);
  for (let i = 0; i < count; i++) ids[i] = BigInt(first + i);
  return ids;
}

function gatherRows(vectors: Float32Array, rows: readonly number[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(vectors.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

function sampleRows(vectors: Float32Array, dim: number, want: number): Float32Array {
  const n = vectors.length / dim;
  if (n <= want) return vectors;
  const step = n / want;
  const rows = Array.from({ length: want }, (_, i) => Math.floor(i * step));
  return gatherRows(vectors, rows, dim);
}
