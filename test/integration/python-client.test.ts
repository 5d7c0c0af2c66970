// A Python gRPC client (Debian's python3-grpcio, stubs compiled at test time with grpc_tools.protoc
// from protos/) calls Recommend on a real local cluster: the public API works from another language
// with nothing but the .proto files.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { startLocalCluster } from '../../cluster/local/launcher.js';
import { PROTO_DIR } from '../../protos/codec.js';

const PYTHON = '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import grpc, grpc_tools'], { encoding: 'utf8' });
if (probe.status !== 0) {
  t.fail(`needs ${PYTHON} with python3-grpcio and python3-grpc-tools (Debian packages): ${probe.stderr}`);
  process.exit(1);
}

const assets = await ensureTinyAssets();
const work = await mkdtemp(path.join(tmpdir(), 'upnext-py-'));
const cluster = await startLocalCluster({
  runDir: path.join(work, 'run'),
  worldDir: assets.worldDir,
  modelDir: assets.modelDir,
  nodes: 1,
  itemShards: 1,
  userPartitions: 2,
  grpcPort: 0,
  config: {
    cluster: { name: `py-${process.pid}` },
    coordinator: { defaultDeadlineMs: 20_000, budgets: { userStateMs: 5000, retrievalMs: 5000, rankingMs: 5000, policyMs: 1000 } },
    node: { loadReportIntervalMs: 0 },
  },
});
t.teardown(async () => {
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
});

const SCRIPT = `
import json, sys
sys.path.insert(0, sys.argv[1])
import grpc
from upnext.v1 import recommender_pb2 as pb, recommender_pb2_grpc as rpc
channel = grpc.insecure_channel(sys.argv[2])
stub = rpc.RecommenderStub(channel)
out = {}
reply = stub.Recommend(pb.RecommendRequest(user_id=int(sys.argv[3]), k=7, surface="home",
    context=pb.Context(device="android", country="BR", local_hour=21), exclude_video_ids=[1, 2, 3]), timeout=20)
out["items"] = [{"video_id": i.video_id, "score": i.score, "source": pb.Source.Name(i.source)} for i in reply.items]
out["coverage"] = reply.coverage
out["model_version"] = reply.model_version
try:
    stub.Recommend(pb.RecommendRequest(user_id=1, k=0), timeout=20)
    out["bad"] = "no error"
except grpc.RpcError as e:
    out["bad"] = {"code": e.code().name, "details": e.details()}
print(json.dumps(out))
`;

t.test('Python grpcio client calls Recommend and gets a valid reply', async (t) => {
  const stubs = path.join(work, 'py');
  await mkdir(stubs, { recursive: true });
  const gen = spawnSync(
    PYTHON,
    ['-m', 'grpc_tools.protoc', `-I${PROTO_DIR}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, 'upnext/v1/recommender.proto'],
    { encoding: 'utf8' },
  );
  t.equal(gen.status, 0, `protoc: ${gen.stderr}`);
  const script = path.join(work, 'client.py');
  await writeFile(script, SCRIPT);
  const run = spawnSync(PYTHON, [script, stubs, cluster.grpcAddress, '42'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as {
    items: { video_id: number; score: number; source: string }[];
    coverage: number;
    model_version: string;
    bad: { code: string; details: string };
  };
  t.equal(out.items.length, 7, 'exactly k items');
  const ids = out.items.map((i) => i.video_id);
  t.equal(new Set(ids).size, 7, 'distinct');
  t.same(ids.filter((id) => id <= 3), [], 'excluded ids absent');
  for (let i = 1; i < out.items.length; i++) t.ok(out.items[i]!.score <= out.items[i - 1]!.score, 'sorted by score');
  t.equal(out.coverage, 1);
  t.equal(out.model_version, assets.manifest.version);
  t.ok(out.items.every((i) => ['RETRIEVAL', 'TRENDING', 'EXPLORATION', 'FALLBACK'].includes(i.source)));
  t.equal(out.bad.code, 'INVALID_ARGUMENT');
  t.match(out.bad.details, /\bk\b/);
});
