/**
 * The ranker replica's KServe v2 gRPC server, on port 0, with real ONNX Runtime workers: called
 * through a raw grpc-js stub (as Triton's clients would) and from Python (python3-grpcio).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { PROTO_DIR } from '../../protos/codec.js';
import { StatusCode } from '../../core/status.js';
import type { InferenceServiceClient, ModelInferRequest, ModelInferResponse } from '../../actors/ranker/kserve-proto.js';
import { inferenceService } from '../../actors/ranker/kserve-proto.js';
import { startRanker } from '../../actors/ranker/replica.js';
import { openRankerScorer } from '../../actors/ranker/scorer.js';
import { maxAbsDiff, randomRows, writeLinearRankerModel } from './ranker-fixture.js';

const run = promisify(execFile);
const quiet = { log: () => undefined };

function call<Req, Res>(fn: (req: Req, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

function floatsOf(bytes: Buffer | undefined): Float32Array {
  const copy = Buffer.from(bytes ?? Buffer.alloc(0));
  return new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4);
}

const fx = await writeLinearRankerModel({ version: 'kserve-v1', seed: 21 });
t.teardown(() => fx.remove());
const replica = await startRanker({ modelDir: fx.dir, workers: 2, port: 0 }, quiet);
const { Client } = inferenceService();
const stub = new Client(replica.address, grpc.credentials.createInsecure()) as InferenceServiceClient;
t.teardown(async () => {
  stub.close();
  await replica.stop();
});

function inferRequest(rows: Float32Array, n: number, extra: Partial<ModelInferRequest> = {}): ModelInferRequest {
  return {
    model_name: 'ranker',
    model_version: '',
    id: 'req-7',
    inputs: [{ name: 'features', datatype: 'FP32', shape: [n, fx.width] }],
    outputs: [],
    raw_input_contents: [Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength)],
    ...extra,
  };
}

t.test('health, readiness and model metadata', async (t) => {
  t.match(replica.address, /^127\.0\.0\.1:\d+$/);
  t.same(await call(stub.ServerLive.bind(stub), {}), { live: true });
  t.same(await call(stub.ServerReady.bind(stub), {}), { ready: true });
  t.same(await call(stub.ModelReady.bind(stub), { name: 'ranker', version: '' }), { ready: true });
  t.same(await call(stub.ModelReady.bind(stub), { name: 'ranker', version: 'kserve-v1' }), { ready: true });
  t.same(await call(stub.ModelReady.bind(stub), { name: 'two_tower', version: '' }), { ready: false }, 'unknown model: not ready');
  const meta = await call(stub.ModelMetadata.bind(stub), { name: 'ranker', version: '' });
  t.equal(meta.name, 'ranker');
  t.same(meta.versions, ['kserve-v1']);
  t.equal(meta.platform, 'onnxruntime_onnx');
  t.same(meta.inputs, [{ name: 'features', datatype: 'FP32', shape: [-1, fx.width] }]);
  t.same(meta.outputs, [
    { name: 'p_click', datatype: 'FP32', shape: [-1, 1] },
    { name: 'watch_log1p_s', datatype: 'FP32', shape: [-1, 1] },
  ]);
  const err = (await call(stub.ModelMetadata.bind(stub), { name: 'nope', version: '' }).catch((e: unknown) => e)) as grpc.ServiceError;
  t.equal(err.code, grpc.status.NOT_FOUND);
});

t.test('ModelInfer round trip equals in-process scoring, raw and fp32_contents, outputs in requested order', async (t) => {
  const scorer = await openRankerScorer({ modelDir: fx.dir }, quiet);
  t.teardown(() => scorer.close());
  const n = 37;
  const rows = randomRows(n, fx.width, 99);
  const local = await scorer.score(rows, n);
  const res = await call<ModelInferRequest, ModelInferResponse>(stub.ModelInfer.bind(stub), inferRequest(rows, n));
  t.equal(res.model_name, 'ranker');
  t.equal(res.model_version, 'kserve-v1');
  t.equal(res.id, 'req-7');
  t.same(res.outputs, [
    { name: 'p_click', datatype: 'FP32', shape: [n, 1], parameters: {}, contents: null },
    { name: 'watch_log1p_s', datatype: 'FP32', shape: [n, 1], parameters: {}, contents: null },
  ]);
  t.same(Array.from(floatsOf(res.raw_output_contents[0])), Array.from(local.pClick), 'p_click identical to in-process');
  t.same(Array.from(floatsOf(res.raw_output_contents[1])), Array.from(local.watchLog1p), 'watch identical to in-process');
  t.ok(maxAbsDiff(floatsOf(res.raw_output_contents[0]), fx.reference(rows, n).pClick) < 1e-5);

  const viaContents = await call<ModelInferRequest, ModelInferResponse>(
    stub.ModelInfer.bind(stub),
    inferRequest(rows, n, {
      raw_input_contents: [],
      inputs: [{ name: 'features', datatype: 'FP32', shape: [n, fx.width], contents: { fp32_contents: Array.from(rows) } }],
      outputs: [{ name: 'watch_log1p_s' }, { name: 'p_click' }],
    }),
  );
  t.same(viaContents.outputs.map((o) => o.name), ['watch_log1p_s', 'p_click']);
  t.same(Array.from(floatsOf(viaContents.raw_output_contents[0])), Array.from(local.watchLog1p));
  t.same(Array.from(floatsOf(viaContents.raw_output_contents[1])), Array.from(local.pClick));
  t.ok(replica.stats().server.inferCalls >= 2);
});

t.test('bad requests: INVALID_ARGUMENT naming the tensor, NOT_FOUND for another model', async (t) => {
  const rows = randomRows(2, fx.width, 1);
  const cases: [Partial<ModelInferRequest>, number, RegExp][] = [
    [{ inputs: [{ name: 'feats', datatype: 'FP32', shape: [2, fx.width] }] }, grpc.status.INVALID_ARGUMENT, /^feats:/],
    [{ inputs: [{ name: 'features', datatype: 'INT64', shape: [2, fx.width] }] }, grpc.status.INVALID_ARGUMENT, /^features: datatype/],
    [{ inputs: [{ name: 'features', datatype: 'FP32', shape: [2, fx.width + 1] }] }, grpc.status.INVALID_ARGUMENT, /^features: shape/],
    [{ inputs: [{ name: 'features', datatype: 'FP32', shape: [3, fx.width] }] }, grpc.status.INVALID_ARGUMENT, /^features: expected/],
    [{ outputs: [{ name: 'ctr' }] }, grpc.status.INVALID_ARGUMENT, /^ctr:/],
    [{ model_name: 'two_tower' }, grpc.status.NOT_FOUND, /two_tower/],
    [{ model_version: '999' }, grpc.status.NOT_FOUND, /999/],
  ];
  for (const [extra, code, message] of cases) {
    const err = (await call(stub.ModelInfer.bind(stub), inferRequest(rows, 2, extra)).catch((e: unknown) => e)) as grpc.ServiceError;
    t.equal(err.code, code, JSON.stringify(extra));
    t.match(err.details, message);
  }
  t.ok((replica.stats().server.inferErrors['INVALID_ARGUMENT'] ?? 0) >= 5);
});

const python = '/usr/bin/python3';
const pythonReady =
  existsSync(python) &&
  (await run(python, ['-c', 'import grpc, grpc_tools']).then(
    () => true,
    () => false,
  ));

t.test('a Python KServe client (python3-grpcio, stubs generated at test time) calls ModelInfer', { skip: pythonReady ? false : 'python3-grpcio / python3-grpc-tools not installed' }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-kserve-py-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await run(python, ['-m', 'grpc_tools.protoc', `-I${path.join(PROTO_DIR, 'inference')}`, `--python_out=${dir}`, `--grpc_python_out=${dir}`, 'grpc_service.proto']);
  const n = 5;
  const rows = randomRows(n, fx.width, 5);
  const script = `
import json, struct, sys
import grpc
import grpc_service_pb2 as pb, grpc_service_pb2_grpc as rpc
n, f = ${n}, ${fx.width}
values = json.loads(sys.argv[2])
stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(sys.argv[1]))
meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="ranker"), timeout=10)
req = pb.ModelInferRequest(model_name="ranker")
inp = req.inputs.add(); inp.name = "features"; inp.datatype = "FP32"; inp.shape.extend([n, f])
req.outputs.add().name = "p_click"
req.raw_input_contents.append(struct.pack("<%df" % (n * f), *values))
res = stub.ModelInfer(req, timeout=10)
p = struct.unpack("<%df" % n, res.raw_output_contents[0])
try:
    stub.ModelInfer(pb.ModelInferRequest(model_name="nope"), timeout=10)
    code = "OK"
except grpc.RpcError as e:
    code = e.code().name
print(json.dumps({"input": meta.inputs[0].name, "width": meta.inputs[0].shape[1], "outputs": [o.name for o in res.outputs], "p": p, "code": code}))
`;
  await writeFile(path.join(dir, 'client.py'), script);
  const { stdout } = await run(python, [path.join(dir, 'client.py'), replica.address, JSON.stringify(Array.from(rows))], { cwd: dir, timeout: 60_000 });
  const out = JSON.parse(stdout) as { input: string; width: number; outputs: string[]; p: number[]; code: string };
  t.equal(out.input, 'features');
  t.equal(out.width, fx.width);
  t.same(out.outputs, ['p_click']);
  t.ok(maxAbsDiff(new Float32Array(out.p), fx.reference(rows, n).pClick) < 1e-5, 'Python got the model outputs');
  t.equal(out.code, 'NOT_FOUND');
});

t.test('stop is idempotent and the port stops answering', async (t) => {
  const other = await startRanker({ modelDir: fx.dir, port: 0 }, quiet);
  const c = new Client(other.address, grpc.credentials.createInsecure()) as InferenceServiceClient;
  t.same(await call(c.ServerLive.bind(c), {}), { live: true });
  await Promise.all([other.stop(), other.stop()]);
  const err = (await call(c.ServerLive.bind(c), {}).catch((e: unknown) => e)) as grpc.ServiceError;
  t.equal(err.code, grpc.status.UNAVAILABLE);
  c.close();
  t.equal(StatusCode.UNAVAILABLE as number, grpc.status.UNAVAILABLE as number, 'status vocabularies agree');
});
