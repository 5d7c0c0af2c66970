/**
 * `make bench`: the components in isolation, the in-process ceiling, the end-to-end cluster run and
 * their ratio, printed as tables with their conditions and written to reports/bench.json.
 *
 * Order (each part is skipped with --only): the end-to-end run first, while this process is idle
 * (the cluster and the load generator want the machine's cores); then the in-process ceiling over
 * the cluster's own item-shard snapshots (--run-dir); then the sharded-search recall and faiss QPS
 * on the real corpus (shards built here, with exact search as the reference); then the ONNX
 * ranker, NATS request/reply, worker-thread hop and gRPC unary benches. The synthetic faiss sweep (IVF vs HNSW on
 * clustered vectors) runs only when asked (`--only faiss-synthetic`): HNSW's build takes minutes.
 *
 * Corpus: `ensureLocalAssets()` (the `make run` world and models, cached; 1M videos by default),
 * or `--items/--users` for another size, or `--world <dir> --models <dir>` for given assets.
 * `--quick` shrinks everything for a smoke run (20k videos, 2k users, short steps).
 *
 * Flags: --world, --models, --items, --users, --days, --quick, --only e2e,recall,ceiling,onnx,nats,grpc,hop[,faiss-synthetic],
 * --nodes, --shards, --set key=value (any config knob, repeatable; e.g. --set coordinator.localShards=off),
 * --rates start,step,max (req/s), --step-s, --p99 (ms), --processes (load-generator processes, default 1), --ceiling-requests,
 * --routing spread|user (how the generator picks a coordinator; "user" needs several coordinators,
 * e.g. --set cluster.coordinators=n1,n2,n3), --recall-queries, --profile (node --cpu-prof of every cluster node; top frames in the output — it
 * roughly doubles the nodes' CPU, measured, so take the end-to-end figures from a run without it),
 * --run-dir (cluster working dir, default run/bench-cluster), --out (default reports/bench.json);
 * synthetic faiss: --n, --queries, --recall, --spread, --skip-hnsw.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { benchReport, ceilingRatio, writeBenchReport } from './bench/ceiling-ratio.js';
import type { BenchParts } from './bench/ceiling-ratio.js';
import type { NodeStall } from './bench/end-to-end.js';
import { printTable } from './bench/table.js';
import { cpuIdentity } from './measure/cpu-identity.js';
import { REPO_ROOT } from './paths.js';
import { faissBuild } from '../actors/item-shard/faiss.js';
import { parseRoutingMode } from './client/recommender-client.js';
import { SERVER_STAGES, STAGE_LABELS, mapStages } from './measure/outcome.js';

// faiss links OpenMP, which reads OMP_NUM_THREADS once, when the library loads: set it before any
// module that loads faiss is imported, so "per core" means one thread.
process.env['OMP_NUM_THREADS'] ??= '1';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function numFlag(name: string, fallback: number): number {
  const v = flag(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new TypeError(`${name} must be a positive number, got ${v}`);
  return n;
}

const out = (s: string) => process.stdout.write(s);
const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const loadavg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
const fileBytes = (f: string) => (existsSync(f) ? statSync(f).size : null);

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const only = new Set((flag('--only') ?? 'e2e,recall,ceiling,onnx,nats,grpc,hop').split(','));
  const outFile = path.resolve(flag('--out') ?? path.join(REPO_ROOT, 'reports', 'bench.json'));
  const started = Date.now();
  const cpu = cpuIdentity();
  const conditions: Record<string, unknown> = {
    machine: { host_cpus: os.cpus().length, cpu_model: cpu.model, cpu_family_model_stepping: cpu.familyModelStepping, cpu_simd: cpu.simd ?? null, memory_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    omp_num_threads: process.env['OMP_NUM_THREADS'],
    // Which faiss the item shards run (the nodes' workers choose the same way: same env, same files).
    faiss_build: faissBuild(),
    load_average_at_start: loadavg(),
    per_core: 'work / CPU seconds of the processes doing it (process.cpuUsage or /proc), not wall time: other jobs on the machine slow wall time, not these',
  };
  const parts: { -readonly [K in keyof BenchParts]: BenchParts[K] } = { conditions };

  // ---- assets and the one config both the cluster and the ceiling use
  let worldDir = flag('--world');
  let modelDir = flag('--models');
  if ((worldDir === undefined) !== (modelDir === undefined)) throw new TypeError('--world and --models go together');
  if (worldDir === undefined || modelDir === undefined) {
    const { ensureLocalAssets } = await import('../cluster/local/assets.js');
    const a = await ensureLocalAssets({
      ...(flag('--items') !== undefined || quick ? { videos: numFlag('--items', 20_000) } : {}),
      ...(flag('--users') !== undefined || quick ? { users: numFlag('--users', 2_000) } : {}),
      ...(flag('--days') !== undefined ? { days: numFlag('--days', 5) } : {}),
      log,
    });
    worldDir = a.worldDir;
    modelDir = a.modelDir;
  }
  worldDir = path.resolve(worldDir);
  modelDir = path.resolve(modelDir);
  const { applyOverrides, resolveConfig } = await import('../cluster/config.js');
  const { readWorldManifest } = await import('../offline/world/reader.js');
  const sets = process.argv.flatMap((a, i) => (a === '--set' && process.argv[i + 1] !== undefined ? [process.argv[i + 1]!] : []));
  const clusterInput = applyOverrides(
    {
      cluster: {
        name: 'bench',
        ...(flag('--nodes') !== undefined ? { nodes: numFlag('--nodes', 3) } : {}),
        ...(flag('--shards') !== undefined ? { itemShards: numFlag('--shards', 2) } : {}),
      },
    },
    sets,
  );
  const config = resolveConfig(clusterInput);
  const world = await readWorldManifest(worldDir);
  const { loadServingManifest } = await import('../offline/onnx/load.js');
  const manifest = await loadServingManifest(modelDir);
  conditions['corpus'] = { world: worldDir, videos: world.numVideos, users: world.numUsers, events: world.counts?.events ?? null, days: world.days };
  conditions['model'] = {
    dir: modelDir,
    version: manifest.version,
    // "row-shared-EXPERTSxwidth-tower" (trainingData.rankerShape); null for a model trained before it was recorded
    // or by another trainer.
    ranker_shape: typeof manifest.trainingData['rankerShape'] === 'string' ? manifest.trainingData['rankerShape'] : null,
    ranker_onnx_bytes: fileBytes(path.join(modelDir, 'ranker.onnx')),
    user_tower_onnx_bytes: fileBytes(path.join(modelDir, 'user_tower.onnx')),
    item_tower_onnx_bytes: fileBytes(path.join(modelDir, 'item_tower.onnx')),
  };
  conditions['config'] = {
    cluster: config.cluster,
    index: config.itemShard.index,
    local_shards: config.coordinator.localShards,
    local_ranker: config.coordinator.localRanker,
    per_shard_k: config.coordinator.perShardK,
    merge_limit: config.coordinator.mergeLimit,
    trending_candidates: config.coordinator.trendingCandidates,
    budgets_ms: config.coordinator.budgets,
    ranker: { workers: config.ranker.workers, intra_op_threads: config.ranker.intraOpNumThreads, batching: config.ranker.batching },
    user_state_thread: config.userState.thread,
  };

  const runDir = path.resolve(flag('--run-dir') ?? path.join(REPO_ROOT, 'run', 'bench-cluster'));
  /** Offered rate of the end-to-end step the report quotes (its stage timings are compared with the ceiling's). */
  let endToEndOffered: number | undefined;

  // ---- end to end
  if (only.has('e2e')) {
    const { runEndToEnd, summariseProfiles, cpuProfilesIn, slowestStageText, throttlingText } = await import('./bench/end-to-end.js');
    const [startRate, stepRate, maxRate] = (flag('--rates') ?? (quick ? '20,20,60' : '25,25,2000')).split(',').map(Number);
    const profileDir = process.argv.includes('--profile') ? path.join(REPO_ROOT, 'run', 'bench-profiles') : undefined;
    if (profileDir !== undefined) {
      await rm(profileDir, { recursive: true, force: true });
      await mkdir(profileDir, { recursive: true });
    }
    // A steady phase at the start rate before the ramp, not reported (the ramp's own warmUpS stays 0).
    const warmUpS = quick ? 3 : 10;
    const r = await runEndToEnd({
      worldDir, modelDir, runDir, config: clusterInput,
      startRate: startRate ?? 100, stepRate: stepRate ?? 100, maxRate: maxRate ?? 2000,
      // 15 s steps: at 50 req/s an 8 s step's p99 was its 4th-worst request, and two runs of the same
      // build disagreed on whether the SLO was met (p99 35 vs 66 ms); 15 s steps halve that noise.
      stepS: numFlag('--step-s', quick ? 4 : 15), p99Ms: numFlag('--p99', 50), warmUpS,
      ...(flag('--routing') !== undefined ? { routing: parseRoutingMode(flag('--routing'), '--routing') } : {}),
      ...(flag('--processes') !== undefined ? { generatorProcesses: numFlag('--processes', 1) } : {}),
      ...(profileDir !== undefined ? { profileDir } : {}),
      log,
    });
    printTable(
      'End to end: local cluster, public gRPC Recommend, open-loop ramp (latency from intended send time)',
      ['offered/s', 'answers/s', 'personalised/s', 'p50 ms', 'p99 ms', 'errors %', 'server cores', 'QPS/server core', 'busiest thread', 'busiest thread ms/req', 'its core %', 'process ceiling QPS', 'core wait ms/req', 'idle %', 'steal %', 'quota throttling', 'coverage', 'pipeline p99 ms', 'slowest stage p99 ms', 'stalls', 'SLO'],
      r.steps.map((s) => {
        const bt = s.busiestThread;
        const btMs = bt?.msPerRequest ?? NaN;
        return [
          s.offeredRate, s.throughput, s.goodput, s.p50Ms, s.p99Ms, s.errorRate * 100, s.serverCpuCores ?? NaN, s.qpsPerServerCore ?? NaN,
          bt ? `${bt.process} ${bt.thread}` : '—', btMs, bt ? bt.utilisation * 100 : NaN, btMs > 0 ? 1000 / (btMs * s.entryProcesses) : NaN,
          s.runQueueWaitMsPerRequest ?? NaN, s.machineCpu ? s.machineCpu.idleShare * 100 : NaN, s.machineCpu ? s.machineCpu.stealShare * 100 : NaN,
          throttlingText(s.cpuThrottling), s.meanCoverage ?? NaN, s.serverStagesMs?.total.p99 ?? NaN, slowestStageText(s.serverStagesMs), stallText(s.stalls), s.sloMet ? 'met' : s.generatorSaturated ? 'missed (generator saturated)' : 'missed',
        ];
      }),
      { nodes: r.cluster.nodes, S: r.cluster.itemShards, P: r.cluster.userPartitions, R: r.cluster.replicas, slo: `p99<=${r.scenario.slo.p99Ms}ms`, step_s: r.scenario.load.kind === 'ramp' ? r.scenario.load.stepDurationS : '', cluster_start_s: (r.cluster.startMs / 1000).toFixed(1), load_avg: loadavg().join('/') },
      out,
    );
    // The SLO-meeting step with the most personalised answers; when none met it (a loaded machine),
    // the step with the lowest p99, flagged, so the ratio is still shown rather than hidden.
    const best = r.best ?? [...r.steps].sort((a, b) => a.p99Ms - b.p99Ms)[0];
    if (best && best.qpsPerServerCore !== null) {
      const bt = best.busiestThread;
      const stages = best.serverStagesMs;
      parts.endToEnd = {
        qpsPerCore: best.qpsPerServerCore, p50Ms: best.p50Ms, p99Ms: best.p99Ms, items: world.numVideos,
        ...(bt ? { busiestThread: { process: bt.process, thread: bt.thread, msPerRequest: bt.msPerRequest, utilisation: bt.utilisation } } : {}),
        ...(stages !== null ? { stagesP50Ms: mapStages((stage) => stages[stage].p50) } : {}),
      };
    }
    endToEndOffered = best?.offeredRate;
    conditions['end_to_end'] = {
      slo_met: r.best !== undefined,
      // The ramp and the SLO decide which step is chosen, hence the quoted figures (bench-compare shows them).
      load: r.scenario.load,
      warm_up_s: warmUpS,
      slo: r.scenario.slo,
      chosen_offered_per_s: endToEndOffered ?? null,
      chosen: r.best
        ? `offered ${r.best.offeredRate.toFixed(0)}/s: the highest personalised throughput that met the SLO`
        : `no step met the SLO (p99 <= ${r.scenario.slo.p99Ms} ms); reported: the step with the lowest p99${best ? ` (offered ${best.offeredRate.toFixed(0)}/s)` : ''}`,
      qps_per_core_means: 'personalised answers (ranked + degraded) per second / CPU cores of all node processes + nats-server (generator excluded)',
      busiest_thread_means: 'the node-process thread (/proc/<pid>/task/<tid>/stat) with the most CPU in the step; ms_per_request = its CPU ms / answered requests (any outcome); a thread cannot use more than one core, so one node process tops out near 1000 / (ms_per_request × entry_processes) QPS (the process ceiling column), entry_processes being the coordinators the requests entered through (routed by user: routed calls / the busiest coordinator\'s)',
      entry_processes: 'per step (steps[].entryProcesses)',
      mix: r.scenario.mix,
      generator: r.scenario.generator,
      steps: r.steps,
      cluster: r.cluster,
      ramp_window_monotonic_us: r.rampWindowUs,
      load_average_after: loadavg(),
    };
    if (profileDir !== undefined) {
      const files = await cpuProfilesIn(profileDir);
      const prof = await summariseProfiles(files, 20, r.rampWindowUs);
      const names = new Map(Object.entries(r.cluster.pids).map(([name, pid]) => [pid, name]));
      printTable(`CPU profile of the cluster nodes during the ramp (node --cpu-prof, ${files.length} thread profiles), self time`, ['frame', 'sampled ms', 'share %'], prof.top.map((e) => [e.frame, e.selfMs, e.share * 100]), { dir: profileDir }, out);
      printTable('... per thread (0 = main thread, 1.. = workers in start order)', ['node', 'thread', 'sampled ms', 'heaviest frames'], prof.threads.slice(0, 12).map((th) => [names.get(th.pid) ?? String(th.pid), th.thread, th.sampledMs, th.top.map((e) => `${e.frame.split(' (')[0]} ${(e.share * 100).toFixed(0)}%`).join(', ')]), { note: 'V8 samples wall time of running threads: on a contended machine ms overstate CPU' }, out);
      conditions['end_to_end_profile'] = { dir: profileDir, ...prof };
      conditions['end_to_end_profiled'] = 'yes: node --cpu-prof inflates the nodes\' CPU (about 2× measured); end_to_end.qps_per_core of this run understates';
    }
  }

  // ---- the in-process ceiling, over the end-to-end cluster's own item-shard snapshots
  // (the same index files, the features as off-heap records; built and written there when missing).
  // Its own process state, before the recall part: shards built here for recall keep every item as a
  // JS object beside the vectors, and a ceiling run over them pays that heap's GC (at 1M items 309
  // against 396 QPS per core restored, at 10M 71 against 195–210: docs/capacity.md).
  if (only.has('ceiling')) {
    const { openInProcessCluster, ceilingQueries, runCeiling } = await import('./bench/ceiling.js');
    const { benchMix } = await import('./bench/end-to-end.js');
    const snapshotDir = path.join(runDir, 'snapshots');
    log(`ceiling: item shards from ${snapshotDir} (built and written there when missing)`);
    const cluster = await openInProcessCluster({ worldDir, modelDir, config: clusterInput, log, snapshotDir });
    try {
      const count = numFlag('--ceiling-requests', quick ? 300 : 3000);
      const queries = await ceilingQueries({ worldDir, count, mix: benchMix() });
      const r = await runCeiling(cluster, queries);
      parts.ceilingQpsPerCore = r.qpsPerCore;
      parts.ceilingStagesP50Ms = mapStages((stage) => r.stagesMs[stage].p50);
      printTable(
        'In-process ceiling: the same RecommendPipeline, ports calling the actors directly (no NATS, gRPC, protobuf or worker hop)',
        ['requests', 'CPU s', 'QPS/core', 'p50 ms', 'p99 ms', 'outcomes'],
        [[r.requests, r.cpuSeconds, r.qpsPerCore, r.p50Ms, r.p99Ms, JSON.stringify(r.outcomes)]],
        { concurrency: r.concurrency, items: cluster.items, shards: cluster.factories.join('+'), shards_from: snapshotDir, mix: 'bench ramp mix', load_avg: loadavg().join('/') },
        out,
      );
      // Where the ceiling's CPU goes, and (after an end-to-end run) what the cluster adds to each stage.
      const cluster50 = parts.endToEnd?.stagesP50Ms;
      printTable(
        'Pipeline stages: the ceiling (one request at a time, so time = CPU) against the cluster\'s own timings in the chosen end-to-end step',
        ['stage', 'ceiling mean ms', 'ceiling p50 ms', 'share of ceiling total %', 'cluster p50 ms', 'cluster - ceiling p50 ms'],
        SERVER_STAGES.map((stage) => {
          const c = r.stagesMs[stage];
          const e = cluster50?.[stage];
          return [STAGE_LABELS[stage], c.mean, c.p50, (100 * c.mean) / r.stagesMs.total.mean, e ?? '—', e !== undefined ? e - c.p50 : '—'];
        }),
        { cluster_step: endToEndOffered !== undefined ? `offered ${endToEndOffered.toFixed(0)}/s` : 'no end-to-end run in this bench', ceiling_cpu_ms_per_request: (1000 / r.qpsPerCore).toFixed(3) },
        out,
      );
      conditions['ceiling'] = { ...r, items: cluster.items, factories: cluster.factories, startup_ms: cluster.startupMs, shards_from: snapshotDir };
    } finally {
      await cluster.close();
    }
  }

  // ---- recall and faiss QPS on the real corpus (shards built here: exact search over the encoded
  // vectors is the reference)
  let recallAt100: number | undefined;
  if (only.has('recall')) {
    const { ItemTower } = await import('../actors/item-shard/item-tower.js');
    const { assertRecallHeap, buildEncodedShards, measureShardedRecall, sampleUserVectors, sweepNprobe } = await import('./bench/recall.js');
    assertRecallHeap(world.numVideos);
    const { openInProcessCluster } = await import('./bench/ceiling.js');
    const tower = await ItemTower.load(modelDir);
    log(`encoding ${world.numVideos} items and building ${config.cluster.itemShards} shard indexes`);
    const enc = await buildEncodedShards({ worldDir, tower, shardCount: config.cluster.itemShards, index: config.itemShard.index, towerBatchRows: config.itemShard.towerBatchRows, perShardK: config.coordinator.perShardK });
    await tower.close();
    // For the user-state partition that embeds the query users (the ranker sessions go unused).
    const cluster = await openInProcessCluster({ worldDir, modelDir, config: clusterInput, shards: enc.shards, log });
    try {
      const queries = await sampleUserVectors(cluster.userState, worldDir, numFlag('--recall-queries', quick ? 50 : 200));
      const r = measureShardedRecall(enc, queries, { k: 100, perShardK: config.coordinator.perShardK, index: config.itemShard.index });
      recallAt100 = r.recallAtK;
      // The nprobe each shard runs at and where it came from; a calibrated one also names the recall
      // the shard measured on the model's own queries (this table measures it on other users).
      const nprobeText = (s: (typeof r.shards)[number]) =>
        s.nprobe === undefined ? '' : `, nprobe ${s.nprobe} ${s.nprobeSource}${s.calibratedRecall !== undefined ? ` at ${s.calibratedRecall.toFixed(3)} in ${((s.calibrationMs ?? 0) / 1000).toFixed(1)} s` : ''}`;
      const shardInfo = r.shards.map((s) => `${s.factory}(${s.size}${nprobeText(s)})`).join(' + ');
      printTable(
        'faiss on the real corpus: sharded search at the configured parameters vs exact brute force (user-tower queries)',
        ['shards', `recall@${r.k}`, 'queries/s/core (all shards)', 'shard searches/s/core', 'p50 ms', 'p99 ms', 'exact ms/query'],
        [[shardInfo, r.recallAtK, r.qpsPerCore, r.shardSearchesPerCore, r.p50Ms, r.p99Ms, r.exactMsPerQuery]],
        { items: r.items, dim: enc.dim, k: r.k, per_shard_k: r.perShardK, queries: r.queries, faiss_build: faissBuild(), target: 'recall@100 >= 0.95', build_s: ((enc.timingsMs.tower + enc.timingsMs.build) / 1000).toFixed(1) },
        out,
      );
      // Where would the target be met? The same shards at fixed nprobe values around the configured one.
      const configured = r.shards[0]?.nprobe;
      const sweep = configured === undefined ? [] : sweepNprobe(enc, queries, {
        k: 100, perShardK: config.coordinator.perShardK, index: config.itemShard.index,
        nprobes: [...new Set([configured / 2, configured, configured * 2, configured * 4].map((x) => Math.max(1, Math.round(x))))],
      });
      if (sweep.length > 0) {
        printTable('... the same shards at fixed nprobe (recall target 0.95)', ['nprobe', `recall@${r.k}`, 'queries/s/core (all shards)', 'p50 ms'], sweep.map((x) => [x.nprobe, x.recallAtK, x.qpsPerCore, x.p50Ms]), { per_shard_k: r.perShardK, queries: r.queries }, out);
      }
      // The queries the shards calibrated nprobe on (when the model ships them): the cluster's recall
      // on them, beside its recall on serving user vectors, shows how far the two distributions differ.
      const own = enc.calibrationQueries === undefined ? undefined : measureShardedRecall(enc, enc.calibrationQueries, { k: 100, perShardK: config.coordinator.perShardK, index: config.itemShard.index });
      if (own !== undefined) {
        printTable("... the same shards on the model's own retrieval queries (what the shards calibrated nprobe on)", [`recall@${own.k}`, 'queries'], [[own.recallAtK, own.queries]], {}, out);
        conditions['faiss_calibration_queries'] = { recall_at_100: own.recallAtK, queries: own.queries };
      }
      parts.faiss = { qpsPerCore: r.qpsPerCore, recallAt100: r.recallAtK, ...(own !== undefined ? { recallAt100ModelQueries: own.recallAtK } : {}) };
      conditions['faiss'] = { ...r, nprobe_sweep: sweep, build_ms: enc.timingsMs, query_source: 'user tower embeddings of world users (own country/device, hour 20), no exclusions' };
    } finally {
      await cluster.close();
    }
  }
  if (parts.endToEnd !== undefined && recallAt100 !== undefined) parts.endToEnd = { ...parts.endToEnd, recallAt100 };

  // ---- components in isolation
  if (only.has('onnx')) {
    const { benchOnnxRanker, printOnnx } = await import('./bench/onnx-bench.js');
    const r = await benchOnnxRanker({ modelPath: path.join(modelDir, 'ranker.onnx'), candidates: quick ? 5_000 : 50_000 });
    printOnnx(r);
    const b1 = r.results.find((x) => x.batch === 1)?.candidatesPerSecondPerCore;
    const b512 = r.results.find((x) => x.batch === 512)?.candidatesPerSecondPerCore;
    parts.ranker = { ...(b1 !== undefined ? { batch1: b1 } : {}), ...(b512 !== undefined ? { batch512: b512 } : {}) };
    conditions['ranker'] = { ...r.conditions, results: r.results };
  }
  if (only.has('nats')) {
    const { benchNats, printNats } = await import('./bench/nats-bench.js');
    const r = await benchNats({ requests: quick ? 2_000 : 20_000 });
    printNats(r);
    conditions['nats'] = { ...r.conditions, results: r.results };
  }
  if (only.has('hop')) {
    const { benchHops, printHops } = await import('./bench/hop-bench.js');
    const r = await benchHops(quick ? { hotTrips: 2_000, pacedTrips: 50 } : {});
    printHops(r);
    conditions['worker_hop'] = { ...r.conditions, results: r.results };
  }
  if (only.has('grpc')) {
    const { benchGrpc, printGrpc } = await import('./bench/grpc-bench.js');
    const r = await benchGrpc({ calls: quick ? 2_000 : 20_000 });
    printGrpc(r);
    conditions['grpc'] = { ...r.conditions, results: r.results };
  }
  if (only.has('faiss-synthetic')) {
    const { benchFaiss, printFaiss } = await import('./bench/faiss-bench.js');
    const r = benchFaiss({
      n: numFlag('--n', quick ? 20_000 : 200_000), queries: numFlag('--queries', quick ? 200 : 500),
      targetRecall: numFlag('--recall', 0.95), skipHnsw: process.argv.includes('--skip-hnsw'),
      ...(flag('--spread') !== undefined ? { spread: numFlag('--spread', 0.15) } : {}),
    });
    printFaiss(r);
    conditions['faiss_synthetic'] = r;
  }

  conditions['load_average_at_end'] = loadavg();
  conditions['wall_s'] = Math.round((Date.now() - started) / 1000);
  const ratio = ceilingRatio(parts.endToEnd?.qpsPerCore, parts.ceilingQpsPerCore);
  out(
    `\nceiling ratio = end-to-end QPS per server core / in-process ceiling QPS per core = ${parts.endToEnd?.qpsPerCore?.toFixed(0) ?? 'n/a'} / ${parts.ceilingQpsPerCore?.toFixed(0) ?? 'n/a'} = ${ratio?.toFixed(3) ?? 'n/a'} (goal >= 0.7; goal end-to-end >= 400 QPS/core at p99 <= 50 ms)\n`,
  );
  const file = await writeBenchReport(benchReport(parts), outFile);
  out(`wrote ${file}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

/**
 * A step's logged main-thread stalls for the table, GC pauses and event-loop stalls apart (a long GC
 * pause also shows as a loop stall): e.g. "loop 2 ≤165 ms, gc 1 ≤120 ms (n1 major)"; "0" for none.
 */
function stallText(stalls: readonly NodeStall[]): string {
  const part = (label: string, xs: readonly NodeStall[]): string[] => {
    if (xs.length === 0) return [];
    const worst = xs.reduce((a, b) => (b.ms > a.ms ? b : a));
    const where = worst.what.startsWith('gc ') ? `${worst.node} ${worst.what.slice(3)}` : worst.node;
    return [`${label} ${xs.length} ≤${Math.round(worst.ms)} ms (${where})`];
  };
  const parts = [...part('loop', stalls.filter((x) => !x.what.startsWith('gc '))), ...part('gc', stalls.filter((x) => x.what.startsWith('gc ')))];
  return parts.length === 0 ? '0' : parts.join(', ');
}
