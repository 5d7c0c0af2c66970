/**
 * Snapshot-write benchmark: how long writing an item shard's snapshot holds the shard's worker
 * (the synchronous capture: faiss write + column copy, during which searches wait) and how long the
 * whole write takes (capture to atomic rename; searches run after the capture), plus the restore.
 * Synthetic clustered unit vectors, 'auto' index options, this thread's faiss build.
 * Run: `OMP_NUM_THREADS=1 node dist/actors/item-shard/bench-snapshot.js [n] [dir]`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ItemFeatures } from '../../core/features/item.js';
import { emptyItemStats } from '../../core/features/item.js';
import { faissBuild } from './faiss.js';
import { ItemShardIndex } from './shard-index.js';
import { captureItemSnapshot, restoreItemSnapshot } from './snapshot.js';
import { clusteredUnitVectors } from './synthetic.js';

const n = Number(process.argv[2] ?? 500_000);
const dim = 64;
const dir = process.argv[3] ?? (await mkdtemp(path.join(tmpdir(), 'upnext-bench-snap-')));
const items: ItemFeatures[] = Array.from({ length: n }, (_, i) => ({
  videoId: i + 1, creatorId: 1000 + (i % 997), category: i % 32, durationS: 60, uploadTsMs: 1_700_000_000_000, ...emptyItemStats(),
}));
let t = performance.now();
const index = ItemShardIndex.build(items, clusteredUnitVectors({ n, dim, seed: 7 }), dim);
console.log(`n=${n} ${index.factory} faiss=${faissBuild()} build ${(performance.now() - t).toFixed(0)} ms, ~${(index.memoryBytes() / 2 ** 20).toFixed(0)} MiB`);
const key = { shard: 0, shardCount: 1, modelVersion: 'bench', featureSpecHash: 'bench', source: 'bench@0' };
for (let run = 1; run <= 3; run++) {
  t = performance.now();
  const c = captureItemSnapshot(dir, key, index);
  await c.finish();
  console.log(`write ${run}: capture (worker held) ${c.captureMs.toFixed(1)} ms, total ${(performance.now() - t).toFixed(1)} ms`);
}
t = performance.now();
const r = await restoreItemSnapshot(dir, key, {});
console.log(`restore: ${r.kind} ${(performance.now() - t).toFixed(0)} ms`);
if (process.argv[3] === undefined) await rm(dir, { recursive: true, force: true });
