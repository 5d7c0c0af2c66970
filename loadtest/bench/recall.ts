/**
 * Recall@k of the sharded search against exact brute force over the same vectors, on the real
 * corpus: the world's items encoded by the model's item tower, split into S shards by
 * `itemShardOf` and indexed exactly as an item shard builds them (same items, same order, same
 * {@link ItemShardIndex.build}, the configured index options), queried with real user vectors from
 * the user tower. The union of every shard's top-k' (k' = the coordinator's perShardK), merged by
 * score, cut to k, is compared with the exact top-k over all vectors (faiss IDMap,Flat). The same
 * loop times the sharded search: faiss QPS per core at the configured search parameters.
 *
 * The serving issue's target: recall@100 ≥ 0.95 at the configured parameters.
 */
import v8 from 'node:v8';
import type { ItemFeatures } from '../../core/features/item.js';
import { loadShardItems } from '../../actors/item-shard/bootstrap.js';
import { faissFromFactory } from '../../actors/item-shard/faiss.js';
import type { IndexOptions } from '../../actors/item-shard/index-options.js';
import type { ItemTower } from '../../actors/item-shard/item-tower.js';
import { DEFAULT_PER_SHARD_K, ItemShardIndex } from '../../actors/item-shard/shard-index.js';
import type { UserStatePartition } from '../../actors/user-state/partition.js';
import { SeededRng } from '../../core/clock.js';
import { readUsers } from '../../offline/world/reader.js';
import { contextToMsg } from '../../protos/convert.js';
import { cpuSecondsSince } from './table.js';

/** The shards of a corpus built the way item shards build them, with their vectors kept for brute force. */
export interface EncodedShards {
  readonly shards: readonly ItemShardIndex[];
  /** Per shard: `items.length × dim` unit vectors, row i = items[i]. */
  readonly vectors: readonly Float32Array[];
  readonly items: readonly (readonly ItemFeatures[])[];
  readonly dim: number;
  /** The model's retrieval queries the shards calibrated nprobe on (undefined: the model has none). */
  readonly calibrationQueries: Float32Array | undefined;
  /** Wall ms: reading the world, the item tower, the index builds. */
  readonly timingsMs: { readonly readWorld: number; readonly tower: number; readonly build: number };
}

/**
 * JS heap the recall part needs for a corpus: it holds every item's features as JS objects (469 B
 * each measured on the 1M world's items, with a margin for the JSON they are parsed from) beside
 * the bench's own ~0.5 GB. The vectors and indexes live outside the JS heap.
 */
export const RECALL_HEAP_BYTES_PER_ITEM = 600;
const RECALL_HEAP_BASE_BYTES = 512 * 2 ** 20;

/**
 * Throws a clear error when `items` will not fit the heap limit (`heapLimitBytes`, default this
 * process's), naming the flag that raises it, rather than letting V8 abort minutes into the run.
 */
export function assertRecallHeap(items: number, heapLimitBytes = v8.getHeapStatistics().heap_size_limit): void {
  const need = RECALL_HEAP_BASE_BYTES + items * RECALL_HEAP_BYTES_PER_ITEM;
  if (need <= heapLimitBytes) return;
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  const mib = Math.ceil((need * 1.25) / 2 ** 20);
  throw new Error(`the recall bench holds the ${items} items as JS objects (~${gib(need)} GiB of heap), above this process's heap limit of ${gib(heapLimitBytes)} GiB: run it with a larger heap, at least NODE_OPTIONS=--max-old-space-size=${mib} (16000 ran the 10M world), and that much free memory, or leave recall out (--only without recall)`);
}

/**
 * Reads shard s's items with `loadShardItems`, encodes them with the item tower and builds the
 * shard's index with {@link ItemShardIndex.build} — openItemShard's build path without the snapshot —
 * keeping the vectors, which a built faiss index does not give back.
 */
export async function buildEncodedShards(o: {
  readonly worldDir: string;
  readonly tower: ItemTower;
  readonly shardCount: number;
  readonly index?: IndexOptions;
  /** Items per item-tower run. Default 4096. */
  readonly towerBatchRows?: number;
  /** The coordinator's perShardK: an 'auto' nprobe is calibrated for it, as a shard does. Default 200. */
  readonly perShardK?: number;
}): Promise<EncodedShards> {
  const calibration = { queries: await o.tower.retrievalQueries(), fetch: o.perShardK ?? DEFAULT_PER_SHARD_K, shardCount: o.shardCount };
  const timingsMs = { readWorld: 0, tower: 0, build: 0 };
  const shards: ItemShardIndex[] = [];
  const vectors: Float32Array[] = [];
  const items: ItemFeatures[][] = [];
  for (let s = 0; s < o.shardCount; s++) {
    let t = performance.now();
    const its = await loadShardItems(o.worldDir, s, o.shardCount);
    timingsMs.readWorld += performance.now() - t;
    t = performance.now();
    const vecs = await o.tower.encode(its, o.towerBatchRows ?? 4096);
    timingsMs.tower += performance.now() - t;
    t = performance.now();
    shards.push(ItemShardIndex.build(its, vecs, o.tower.dim, o.index ?? {}, calibration));
    timingsMs.build += performance.now() - t;
    vectors.push(vecs);
    items.push(its);
  }
  return { shards, vectors, items, dim: o.tower.dim, calibrationQueries: calibration.queries, timingsMs };
}

/**
 * Fresh user vectors (the user tower, through the partition's own `get`) for `count` users drawn
 * uniformly without replacement from the world's users.ndjson, each in its own country/device at
 * hour 20. Returns `count × dim` floats (fewer rows when the world has fewer users).
 */
export async function sampleUserVectors(partition: UserStatePartition, worldDir: string, count: number, seed = 11): Promise<Float32Array> {
  const users: Array<{ userId: number; country: string; device: string }> = [];
  for await (const u of readUsers(worldDir)) users.push({ userId: u.userId, country: u.country, device: u.device });
  const rng = new SeededRng(seed);
  for (let i = users.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [users[i], users[j]] = [users[j]!, users[i]!];
  }
  const picked = users.slice(0, Math.min(count, users.length));
  const rows: number[][] = [];
  for (const u of picked) {
    const reply = await partition.get({ userId: u.userId, context: contextToMsg({ device: u.device, country: u.country, localHour: 20 }), deadlineMs: 0 });
    rows.push(reply.embedding);
  }
  const dim = rows[0]?.length ?? 0;
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(r, i * dim));
  return out;
}

/** What {@link measureShardedRecall} found. */
export interface ShardedRecallResult {
  /** Mean over queries of |sharded top-k ∩ exact top-k| / k. */
  readonly recallAtK: number;
  readonly k: number;
  /** Candidates asked of each shard (k'). */
  readonly perShardK: number;
  readonly queries: number;
  /** Whole-corpus queries (one search in every shard) per CPU second of this thread. */
  readonly qpsPerCore: number;
  /** Single-shard searches per CPU second. */
  readonly shardSearchesPerCore: number;
  /** Wall ms of one whole-corpus query (all shards, sequentially), p50 / p99. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Exact brute force over all vectors, ms per query (batched). */
  readonly exactMsPerQuery: number;
  readonly items: number;
  readonly shards: ReadonlyArray<{
    readonly factory: string;
    readonly size: number;
    readonly nprobe: number | undefined;
    /** Where the nprobe came from: 'configured', 'calibrated' (on the model's retrieval queries) or 'rule'. */
    readonly nprobeSource: string;
    /** The shard's calibration at build: recall it measured on the model's queries, and its target. */
    readonly calibratedRecall?: number;
    readonly calibrationTarget?: number;
    /** Wall ms the calibration took at build (brute force + searches). */
    readonly calibrationMs?: number;
  }>;
}

function nprobeOf(s: ItemShardIndex, perShardK: number): { nprobe: number | undefined; nprobeSource: string; calibratedRecall?: number; calibrationTarget?: number; calibrationMs?: number } {
  const { nprobe, source } = s.searchNprobe(perShardK);
  const c = s.nprobeCalibration;
  return { nprobe, nprobeSource: source, ...(c !== null ? { calibratedRecall: c.recall, calibrationTarget: c.target, calibrationMs: c.ms } : {}) };
}

/** Exact top-k (video ids, best first) of every query over all shards' vectors (faiss IDMap,Flat, batched). */
export interface ExactTopK {
  readonly labels: BigInt64Array;
  /** k actually used: min(k, items). */
  readonly k: number;
  readonly items: number;
  readonly msPerQuery: number;
}

/** Brute force over every vector of every shard. */
export function exactTopK(enc: EncodedShards, queries: Float32Array, k: number): ExactTopK {
  const dim = enc.dim;
  const nq = Math.floor(queries.length / dim);
  const exact = faissFromFactory(dim, 'IDMap,Flat');
  let items = 0;
  enc.items.forEach((its, s) => {
    exact.addWithIds(enc.vectors[s]!, BigInt64Array.from(its, (it) => BigInt(it.videoId)));
    items += its.length;
  });
  const kk = Math.min(k, items);
  const t0 = performance.now();
  const labels = exact.searchF32(queries.subarray(0, nq * dim), kk).labels;
  return { labels, k: kk, items, msPerQuery: (performance.now() - t0) / Math.max(1, nq) };
}

/**
 * Recall@k of the union of per-shard top-`perShardK` (merged by score, cut to k) against exact
 * top-k over every shard's vectors, for each row of `queries` (`nq × dim`). Searches run one query
 * at a time on this thread, as a shard serves them. Pass `truth` to reuse one brute force across
 * several settings.
 */
export function measureShardedRecall(
  enc: EncodedShards,
  queries: Float32Array,
  o: { readonly k?: number; readonly perShardK?: number; readonly index?: IndexOptions; readonly truth?: ExactTopK } = {},
): ShardedRecallResult {
  const k = o.k ?? 100;
  const perShardK = o.perShardK ?? k;
  const dim = enc.dim;
  const nq = Math.floor(queries.length / dim);
  if (nq === 0) throw new TypeError('measureShardedRecall: no query vectors');
  const exact = o.truth ?? exactTopK(enc, queries, k);
  const truth = exact.labels;
  const kk = exact.k;
  const items = exact.items;
  const exactMsPerQuery = exact.msPerQuery;

  let hits = 0;
  const perQueryMs = new Float64Array(nq);
  const cpu0 = process.cpuUsage();
  for (let q = 0; q < nq; q++) {
    const query = queries.subarray(q * dim, (q + 1) * dim);
    const t0 = performance.now();
    const ids: number[] = [];
    const scores: number[] = [];
    for (const shard of enc.shards) {
      const b = shard.search(query, perShardK);
      for (let i = 0; i < b.videoIds.length; i++) {
        ids.push(b.videoIds[i]!);
        scores.push(b.scores[i]!);
      }
    }
    perQueryMs[q] = performance.now() - t0;
    const order = ids.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
    const want = new Set<number>();
    for (let i = 0; i < kk; i++) {
      const l = truth[q * kk + i] ?? -1n;
      if (l >= 0n) want.add(Number(l));
    }
    for (const i of order.slice(0, kk)) if (want.has(ids[i]!)) hits++;
  }
  const cpuS = Math.max(cpuSecondsSince(cpu0), 1e-9);
  perQueryMs.sort();
  const pct = (p: number) => perQueryMs[Math.min(nq - 1, Math.floor(p * nq))] ?? 0;
  return {
    recallAtK: hits / (nq * kk),
    k,
    perShardK,
    queries: nq,
    qpsPerCore: nq / cpuS,
    shardSearchesPerCore: (nq * enc.shards.length) / cpuS,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    exactMsPerQuery,
    items,
    shards: enc.shards.map((s) => ({ factory: s.factory, size: s.size, ...nprobeOf(s, perShardK) })),
  };
}

/** One setting of {@link sweepNprobe}. */
export interface NprobePoint {
  readonly nprobe: number;
  readonly recallAtK: number;
  readonly qpsPerCore: number;
  readonly p50Ms: number;
}

/**
 * Recall and speed of the same IVF shards at several fixed nprobe values (the indexes are shared,
 * only the search parameter changes), to show where the recall target is met. Empty for non-IVF
 * shards.
 */
export function sweepNprobe(
  enc: EncodedShards,
  queries: Float32Array,
  o: { readonly k?: number; readonly perShardK?: number; readonly index?: IndexOptions; readonly nprobes: readonly number[] },
): NprobePoint[] {
  if (!enc.shards.every((s) => s.factory.includes('IVF'))) return [];
  const truth = exactTopK(enc, queries, o.k ?? 100);
  const points = o.nprobes.map((nprobe) => {
    const shards = enc.shards.map((s) => ItemShardIndex.fromParts(s.faiss, s.columns, { dim: s.dim, factory: s.factory }, { ...o.index, nprobe }));
    const r = measureShardedRecall({ ...enc, shards }, queries, { ...o, truth });
    return { nprobe, recallAtK: r.recallAtK, qpsPerCore: r.qpsPerCore, p50Ms: r.p50Ms };
  });
  // The wrappers share the faiss indexes: put back the nprobe the shards' own ItemShardIndex last
  // set (it caches it and would not set it again), i.e. its own (calibrated or configured) one for a
  // perShardK search.
  for (const s of enc.shards) {
    const { nprobe } = s.searchNprobe(o.perShardK ?? o.k ?? 100);
    if (nprobe !== undefined) s.faiss.setParam('nprobe', nprobe);
  }
  return points;
}
