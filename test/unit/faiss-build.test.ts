/**
 * Run-time choice between the Debian and the AVX2 faiss-node builds (actors/item-shard/faiss.ts):
 * the pure rule, the UPNEXT_FAISS override inside worker threads (each worker loads its own addon),
 * and, where scripts/build-faiss-avx2.sh has run on an AVX2 CPU, that both builds return the same
 * exact top-k. CI never builds the AVX2 addon: those assertions are skipped there, with the reason.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import {
  avx2AddonPath,
  chooseFaissBuild,
  cpuHasAvx2Fma,
  cpuinfoHasAvx2Fma,
  faissBuild,
  parseFaissBuildPreference,
  pinFaissToOneThread,
} from '../../actors/item-shard/faiss.js';
import type { FaissBuild, FaissBuildPreference } from '../../actors/item-shard/faiss.js';
import { clusteredUnitVectors } from '../../actors/item-shard/synthetic.js';

// As item-shard.ts does before starting workers: libgomp reads OMP_NUM_THREADS once per process.
pinFaissToOneThread();

const faissModule = new URL('../../actors/item-shard/faiss.js', import.meta.url).href;
const avx2Usable = existsSync(avx2AddonPath()) && cpuHasAvx2Fma();
const avx2Skip = avx2Usable
  ? false
  : `AVX2 faiss-node addon not usable here (${existsSync(avx2AddonPath()) ? 'CPU lacks avx2/fma' : 'not built: scripts/build-faiss-avx2.sh'})`;

interface WorkerReply {
  readonly build?: FaissBuild;
  readonly labels?: string[];
  readonly distances?: number[];
  readonly error?: string;
}

/**
 * Loads faiss.ts in a fresh worker thread with `UPNEXT_FAISS=preference` (undefined: unset), and
 * runs an exact Flat search there.
 */
function searchInWorker(preference: string | undefined, data: Float32Array, queries: Float32Array, dim: number, k: number): Promise<WorkerReply> {
  const code = `
    const { parentPort, workerData: w } = require('node:worker_threads');
    import(w.faissModule).then((m) => {
      try {
        const build = m.faissBuild();
        const index = m.faissFromFactory(w.dim, 'IDMap,Flat');
        const n = w.data.length / w.dim;
        index.addWithIds(w.data, BigInt64Array.from({ length: n }, (_, i) => BigInt(i)));
        const r = index.searchF32(w.queries, w.k);
        parentPort.postMessage({ build, labels: Array.from(r.labels, String), distances: Array.from(r.distances) });
      } catch (e) {
        parentPort.postMessage({ error: String(e && e.message) });
      }
    });
  `;
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (preference === undefined) delete env.UPNEXT_FAISS;
  else env.UPNEXT_FAISS = preference;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, env, workerData: { faissModule, data, queries, dim, k } });
    w.once('message', (m: WorkerReply) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

t.test('UPNEXT_FAISS parsing', async (t) => {
  t.equal(parseFaissBuildPreference(undefined), 'auto', 'unset means auto');
  t.equal(parseFaissBuildPreference(''), 'auto');
  for (const v of ['auto', 'debian', 'avx2'] as const) t.equal(parseFaissBuildPreference(v), v);
  t.throws(() => parseFaissBuildPreference('AVX2'), { name: 'TypeError', message: /UPNEXT_FAISS/ });
  t.throws(() => parseFaissBuildPreference('sse'), { name: 'TypeError' });
});

t.test('cpuinfo flags: avx2 and fma both required', async (t) => {
  const line = (flags: string): string => `processor\t: 0\nmodel name\t: x\nflags\t\t: ${flags}\nbugs\t\t: avx2 fma\n`;
  t.ok(cpuinfoHasAvx2Fma(line('fpu sse2 avx fma avx2 bmi2')));
  t.notOk(cpuinfoHasAvx2Fma(line('fpu sse2 avx avx2')), 'no fma');
  t.notOk(cpuinfoHasAvx2Fma(line('fpu sse2 avx fma')), 'no avx2');
  t.notOk(cpuinfoHasAvx2Fma(line('fpu avx512f fma4')), 'whole words only');
  t.notOk(cpuinfoHasAvx2Fma(''), 'no /proc/cpuinfo');
});

t.test('choice rule: auto falls back to debian; explicit avx2 never falls back silently', async (t) => {
  const choose = (preference: FaissBuildPreference, avx2AddonBuilt: boolean, cpu: boolean): FaissBuild =>
    chooseFaissBuild({ preference, avx2AddonBuilt, cpuHasAvx2Fma: cpu });
  t.equal(choose('auto', true, true), 'avx2', 'auto: built and runnable');
  t.equal(choose('auto', false, true), 'debian', 'auto: addon absent (CI) → debian');
  t.equal(choose('auto', true, false), 'debian', 'auto: CPU without avx2/fma → debian');
  t.equal(choose('debian', true, true), 'debian', 'debian is always honoured');
  t.equal(choose('avx2', true, true), 'avx2');
  t.throws(() => choose('avx2', false, true), /build-faiss-avx2\.sh/, 'avx2 asked, addon absent: error naming the script');
  t.throws(() => choose('avx2', true, false), /avx2\/fma/, 'avx2 asked, CPU cannot run it');
});

t.test('worker threads honour the override and report their build', async (t) => {
  const dim = 16;
  const data = clusteredUnitVectors({ n: 200, dim, seed: 4 });
  const q = data.subarray(0, dim);
  const debian = await searchInWorker('debian', data, q, dim, 3);
  t.equal(debian.build, 'debian', 'UPNEXT_FAISS=debian loads the Debian addon');
  t.equal(debian.labels?.[0], '0', 'and it searches');
  const auto = await searchInWorker(undefined, data, q, dim, 3);
  t.equal(auto.build, avx2Usable ? 'avx2' : 'debian', 'unset = auto: avx2 exactly when built and runnable');
  const bad = await searchInWorker('sse', data, q, dim, 3);
  t.match(bad.error, /UPNEXT_FAISS must be/, 'an invalid value fails loudly');
  if (!avx2Usable) {
    const forced = await searchInWorker('avx2', data, q, dim, 3);
    t.match(forced.error, /UPNEXT_FAISS=avx2/, 'asking for a missing AVX2 build is an error, not a fallback');
  }
  t.ok(['debian', 'avx2'].includes(faissBuild()), 'the main thread reports its own build');
});

t.test('both builds return the same exact top-k (Flat)', { skip: avx2Skip }, async (t) => {
  const dim = 64;
  const k = 50;
  const data = clusteredUnitVectors({ n: 3000, dim, seed: 8 });
  const queries = clusteredUnitVectors({ n: 20, dim, seed: 9 });
  const [debian, avx2] = await Promise.all([
    searchInWorker('debian', data, queries, dim, k),
    searchInWorker('avx2', data, queries, dim, k),
  ]);
  t.equal(debian.build, 'debian');
  t.equal(avx2.build, 'avx2', 'UPNEXT_FAISS=avx2 loads the AVX2 addon in a worker');
  t.same(avx2.labels, debian.labels, 'identical ids in identical order');
  const d1 = debian.distances ?? [];
  const d2 = avx2.distances ?? [];
  t.equal(d2.length, 20 * k);
  t.ok(d1.every((d, i) => Math.abs(d - (d2[i] ?? Number.NaN)) < 1e-5), 'scores equal up to FMA rounding');
});
