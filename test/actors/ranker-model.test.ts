/**
 * The ranker replica on the real trained ranker.onnx from the tiny test assets
 * (test/fixtures/assets.ts ensureTinyAssets). Skipped, saying why, until that fixture exists.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Deadline } from '../../core/deadline.js';
import { RankerClient } from '../../actors/ranker/client.js';
import { startRanker } from '../../actors/ranker/replica.js';
import { openRankerScorer } from '../../actors/ranker/scorer.js';
import { randomRows } from './ranker-fixture.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const assetsModule = path.join(here, '..', 'fixtures', 'assets.js');
const quiet = { log: () => undefined };

interface Assets {
  ensureTinyAssets(): Promise<{ worldDir: string; modelDir: string }>;
}

// A computed specifier: the fixture lands later (the lead's), and this file must compile without it.
const assets = existsSync(assetsModule) ? ((await import(assetsModule)) as Assets) : undefined;

t.test('real ranker.onnx: pool equals a direct ONNX Runtime session, batching changes nothing, KServe round trip', { skip: assets ? false : 'test/fixtures/assets.ts not present yet' }, async (t) => {
  const { modelDir } = await assets!.ensureTinyAssets();
  const scorer = await openRankerScorer({ modelDir, workers: 2, batching: { maxDelayMs: 1 } }, quiet);
  t.teardown(() => scorer.close());
  const n = 200;
  const rows = randomRows(n, scorer.width, 42);

  const session = await ort.InferenceSession.create(path.join(modelDir, 'ranker.onnx'), { intraOpNumThreads: 1 });
  const direct = await session.run({ features: new ort.Tensor('float32', rows.slice(), [n, scorer.width]) });
  await session.release();
  const pool = await scorer.score(rows, n);
  t.same(Array.from(pool.pClick), Array.from(direct['p_click']!.data as Float32Array), 'p_click identical to a direct session');
  t.same(Array.from(pool.watchLog1p), Array.from(direct['watch_log1p_s']!.data as Float32Array), 'watch identical to a direct session');
  t.ok(pool.pClick.every((p) => p > 0 && p < 1), 'p_click is a probability');
  t.ok(pool.watchLog1p.every((w) => Number.isFinite(w)), 'watch is finite');

  const parts = Array.from({ length: 10 }, (_, i) => rows.subarray(i * 20 * scorer.width, (i + 1) * 20 * scorer.width));
  const runsBefore = scorer.stats().pool.runs;
  const together = await Promise.all(parts.map((p) => scorer.score(p, 20)));
  t.ok(scorer.stats().pool.runs - runsBefore < 10, 'concurrent requests merged');
  t.same(
    together.flatMap((r) => Array.from(r.pClick)),
    Array.from(pool.pClick),
    'split-and-merged scores identical to one batch',
  );

  const replica = await startRanker({ modelDir, port: 0 }, quiet);
  const client = new RankerClient({ addresses: () => [replica.address] });
  t.teardown(async () => {
    client.close();
    await replica.stop();
  });
  const remote = await client.score(rows, n, Deadline.after(10_000));
  t.same(Array.from(remote.pClick), Array.from(pool.pClick), 'KServe answer identical to in-process');
  t.same(Array.from(remote.watchLog1p), Array.from(pool.watchLog1p));
});
