/**
 * Warm start (offline/logged/warm-start.ts): an MMoE read back from its exported ranker.onnx
 * predicts exactly what the original does, with the architecture taken from the file; a ranker.onnx
 * that is not such an MMoE gives a reason instead of a model.
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRng } from '../../core/clock.js';
import { MmoeModel } from '../../offline/models/mmoe.js';
import { SingleTaskModel } from '../../offline/models/single-task.js';
import { exportMmoeRanker, exportSingleTaskRanker } from '../../offline/onnx/export.js';
import { warmStartMmoe } from '../../offline/logged/warm-start.js';

const F = 24;

t.test('an exported MMoE comes back with its weights and shape', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upnext-warm-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const original = new MmoeModel(F, { seed: 3, sharedDim: 16, experts: 3, expertDim: 8, towerDim: 4 });
  const rng = new SeededRng(9);
  const x = Float32Array.from({ length: 50 * F }, () => rng.next());
  // A few steps so the weights are not just the seed's initialisation.
  for (let i = 0; i < 5; i++) original.trainStep(x, Float32Array.from({ length: 50 }, (_, k) => k % 2), new Float32Array(50).fill(1), 50);
  await writeFile(join(dir, 'ranker.onnx'), exportMmoeRanker(original));
  const ws = await warmStartMmoe(join(dir, 'ranker.onnx'), F, { seed: 77, lr: 1e-4 });
  if (ws.model === undefined) throw new Error(ws.reason);
  t.same({ s: ws.options.sharedDim, e: ws.options.experts, d: ws.options.expertDim, w: ws.options.towerDim }, { s: 16, e: 3, d: 8, w: 4 });
  const a = original.predict(x, 50);
  const b = ws.model.predict(x, 50);
  t.same([...b.pClick], [...a.pClick], 'same P(click)');
  t.same([...b.watchLog1p], [...a.watchLog1p], 'same watch');
  const fresh = new MmoeModel(F, { seed: 77, sharedDim: 16, experts: 3, expertDim: 8, towerDim: 4 });
  t.not(fresh.predict(x, 50).pClick[0], a.pClick[0], 'a model of the same seed but its own init differs (the weights were read)');

  const narrow = await warmStartMmoe(join(dir, 'ranker.onnx'), F + 1);
  t.equal(narrow.model, undefined);
  t.match(narrow.model === undefined ? narrow.reason : '', /takes 24 features per row, the spec's rows have 25/);

  await writeFile(join(dir, 'single.onnx'), exportSingleTaskRanker(new SingleTaskModel('click', F), new SingleTaskModel('watch', F), F));
  const single = await warmStartMmoe(join(dir, 'single.onnx'), F);
  t.match(single.model === undefined ? single.reason : '', /not an MMoE ranker/);
  const missing = await warmStartMmoe(join(dir, 'nope.onnx'), F);
  t.match(missing.model === undefined ? missing.reason : '', /cannot read/);
});
