/**
 * Test fixture for the ranker: a tiny ranker.onnx written with onnx-proto (MatMul + Sigmoid for
 * p_click, MatMul + Add for watch_log1p_s) honouring the model contract's tensor names, plus a
 * manifest, so batching and serving are tested before trained models exist. Not a trainer: the
 * weights are random, and {@link LinearRankerFixture.reference} computes the same outputs in JS.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { SeededRng } from '../../core/clock.js';
import { specHash } from '../../core/features/index.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES, TENSORS } from '../../core/model/contract.js';

const { onnx } = onnxProto;

export interface LinearRankerFixture {
  readonly dir: string;
  readonly width: number;
  readonly version: string;
  /** Deletes the temp directory this fixture created (nothing when `parent` was given). */
  remove(): Promise<void>;
  /** Expected outputs for `nRows` rows, computed in float64 then rounded to float32. */
  reference(rows: Float32Array, nRows: number): { pClick: Float32Array; watchLog1p: Float32Array };
}

export interface LinearRankerFixtureOptions {
  /** Parent directory; default a fresh temp dir. */
  readonly parent?: string;
  readonly version?: string;
  readonly seed?: number;
  readonly spec?: FeatureSpec;
  /** Override the manifest's featureSpecHash (to test refusal). */
  readonly featureSpecHash?: string;
  /** Override the input's column count in the ONNX graph (to test the contract check). */
  readonly onnxWidth?: number;
}

function floatTensor(name: string, dims: number[], values: Float32Array): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

function valueInfo(name: string, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Encodes the linear ranker graph; exported for tests that need the bytes only. */
export function linearRankerOnnx(width: number, wc: Float32Array, ww: Float32Array, bw: number): Uint8Array {
  const { features, pClick, watchLog1p } = TENSORS.ranker;
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'upnext-test',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'linear_ranker',
      input: [valueInfo(features, ['batch', width])],
      output: [valueInfo(pClick, ['batch', 1]), valueInfo(watchLog1p, ['batch', 1])],
      initializer: [floatTensor('wc', [width, 1], wc), floatTensor('ww', [width, 1], ww), floatTensor('bw', [1], new Float32Array([bw]))],
      node: [
        { opType: 'MatMul', input: [features, 'wc'], output: ['zc'], name: 'click_matmul' },
        { opType: 'Sigmoid', input: ['zc'], output: [pClick], name: 'click_sigmoid' },
        { opType: 'MatMul', input: [features, 'ww'], output: ['zw'], name: 'watch_matmul' },
        { opType: 'Add', input: ['zw', 'bw'], output: [watchLog1p], name: 'watch_bias' },
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Writes `<parent>/<version>/{ranker.onnx, manifest.json}` and returns its JS reference. */
export async function writeLinearRankerModel(opts: LinearRankerFixtureOptions = {}): Promise<LinearRankerFixture> {
  const spec = opts.spec ?? DEFAULT_FEATURE_SPEC;
  const width = rankerRowWidth(spec);
  const version = opts.version ?? 'test-linear-1';
  const rng = new SeededRng(opts.seed ?? 7);
  const graphWidth = opts.onnxWidth ?? width;
  const wc = new Float32Array(graphWidth).map(() => (rng.next() - 0.5) * 0.8);
  const ww = new Float32Array(graphWidth).map(() => rng.next() * 0.5);
  const bw = Math.fround(1 + rng.next());
  const parent = opts.parent ?? (await mkdtemp(path.join(tmpdir(), 'upnext-ranker-')));
  const ownsParent = opts.parent === undefined;
  const dir = path.join(parent, version);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, MODEL_FILES.ranker), linearRankerOnnx(graphWidth, wc, ww, bw));
  const tensor = (name: string, shape: number[]) => ({ name, dtype: 'float32' as const, shape });
  const manifest: ModelManifest = {
    version,
    createdAt: new Date(0).toISOString(),
    featureSpec: spec,
    featureSpecHash: opts.featureSpecHash ?? specHash(spec),
    files: MODEL_FILES,
    tensors: {
      userTower: { inputs: [], outputs: [] },
      itemTower: { inputs: [], outputs: [] },
      ranker: {
        inputs: [tensor(TENSORS.ranker.features, [-1, width])],
        outputs: [tensor(TENSORS.ranker.pClick, [-1, 1]), tensor(TENSORS.ranker.watchLog1p, [-1, 1])],
      },
    },
    calibration: { click: { type: 'identity' } },
    trainingData: { fixture: 'linear-ranker' },
    metrics: {},
  };
  await writeFile(path.join(dir, MODEL_FILES.manifest), JSON.stringify(manifest, null, 2));
  return {
    dir,
    width,
    version,
    remove: () => (ownsParent ? rm(parent, { recursive: true, force: true }) : Promise.resolve()),
    reference(rows, nRows) {
      const pClick = new Float32Array(nRows);
      const watchLog1p = new Float32Array(nRows);
      for (let r = 0; r < nRows; r++) {
        let zc = 0;
        let zw = 0;
        for (let j = 0; j < width; j++) {
          const x = rows[r * width + j] ?? 0;
          zc += x * (wc[j] ?? 0);
          zw += x * (ww[j] ?? 0);
        }
        pClick[r] = 1 / (1 + Math.exp(-zc));
        watchLog1p[r] = zw + bw;
      }
      return { pClick, watchLog1p };
    },
  };
}

/** `nRows` random rows in [0, 1). */
export function randomRows(nRows: number, width: number, seed: number): Float32Array {
  const rng = new SeededRng(seed);
  return new Float32Array(nRows * width).map(() => rng.next());
}

/** Largest absolute difference between two arrays (Infinity when lengths differ). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return m;
}
