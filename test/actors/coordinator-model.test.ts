import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { StatusCode } from '../../core/status.js';
import { loadServingModel, servingModelFromManifest } from '../../actors/coordinator/model.js';
import { bareManifest } from './fixtures.js';

const spec = { ...DEFAULT_FEATURE_SPEC, numCategories: 16 };
const manifest: ModelManifest = bareManifest('m-1', { type: 'isotonic', x: [0, 1], y: [0.1, 0.9] }, spec);

t.test('a model directory loads with its spec and calibration; a mismatch is refused', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-coord-model-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, MODEL_FILES.manifest), JSON.stringify(manifest));
  const m = await loadServingModel(dir);
  t.equal(m.version, 'm-1');
  t.equal(m.spec.numCategories, 16, "the manifest's own spec drives the ranker rows");
  t.same(m.calibration, manifest.calibration.click);
  await writeFile(path.join(dir, MODEL_FILES.manifest), JSON.stringify({ ...manifest, featureSpecHash: '0000' }));
  await t.rejects(loadServingModel(dir), { code: StatusCode.FAILED_PRECONDITION });
  await t.rejects(loadServingModel(path.join(dir, 'missing')), { code: StatusCode.NOT_FOUND });
  t.throws(() => servingModelFromManifest({ ...manifest, featureSpec: { ...spec, numCategories: 0 } }), { code: StatusCode.FAILED_PRECONDITION });
});
