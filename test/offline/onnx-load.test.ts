import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { specHash } from '../../core/features/index.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { loadModelManifest, readLatestVersion } from '../../offline/onnx/load.js';
import { manifestTensors } from '../../offline/onnx/manifest.js';

function manifest(hash: string): ModelManifest {
  return {
    version: 'v-test',
    createdAt: new Date(0).toISOString(),
    featureSpec: DEFAULT_FEATURE_SPEC,
    featureSpecHash: hash,
    files: MODEL_FILES,
    tensors: manifestTensors(DEFAULT_FEATURE_SPEC),
    calibration: { click: { type: 'identity' } },
    trainingData: {},
    metrics: {},
  };
}

t.test('loadModelManifest accepts a matching hash and refuses a mismatch with FAILED_PRECONDITION', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upnext-manifest-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const running = specHash(DEFAULT_FEATURE_SPEC);
  await writeFile(join(dir, MODEL_FILES.manifest), JSON.stringify(manifest(running)));
  const ok = await loadModelManifest(dir, running);
  t.equal(ok.version, 'v-test');

  await writeFile(join(dir, MODEL_FILES.manifest), JSON.stringify(manifest('0123456789abcdef')));
  const err = await loadModelManifest(dir, running).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof UpnextError, 'throws UpnextError');
  const e = err as UpnextError;
  t.equal(e.code, StatusCode.FAILED_PRECONDITION);
  t.match(e.message, /0123456789abcdef/, 'names the model hash');
  t.match(e.message, new RegExp(running), 'names the running hash');
  t.match(e.message, /retrain/, 'says what to do');
});

t.test('a spec change (another bucket count) changes the hash, so the old model is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upnext-manifest-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, MODEL_FILES.manifest), JSON.stringify(manifest(specHash(DEFAULT_FEATURE_SPEC))));
  const other = specHash({ ...DEFAULT_FEATURE_SPEC, videoIdBuckets: 1 << 17 });
  t.not(other, specHash(DEFAULT_FEATURE_SPEC));
  await t.rejects(loadModelManifest(dir, other), { code: StatusCode.FAILED_PRECONDITION });
});

t.test('missing manifest is NOT_FOUND, garbage is FAILED_PRECONDITION, LATEST is read trimmed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upnext-manifest-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.rejects(loadModelManifest(dir, 'x'), { code: StatusCode.NOT_FOUND });
  await writeFile(join(dir, MODEL_FILES.manifest), '{not json');
  await t.rejects(loadModelManifest(dir, 'x'), { code: StatusCode.FAILED_PRECONDITION });
  await t.rejects(readLatestVersion(dir), { code: StatusCode.NOT_FOUND });
  await writeFile(join(dir, 'LATEST'), 'v42\n');
  t.equal(await readLatestVersion(dir), 'v42');
});
