/**
 * Pure parts of the ranker: option validation, execution-provider planning, the power-of-two-choices
 * pick, and KServe request parsing. No threads, sockets or ONNX Runtime.
 */
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { StatusCode, UpnextError } from '../../core/status.js';
import { pickReplica } from '../../actors/ranker/balancer.js';
import { planExecutionProvider } from '../../actors/ranker/execution-provider.js';
import { inferResponse, modelMetadata, parseInferRequest } from '../../actors/ranker/kserve-server.js';
import type { ModelInferRequest } from '../../actors/ranker/kserve-proto.js';
import { resolveRankerOptions, resolveRankerScorerOptions } from '../../actors/ranker/options.js';
import { RankerClient } from '../../actors/ranker/client.js';

t.test('option validation: defaults, and a TypeError naming each bad option', async (t) => {
  const r = resolveRankerOptions({ modelDir: '/m' });
  t.same(r.batching, { maxBatchRows: 1024, maxDelayMs: 0, maxQueueRows: 16384, batchesPerWorker: 1 });
  t.equal(r.workers, 1);
  t.equal(r.port, 0);
  t.equal(r.host, '127.0.0.1');
  t.equal(r.executionProvider, 'auto');
  t.equal(r.intraOpNumThreads, 1);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /options\.modelDir/],
    [{ modelDir: '/m', workers: 0 }, /options\.workers/],
    [{ modelDir: '/m', workers: 1.5 }, /options\.workers/],
    [{ modelDir: '/m', intraOpNumThreads: -1 }, /options\.intraOpNumThreads/],
    [{ modelDir: '/m', executionProvider: 'tpu' }, /options\.executionProvider/],
    [{ modelDir: '/m', port: 70000 }, /options\.port/],
    [{ modelDir: '/m', host: '' }, /options\.host/],
    [{ modelDir: '/m', shutdownGraceMs: -1 }, /options\.shutdownGraceMs/],
    [{ modelDir: '/m', batching: { maxBatchRows: 0 } }, /options\.batching\.maxBatchRows/],
    [{ modelDir: '/m', batching: { maxDelayMs: -1 } }, /options\.batching\.maxDelayMs/],
    [{ modelDir: '/m', batching: { maxQueueRows: 'x' } }, /options\.batching\.maxQueueRows/],
    [{ modelDir: '/m', batching: { batchesPerWorker: 0 } }, /options\.batching\.batchesPerWorker/],
    [{ modelDir: '/m', featureSpec: 3 }, /options\.featureSpec/],
  ];
  for (const [opts, re] of bad) t.throws(() => resolveRankerOptions(opts as never), { name: 'TypeError', message: re }, JSON.stringify(opts));
  t.throws(() => new RankerClient({} as never), { name: 'TypeError', message: /options\.addresses/ });
  t.throws(() => new RankerClient({ addresses: () => [], channelsPerReplica: 0 }), { name: 'TypeError', message: /options\.channelsPerReplica/ });
  t.throws(() => new RankerClient({ addresses: () => [], ejectMs: -5 }), { name: 'TypeError', message: /options\.ejectMs/ });
});

t.test('execution provider: auto picks CUDA only with the provider library and a GPU; cpu/cuda are honoured', async (t) => {
  const all = { cudaListed: true, cudaLibraryPresent: true, gpuVisible: true };
  t.same(planExecutionProvider('auto', all), { primary: 'cuda', fallbackToCpu: true, reason: 'CUDA provider and GPU present' });
  const noGpu = planExecutionProvider('auto', { ...all, gpuVisible: false });
  t.equal(noGpu.primary, 'cpu');
  t.match(noGpu.reason, /no NVIDIA GPU/);
  const noLib = planExecutionProvider('auto', { ...all, cudaLibraryPresent: false });
  t.equal(noLib.primary, 'cpu');
  t.match(noLib.reason, /libonnxruntime_providers_cuda/);
  t.equal(planExecutionProvider('cpu', all).primary, 'cpu');
  t.same(planExecutionProvider('cuda', { cudaListed: false, cudaLibraryPresent: false, gpuVisible: false }), {
    primary: 'cuda',
    fallbackToCpu: false,
    reason: 'CUDA requested',
  });
  // WebGPU is opt-in: 'auto' never picks it, even with a GPU; asked for, it is tried without a CPU fallback.
  t.equal(planExecutionProvider('auto', { ...all, cudaLibraryPresent: false }).primary, 'cpu');
  t.same(planExecutionProvider('webgpu', { cudaListed: false, cudaLibraryPresent: false, gpuVisible: false }), {
    primary: 'webgpu',
    fallbackToCpu: false,
    reason: 'WebGPU requested',
  });
  t.throws(() => resolveRankerScorerOptions({ modelDir: 'm', executionProvider: 'tpu' as never }), {
    name: 'TypeError',
    message: /options\.executionProvider must be one of 'auto', 'cpu', 'cuda', 'webgpu', got tpu/,
  });
});

t.test('power of two choices prefers the less loaded replica, skips ejected and excluded ones', async (t) => {
  const rng = new SeededRng(1);
  const loads = [
    { outstanding: 10, ejectedUntilMs: 0 },
    { outstanding: 0, ejectedUntilMs: 0 },
  ];
  for (let i = 0; i < 50; i++) t.equal(pickReplica(loads, 0, rng), 1, 'with two replicas the idle one always wins');
  const counts = [0, 0, 0];
  const even = [0, 1, 2].map(() => ({ outstanding: 0, ejectedUntilMs: 0 }));
  for (let i = 0; i < 3000; i++) counts[pickReplica(even, 0, rng)]!++;
  for (const c of counts) t.ok(c > 700, `equal loads spread evenly (${counts.join('/')})`);
  const ejected = [
    { outstanding: 0, ejectedUntilMs: 1000 },
    { outstanding: 50, ejectedUntilMs: 0 },
  ];
  t.equal(pickReplica(ejected, 500, rng), 1, 'an ejected replica is skipped while ejected');
  t.equal(pickReplica(ejected, 1500, rng), 0, 'and comes back after');
  t.equal(pickReplica(ejected, 500, rng, new Set([1])), 0, 'all healthy ones excluded: try the ejected one');
  t.equal(pickReplica(ejected, 500, rng, new Set([0, 1])), -1);
  t.equal(pickReplica([], 0, rng), -1);
});

function inferRequest(overrides: Partial<ModelInferRequest> = {}, width = 2, rows = [0.5, 1, 2, 3]): ModelInferRequest {
  const bytes = Buffer.from(new Float32Array(rows).buffer);
  return {
    model_name: 'ranker',
    model_version: '',
    inputs: [{ name: 'features', datatype: 'FP32', shape: [rows.length / width, width] }],
    outputs: [],
    raw_input_contents: [bytes],
    ...overrides,
  };
}

function codeOf(fn: () => unknown): { code: StatusCode; details: string | undefined; message: string } {
  try {
    fn();
  } catch (err) {
    const e = err as UpnextError;
    return { code: e.code, details: e.details, message: e.message };
  }
  throw new Error('expected a throw');
}

t.test('KServe request parsing: raw and fp32 contents, output order, and errors naming the tensor', async (t) => {
  const parsed = parseInferRequest(inferRequest(), 2, 'v1');
  t.equal(parsed.nRows, 2);
  t.same(Array.from(parsed.rows), [0.5, 1, 2, 3]);
  t.same(parsed.outputs, ['p_click', 'watch_log1p_s'], 'all outputs when none requested');
  const viaContents = parseInferRequest(
    inferRequest({ raw_input_contents: [], inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 2], contents: { fp32_contents: [4, 5] } }] }),
    2,
    'v1',
  );
  t.same(Array.from(viaContents.rows), [4, 5]);
  const unaligned = Buffer.alloc(17);
  Buffer.from(new Float32Array([7, 8]).buffer).copy(unaligned, 1);
  t.same(Array.from(parseInferRequest(inferRequest({ raw_input_contents: [unaligned.subarray(1, 9)] }, 2, [7, 8]), 2, 'v1').rows), [7, 8]);
  const reordered = parseInferRequest(inferRequest({ outputs: [{ name: 'watch_log1p_s' }] }), 2, 'v1');
  t.same(reordered.outputs, ['watch_log1p_s']);
  const res = inferResponse(reordered, { pClick: new Float32Array([0.1, 0.2]), watchLog1p: new Float32Array([3, 4]) }, 'v1', 'req-1');
  t.same(res.outputs, [{ name: 'watch_log1p_s', datatype: 'FP32', shape: [2, 1] }]);
  t.same(Array.from(new Float32Array(new Uint8Array(res.raw_output_contents[0]!).buffer)), [3, 4]);
  t.equal(res.id, 'req-1');

  t.equal(codeOf(() => parseInferRequest(inferRequest({ model_name: 'other' }), 2, 'v1')).code, StatusCode.NOT_FOUND);
  t.equal(codeOf(() => parseInferRequest(inferRequest({ model_version: 'v0' }), 2, 'v1')).code, StatusCode.NOT_FOUND);
  t.equal(parseInferRequest(inferRequest({ model_version: 'v1' }), 2, 'v1').nRows, 2, 'the served version is accepted');
  const cases: [Partial<ModelInferRequest>, string][] = [
    [{ inputs: [{ name: 'feats', datatype: 'FP32', shape: [2, 2] }] }, 'feats'],
    [{ inputs: [{ name: 'features', datatype: 'FP64', shape: [2, 2] }] }, 'features'],
    [{ inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 3] }] }, 'features'],
    [{ inputs: [{ name: 'features', datatype: 'FP32', shape: [4] }] }, 'features'],
    [{ inputs: [{ name: 'features', datatype: 'FP32', shape: [3, 2] }] }, 'features'],
    [{ inputs: [] }, 'features'],
    [{ outputs: [{ name: 'p_click' }, { name: 'ctr' }] }, 'ctr'],
  ];
  for (const [override, tensor] of cases) {
    const e = codeOf(() => parseInferRequest(inferRequest(override), 2, 'v1'));
    t.equal(e.code, StatusCode.INVALID_ARGUMENT, JSON.stringify(override));
    t.equal(e.details, tensor);
    t.match(e.message, new RegExp(`^${tensor}:`), 'the message starts with the tensor name');
  }
  t.same(modelMetadata(7, 'v1').inputs, [{ name: 'features', datatype: 'FP32', shape: [-1, 7] }]);
});
