import t from 'tap';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bytesPerMillion, capacityModel, findCapacity } from '../../loadtest/report/capacity.js';
import { renderHtml, writeReport } from '../../loadtest/report/html.js';
import { runScenario } from '../../loadtest/runner/scenario-runner.js';
import { parseScenario } from '../../loadtest/scenarios/config.js';
import type { Target } from '../../loadtest/target.js';

const stubMain = fileURLToPath(new URL('../../loadtest/stub/main.js', import.meta.url));

/** The stub Recommender in its own process, so its CPU and RSS can be sampled. */
async function startStubProcess(t: { teardown(fn: () => unknown): void }, args: readonly string[] = []): Promise<{ address: string; pid: number }> {
  const child = spawn(process.execPath, [stubMain, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  }));
  const line = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())));
  const m = /on (\S+) \(pid (\d+)\)/.exec(line);
  if (!m) throw new Error(`unexpected stub output ${line}`);
  return { address: m[1]!, pid: Number(m[2]) };
}

t.test('capacity model arithmetic', async (t) => {
  const slo = { p99Ms: 50, maxErrorRate: 0.001 };
  const phases = [
    { name: 'a', throughput: 100, errorRate: 0, latencyMs: { p99: 10 }, serverCpuCores: 0.5, generatorSaturated: false },
    { name: 'b', throughput: 200, errorRate: 0, latencyMs: { p99: 40 }, serverCpuCores: 1.0, generatorSaturated: false },
    { name: 'c', throughput: 250, errorRate: 0, latencyMs: { p99: 80 }, serverCpuCores: 1.2, generatorSaturated: false },
    { name: 'd', throughput: 300, errorRate: 0.01, latencyMs: { p99: 20 }, serverCpuCores: 1.2, generatorSaturated: false },
  ];
  const m = findCapacity(phases, slo)!;
  t.equal(m.phase, 'b', 'highest throughput meeting both p99 and error rate');
  t.equal(m.qpsPerCore, 200);
  t.equal(bytesPerMillion([{ count: 100_000, rssBytes: 500e6 }, { count: 200_000, rssBytes: 600e6 }]), 1e9);
  const inputs = parseScenario({
    kind: 'steady', load: { rate: 1, durationS: 1 },
    capacity: { targetQps: 50_000, headroom: 0.3, coresPerNode: 16, memoryPerNodeGiB: 64, items: 10e6, users: 100e6, userReplicas: 2,
      memory: { bytesPerMillionItems: 1e9, bytesPerMillionUsers: 0.5e9, baseBytesPerNode: 1e9 } },
  }).capacity;
  const c = capacityModel(inputs, m);
  t.equal(c.qpsPerNode, 3200);
  t.equal(c.nodesForTargetQps, Math.ceil(50_000 / (3200 * 0.7)), 'headroom applied');
  // Budget 64 GiB × 0.7 = 44.8 GiB; items 10 GB fit; users 100 GB × 2 replicas over what is left.
  const free = 64 * 2 ** 30 * 0.7 - 1e9 - 10e9;
  t.equal(c.memory.itemGroups, 1);
  t.equal(c.memory.nodesForMemory, Math.ceil(100e9 / free));
  t.equal(c.nodesNeeded, Math.max(c.nodesForTargetQps!, c.memory.nodesForMemory!));
  const none = capacityModel(inputs, undefined);
  t.equal(none.nodesNeeded, undefined);
  t.match(none.notes.join(' '), /No phase met the SLO/);
});

t.test('capacity model: the serial ceiling of one node process, processes per node and their memory', async (t) => {
  const slo = { p99Ms: 50, maxErrorRate: 0.001 };
  const thread = (ms: number) => ({ process: 'n1', thread: 'main', msPerRequest: ms, utilisation: 0.3 });
  // b meets the SLO (200 QPS on 1 core); c misses it and carries another thread: b's is the one used.
  const phases = [
    { name: 'a', throughput: 100, errorRate: 0, latencyMs: { p99: 10 }, serverCpuCores: 0.5, generatorSaturated: false, busiestThread: thread(2.0) },
    { name: 'b', throughput: 200, errorRate: 0, latencyMs: { p99: 40 }, serverCpuCores: 1.0, generatorSaturated: false, busiestThread: thread(1.6) },
    { name: 'c', throughput: 250, errorRate: 0, latencyMs: { p99: 80 }, serverCpuCores: 1.2, generatorSaturated: false, busiestThread: thread(1.0) },
  ];
  const m = findCapacity(phases, slo)!;
  t.equal(m.phase, 'b');
  t.same(m.busiestThread, thread(1.6), 'the SLO phase\'s busiest thread');
  // busiestThreadMaxUtilisation 1 here: the raw ceiling (the bound is tested below).
  const inputs = (items: number, u = 1) => parseScenario({
    kind: 'steady', load: { rate: 1, durationS: 1 },
    capacity: { targetQps: 50_000, headroom: 0.3, coresPerNode: 16, memoryPerNodeGiB: 64, items, users: 100e6, userReplicas: 2, busiestThreadMaxUtilisation: u,
      memory: { bytesPerMillionItems: 1e9, bytesPerMillionUsers: 0.5e9, baseBytesPerNode: 1e9 } },
  }).capacity;
  const budget = 64 * 2 ** 30 * 0.7; // 48,103,633,715.2 bytes

  // 2M items. CPU: 200 QPS/core × 16 = 3200 QPS per machine; the main thread's 1.6 ms per request
  // caps one process at 1000 / 1.6 = 625 QPS, so ⌈3200 / 625⌉ = ⌈5.12⌉ = 6 processes per machine.
  const c = capacityModel(inputs(2e6), m);
  t.equal(c.qpsPerNode, 3200, 'CPU-limited QPS per machine, as before');
  t.equal(c.processCeilingQps, 625);
  t.equal(c.processesPerNode, 6);
  t.equal(c.qpsPerNodeOneProcess, 625);
  t.equal(c.nodesForTargetQps, 23, '⌈50,000 / (3200 × 0.7)⌉ = ⌈22.3⌉');
  t.equal(c.nodesForTargetQpsOneProcess, 115, '⌈50,000 / (625 × 0.7)⌉ = ⌈114.3⌉');
  // Memory: 6 processes × (1 GB base + 2 GB items) = 18 GB per machine; users 100 GB over what is
  // left: 48.10 − 6 − 12 = 30.10 GB → ⌈3.32⌉ = 4 machines (one process each would need ⌈2.22⌉ = 3).
  t.equal(c.memory.processesPerNode, 6);
  t.equal(c.memory.baseBytesPerMachine, 6e9);
  t.equal(c.memory.itemBytesPerMachine, 12e9);
  t.equal(c.memory.itemGroups, 1);
  t.equal(c.memory.nodesForMemory, 4);
  t.equal(c.nodesNeeded, 23, 'CPU decides');
  const notes = c.notes.join(' ');
  t.match(notes, /1000 \/ 1\.6 = 625 QPS/);
  t.match(notes, /6 node processes per machine, each holding every item shard/);
  t.match(notes, /errs low/);
  t.notMatch(notes, /scales linearly/, 'no linear-scaling claim when the ceiling is known');

  // 10M items: 6 × 10 GB = 60 GB exceeds half of (48.10 − 6) GB = 21.05 GB → ⌈2.85⌉ = 3 item groups;
  // 20 GB of items per machine, users 100 GB / 22.10 GB → 5 machines, rounded to groups: 6.
  // CPU: 23 machines per group × 3 groups = 69.
  const big = capacityModel(inputs(10e6), m);
  t.equal(big.memory.itemGroups, 3);
  t.equal(big.memory.itemBytesPerMachine, 20e9);
  t.equal(big.memory.nodesForMemory, 6);
  t.equal(big.nodesNeeded, 69);
  t.equal(Math.ceil((10e9 * 6) / ((budget - 6e9) * 0.5)), 3, 'hand check of the groups');

  // A cheap thread: 0.2 ms → 5000 QPS ≥ 3200, one process per machine uses the cores.
  const cheap = capacityModel(inputs(2e6), { ...m, busiestThread: thread(0.2) });
  t.equal(cheap.processCeilingQps, 5000);
  t.equal(cheap.processesPerNode, 1);
  t.equal(cheap.qpsPerNodeOneProcess, 3200);
  t.equal(cheap.memory.nodesForMemory, 3, 'one copy of the items: 100 GB / (48.10 − 1 − 2) GB = ⌈2.22⌉');

  // No thread data (old report, external target): the old model, with a note saying what is unknown.
  const linear = capacityModel(inputs(2e6), { ...m, busiestThread: undefined });
  t.equal(linear.processCeilingQps, undefined);
  t.equal(linear.processesPerNode, undefined);
  t.equal(linear.memory.processesPerNode, 1);
  t.equal(linear.memory.nodesForMemory, 3);
  t.match(linear.notes.join(' '), /serial ceiling of one node process .* is unknown/);

  // The SLO bound on the busiest thread (default 0.6): a process serves 625 × 0.6 = 375 QPS within
  // the SLO. Still ⌈3200 / 625⌉ = 6 processes (more would only add wake-ups), so the machine serves
  // min(3200, 6 × 375) = 2250 QPS within the SLO: ⌈50,000 / (2250 × 0.7)⌉ = ⌈31.7⌉ = 32 machines.
  t.equal(parseScenario({ kind: 'steady', load: { rate: 1, durationS: 1 } }).capacity.busiestThreadMaxUtilisation, 0.6, 'default bound');
  const bounded = capacityModel(inputs(2e6, 0.6), m);
  t.equal(bounded.processCeilingQps, 625);
  t.equal(bounded.processSloQps, 375);
  t.equal(bounded.processesPerNode, 6);
  t.equal(bounded.qpsPerNodeAtSlo, 2250);
  t.equal(bounded.nodesForTargetQps, 32);
  t.equal(bounded.qpsPerNodeOneProcess, 375);
  t.match(bounded.notes.join(' '), /min\(3,200, 6 × 375\) = 2,250 QPS: the processes' busiest threads, not the cores, decide/);
  t.equal(c.qpsPerNodeAtSlo, 3200, 'with the bound at a full core the cores decide');
  t.match(bounded.notes.join(' '), /below 60% of a core \(busiestThreadMaxUtilisation\): 375 QPS per process/);

  // Requests entering evenly through 5 node processes (every node a coordinator): the thread's 0.32 ms
  // per request of the phase is 1.6 ms per request of its own process, the same ceiling of 625.
  const spread = findCapacity(phases.map((p) => ({ ...p, busiestThread: thread((p.busiestThread?.msPerRequest ?? 0) / 5) })), slo, 5)!;
  t.equal(spread.entryProcesses, 5);
  const five = capacityModel(inputs(2e6), spread);
  t.equal(five.processCeilingQps, 625, 'per own request: 0.32 × 5 = 1.6 ms');
  t.equal(five.processesPerNode, 6);
  t.match(five.notes.join(' '), /1\.6 ms per request of its own process, since the requests entered evenly through 5 node processes/);
  t.equal(findCapacity(phases, slo)!.entryProcesses, undefined, 'one entry process: no field');
});

t.test('a ramp against a real gRPC server yields a report whose HTML holds the SVG plots', async (t) => {
  // A 3 ms answer delay, which the stub reports as its one stage (ranking) when asked for timings.
  const stub = await startStubProcess(t, ['--delay-ms', '3']);
  const events: string[] = [];
  const target: Target = {
    address: stub.address,
    processes: () => [{ name: 'stub', pid: stub.pid }],
    killNode: async (name) => void events.push(`kill ${name}`),
    restartNode: async (name) => void events.push(`restart ${name}`),
  };
  const scenario = parseScenario({
    name: 'ramp-test', kind: 'ramp', generator: { deadlineMs: 20000 }, users: { count: 500 }, videos: { count: 500 }, events: { rate: 20, batchSize: 5 },
    load: { startRate: 50, stepRate: 50, maxRate: 100, stepDurationS: 1 },
    capacity: { memory: { itemSizes: [{ count: 1e5, rssBytes: 4e8 }, { count: 2e5, rssBytes: 5e8 }], bytesPerMillionUsers: 2e8 } },
  });
  const report = await runScenario({ scenario, target, sampleIntervalMs: 200 });
  t.equal(report.phases.length, 2, 'two ramp steps');
  t.same(report.phases.map((p) => p.name), ['step-50', 'step-100']);
  for (const p of report.phases) {
    t.ok(p.completed > 0 && p.completed === p.sent, `${p.name}: every request answered`);
    t.equal(p.outcomes['ranked'], p.completed, `${p.name}: stub answers are ranked`);
  }
  for (const p of report.phases) {
    const st = p.serverStagesMs;
    t.ok(st !== undefined && st.total.count === p.completed, `${p.name}: every answer carried the server's stage timings`);
    t.ok(st !== undefined && st.ranking.count === p.completed && Math.abs(st.ranking.p50 - 3) < 0.1, `${p.name}: the stub's ranking stage, p50 ${st?.ranking.p50} ms ≈ its delay`);
    t.equal(st?.retrieval.count, 0, `${p.name}: stages the stub never ran are not counted`);
  }
  t.ok(report.processes.some((p) => p.name === 'stub' && p.maxRssBytes > 10 * 2 ** 20), 'stub process sampled');
  t.ok(report.timeline.length >= 2, 'timeline per second');
  t.equal(report.capacity.memory.bytesPerMillionItems, 1e9, 'memory per million items from two sizes');

  for (const p of report.phases) {
    const bt = p.busiestThread;
    t.ok(bt && bt.process === 'stub' && bt.cpuSeconds > 0, `${p.name}: busiest thread of the stub (${bt?.thread})`);
    t.ok(bt && bt.msPerRequest !== undefined && Math.abs(bt.msPerRequest - (bt.cpuSeconds * 1000) / p.completed) < 1e-9, `${p.name}: ms per answered request`);
    t.ok(bt && bt.utilisation > 0 && bt.utilisation <= 1.05, `${p.name}: share of a core ${bt?.utilisation}`);
    t.same(p.busiestThreadByProcess['stub'], bt, 'also listed per process');
    t.same(p.topThreads[0], bt, 'first of the top threads');
    t.ok(p.topThreads.length <= 5 && p.topThreads.every((x, i) => i === 0 || x.cpuSeconds <= p.topThreads[i - 1]!.cpuSeconds), 'top threads sorted');
    t.notOk(p.topThreads.some((x) => x.process.startsWith('generator-')), 'generators left out');
  }
  if (report.capacity.measured) {
    const bt = report.capacity.busiestThread!;
    t.equal(report.capacity.processCeilingQps, 1000 / bt.msPerRequest!, 'ceiling from the SLO phase\'s busiest thread');
  }

  // Waiting for a core and the machine's shares, read from /proc where the kernel keeps them.
  if (existsSync('/proc/self/schedstat')) {
    for (const p of report.phases) {
      t.ok(p.runQueueWaitMsPerRequest !== undefined && p.runQueueWaitMsPerRequest >= 0, `${p.name}: the server threads' wait for a core (${p.runQueueWaitMsPerRequest} ms/answer)`);
      t.ok(p.topThreads.length > 0 && p.topThreads.every((x) => x.waitMsPerRequest !== undefined), `${p.name}: each top thread's wait`);
      t.ok(p.machineCpu !== undefined && p.machineCpu.idleShare >= 0 && p.machineCpu.idleShare <= 1 && p.machineCpu.stealShare >= 0, `${p.name}: machine shares ${JSON.stringify(p.machineCpu)}`);
    }
  }
  if (existsSync('/proc/cpuinfo')) t.type(report.conditions.cpuFamilyModelStepping, 'string', 'the CPU identity is in the conditions');

  const html = renderHtml(report);
  if (existsSync('/proc/self/schedstat')) {
    t.match(html, /waited for a core, ms per answer/, 'the wait column');
    t.match(html, /<td>\d+% \/ [\d.]+%<\/td>/, 'machine idle / steal in the phase table');
  }
  t.match(html, /Busiest threads/);
  t.match(html, /stub (main|thread \d+ \([^)]*\)): [\d.]+ ms\/req/, 'busiest thread in the phase table');
  t.match(html, /process ceiling/);
  t.ok((html.match(/<svg /g) ?? []).length >= 7, 'seven SVG charts');
  t.match(html, /Where the time goes: p99 of each server stage/, 'the stage chart');
  t.match(html, /<td>[\d.]+ \(ranking [\d.]+\)<\/td>/, 'the pipeline p99 and its slowest stage (the stub\'s ranking) in the phase table');
  t.match(html, /Latency vs offered load/);
  t.match(html, /Latency over time/);
  t.match(html, /CPU per process/);
  t.match(html, /Capacity model/);
  t.match(html, /<path d="M/, 'lines drawn');
  t.notMatch(html, /<script|<link |src="http/, 'self-contained: no scripts, no external resources');

  const dir = await mkdtemp(path.join(os.tmpdir(), 'lt-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files = await writeReport(report, dir);
  const back = JSON.parse(await readFile(files.json, 'utf8')) as typeof report;
  t.equal(back.phases.length, 2);
  t.ok((await readFile(files.html, 'utf8')).startsWith('<!doctype html>'));
});

t.test('node-loss kills and restarts through the Target and marks both on the timeline', async (t) => {
  const stub = await startStubProcess(t);
  const calls: string[] = [];
  const target: Target = {
    address: stub.address,
    processes: () => [{ name: 'node-1', pid: stub.pid }, { name: 'nats-server', pid: process.pid }],
    killNode: async (name) => void calls.push(`kill ${name}`),
    restartNode: async (name) => void calls.push(`restart ${name}`),
  };
  const scenario = parseScenario({ kind: 'node-loss', users: { count: 100 }, videos: { count: 100 }, load: { rate: 50, durationS: 10, killAtS: 3, restartAtS: 6 } });
  const report = await runScenario({ scenario, target, durationS: 1.5, sampleIntervalMs: 200 });
  t.same(calls, ['kill node-1', 'restart node-1']);
  const labels = report.events.map((e) => e.label);
  t.ok(labels.includes('kill node-1 (start)') && labels.includes('restart node-1 (done)'), labels.join(', '));
  const kill = report.events.find((e) => e.label === 'kill node-1 (start)')!;
  t.ok(kill.tS >= 0.4 && kill.tS < 3, `kill at ${kill.tS} s (0.45 s into a scaled run)`);
  t.match(renderHtml(report), /class="marker"/, 'events drawn as markers');
});
