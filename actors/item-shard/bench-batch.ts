/**
 * Batched-search benchmark (single thread): CPU per query of {@link ItemShardIndex.search} one
 * request at a time vs {@link ItemShardIndex.searchMany} at 2..16 requests per faiss call, on a
 * real shard snapshot, with the worker's filtering and feature gathering included. Also checks that
 * the batched answers equal the one-at-a-time ones (same k and exclusion count, so same fetch).
 * Queries: a file of float32 rows (`nq × dim`), else synthetic clustered unit vectors.
 * Run: `OMP_NUM_THREADS=1 node dist/actors/item-shard/bench-batch.js <shard snapshot folder> [queries.bin] [k] [excluded]`
 * (the folder is e.g. run/local/snapshots/item-shard-0-of-2-<model version>).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { faissBuild } from './faiss.js';
import type { ShardQuery } from './shard-index.js';
import { restoreItemSnapshot } from './snapshot.js';
import type { ItemShardSnapshotMeta } from './snapshot.js';
import { clusteredUnitVectors } from './synthetic.js';

const folder = process.argv[2];
if (folder === undefined) throw new Error('usage: bench-batch.js <shard snapshot folder> [queries.bin] [k] [excluded]');
// The snapshot's own key (its meta.json holds every SnapshotKey field).
const meta = JSON.parse(readFileSync(path.join(folder, 'meta.json'), 'utf8')) as ItemShardSnapshotMeta;
const k = Number(process.argv[4] ?? 200);
const excludedCount = Number(process.argv[5] ?? 0);
let t0 = performance.now();
const restored = await restoreItemSnapshot(path.dirname(folder), meta);
if (restored.kind !== 'restored') throw new Error(`snapshot ${folder} was not restored: ${restored.kind === 'refused' ? restored.reason : 'absent'}`);
const index = restored.index;
const dim = index.dim;
console.log(`${index.factory} ${index.size} items, faiss=${faissBuild()}, restore ${(performance.now() - t0).toFixed(0)} ms, OMP_NUM_THREADS=${process.env.OMP_NUM_THREADS ?? '(unset)'}`);

const qfile = process.argv[3];
const matrix = qfile !== undefined && qfile !== '-' ? new Float32Array(readFileSync(qfile).buffer.slice(0)) : clusteredUnitVectors({ n: 256, dim, seed: 5 });
const nq = Math.floor(matrix.length / dim);
// Exclusions as the coordinator sends them: ids that would otherwise rank (here, each query's own hits 1, 3, 5, ...).
const queries: ShardQuery[] = Array.from({ length: nq }, (_, i) => {
  const query = matrix.subarray(i * dim, (i + 1) * dim);
  const exclude = excludedCount > 0 ? index.search(query, 2 * excludedCount).videoIds.filter((_, j) => j % 2 === 1) : [];
  return { query, k, exclude };
});
console.log(`${nq} queries${qfile !== undefined && qfile !== '-' ? ` from ${qfile}` : ' (synthetic)'}, k ${k}, ${excludedCount} excluded each`);

const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
const reference = queries.map((q) => index.search(q.query, q.k, q.exclude));
const reps = 3;
let baseline = 0;
for (const batch of [1, 2, 4, 8, 16]) {
  let mismatches = 0;
  t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < nq; i += batch) {
      const slice = queries.slice(i, i + batch);
      const got = batch === 1 ? [index.search(slice[0]!.query, k, slice[0]!.exclude)] : index.searchMany(slice);
      if (r === 0) got.forEach((g, j) => (mismatches += JSON.stringify(g) === JSON.stringify(reference[i + j]) ? 0 : 1));
    }
  }
  const perQuery = cpuMs(process.cpuUsage(c0)) / (reps * nq);
  if (batch === 1) baseline = perQuery;
  console.log(
    `${batch === 1 ? 'search, 1 per call    ' : `searchMany, ${String(batch).padStart(2)} per call`}: ${perQuery.toFixed(3)} ms CPU/query (wall ${((performance.now() - t0) / (reps * nq)).toFixed(3)}), ` +
      `${(baseline / perQuery).toFixed(2)}× the one-at-a-time rate, ${mismatches} answers differ`,
  );
}
