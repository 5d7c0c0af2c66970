import t from 'tap';
import type { Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { busiestThreads, clockTicksPerSecond, machineCpuShares, parseProcStat, parseSchedstat, parseStat, ProcSampler, readProc, threadCpuBetween } from '../../loadtest/measure/proc-sampler.js';
import { serverRunQueueWaitMs } from '../../loadtest/runner/scenario-runner.js';

t.test('reads a real child process: CPU seconds and RSS', async (t) => {
  // The child burns 0.4 s of its own CPU time and holds 150 MB of touched memory, then waits.
  const script = `
    const buf = Buffer.alloc(150 * 1024 * 1024, 1);
    const t0 = process.cpuUsage();
    while (true) { const u = process.cpuUsage(t0); if (u.user + u.system > 400000) break; }
    process.stdout.write('ready\\n');
    setInterval(() => buf[0]++, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const ticks = clockTicksPerSecond();
  t.equal(ticks, 100, 'CLK_TCK on Linux');
  const r = readProc(child.pid!, ticks);
  t.ok(r, 'read /proc');
  t.ok(r!.cpuSeconds >= 0.35, `cpu ${r!.cpuSeconds} s >= 0.35`);
  t.ok(r!.rssBytes >= 150 * 2 ** 20, `rss ${(r!.rssBytes / 2 ** 20).toFixed(0)} MiB >= 150`);

  const sampler = new ProcSampler({ processes: () => [{ name: 'child', pid: child.pid! }], intervalMs: 50 });
  const from = Date.now();
  sampler.start();
  await new Promise((resolve) => setTimeout(resolve, 150));
  sampler.stop();
  const series = sampler.series();
  t.equal(series.length, 1);
  t.ok(series[0]!.points.length >= 2, 'several samples');
  t.ok((sampler.maxRssBetween(from, Date.now())['child'] ?? 0) >= 150 * 2 ** 20);
  t.ok((sampler.cpuSecondsBetween(from, Date.now())['child'] ?? -1) >= 0, 'cpu delta present');
});

t.test('a process that does not exist reads as undefined, and the sampler skips it', async (t) => {
  t.equal(readProc(2 ** 22 + 12345, 100), undefined);
  const sampler = new ProcSampler({ processes: () => [{ name: 'gone', pid: 2 ** 22 + 12345 }], ticksPerSecond: 100 });
  sampler.sample();
  t.same(sampler.series(), []);
});

t.test('parseStat: comm with spaces and parentheses, utime + stime in seconds', async (t) => {
  // Fields: pid (comm) state ppid ... utime(14) stime(15) ...
  const line = (comm: string, utime: number, stime: number) => `42 (${comm}) S 1 42 42 0 -1 4194304 10 0 0 0 ${utime} ${stime} 0 0 20 0 1 0 100 0 0\n`;
  t.same(parseStat(line('node', 150, 50), 100), { comm: 'node', cpuSeconds: 2 });
  t.same(parseStat(line('a b) (c', 3, 1), 100), { comm: 'a b) (c', cpuSeconds: 0.04 }, 'name ends at the last )');
  t.same(parseStat(line('x', 250, 0), 250), { comm: 'x', cpuSeconds: 1 }, 'ticks per second applied');
  t.equal(parseStat('', 100), undefined);
  t.equal(parseStat('42 (node) S 1', 100), undefined, 'truncated line');
});

/** A fake /proc: <root>/<pid>/stat, status and task/<tid>/stat, rewritten between samples. */
async function fakeProc(root: string, pid: number, procTicks: number, threads: ReadonlyArray<{ tid: number; comm: string; ticks: number }>): Promise<void> {
  const stat = (tid: number, comm: string, ticks: number) => `${tid} (${comm}) S 1 ${pid} ${pid} 0 -1 4194304 10 0 0 0 ${ticks} 0 0 0 20 0 1 0 100 0 0\n`;
  await mkdir(path.join(root, String(pid), 'task'), { recursive: true });
  await writeFile(path.join(root, String(pid), 'stat'), stat(pid, 'node', procTicks));
  await writeFile(path.join(root, String(pid), 'status'), 'Name:\tnode\nVmRSS:\t  2048 kB\n');
  for (const th of threads) {
    await mkdir(path.join(root, String(pid), 'task', String(th.tid)), { recursive: true });
    await writeFile(path.join(root, String(pid), 'task', String(th.tid), 'stat'), stat(th.tid, th.comm, th.ticks));
  }
}

t.test('thread sampling over a fake /proc: busiest thread per process and overall', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'lt-fakeproc-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  let now = 1_000_000;
  const realNow = Date.now;
  Date.now = () => now;
  t.teardown(() => { Date.now = realNow; });
  const sampler = new ProcSampler({ processes: () => [{ name: 'n1', pid: 100 }, { name: 'n2', pid: 200 }], ticksPerSecond: 100, procRoot: root });

  // Sample 1 at t = 0 s.
  await fakeProc(root, 100, 1000, [{ tid: 100, comm: 'node', ticks: 500 }, { tid: 101, comm: 'node', ticks: 300 }, { tid: 102, comm: 'libuv-worker', ticks: 10 }]);
  await fakeProc(root, 200, 400, [{ tid: 200, comm: 'node', ticks: 100 }, { tid: 201, comm: 'node', ticks: 50 }]);
  sampler.sample();
  // Sample 2 at t = 10 s: n1 main +2.35 s, worker 101 +1.65 s, a new worker 103 started with 1.9 s;
  // n2 main +0.5 s, worker 201 +0.9 s.
  now += 10_000;
  await fakeProc(root, 100, 1600, [{ tid: 100, comm: 'node', ticks: 735 }, { tid: 101, comm: 'node', ticks: 465 }, { tid: 102, comm: 'libuv-worker', ticks: 10 }, { tid: 103, comm: 'node', ticks: 190 }]);
  await fakeProc(root, 200, 540, [{ tid: 200, comm: 'node', ticks: 150 }, { tid: 201, comm: 'node', ticks: 140 }]);
  sampler.sample();

  const s = sampler.series().find((x) => x.name === 'n1')!;
  t.same(s.points[0]!.threads!.map((x) => x.tid).sort(), [100, 101, 102], 'every task read');
  const b = sampler.busiestThreadsBetween(1_000_000, now, 3);
  t.equal(b.byProcess['n1']!.tid, 100);
  t.equal(b.byProcess['n1']!.name, 'main', 'tid = pid is the main thread');
  t.ok(Math.abs(b.byProcess['n1']!.cpuSeconds - 2.35) < 1e-9, `n1 main ${b.byProcess['n1']!.cpuSeconds} s`);
  t.equal(b.byProcess['n2']!.tid, 201, 'a worker can be the busiest');
  t.equal(b.byProcess['n2']!.name, 'node');
  t.ok(Math.abs(b.byProcess['n2']!.cpuSeconds - 0.9) < 1e-9);
  t.same(b.top.map((x) => [x.process, x.tid]), [['n1', 100], ['n1', 103], ['n1', 101]], 'top 3: a thread born in the window counts from 0');
  t.ok(Math.abs(sampler.cpuSecondsBetween(1_000_000, now)['n1']! - 6) < 1e-9, 'process totals unchanged');

  // A window holding one sample has no deltas.
  t.same(sampler.busiestThreadsBetween(now, now), { byProcess: {}, top: [] });
  // Thread sampling off: no thread data, nothing busiest.
  const off = new ProcSampler({ processes: () => [{ name: 'n1', pid: 100 }], ticksPerSecond: 100, procRoot: root, threads: false });
  off.sample();
  now += 1000;
  off.sample();
  t.equal(off.series()[0]!.points[0]!.threads, undefined);
  t.same(off.busiestThreadsBetween(0, now).top, []);
});

t.test('busiestThreads: per process the max, overall sorted, ties to the lower tid', async (t) => {
  const th = (process: string, tid: number, cpuSeconds: number) => ({ process, pid: 1, tid, name: 'node', cpuSeconds, runQueueWaitSeconds: undefined });
  const b = busiestThreads([th('a', 5, 1), th('a', 3, 2), th('b', 9, 2), th('b', 7, 0.5), th('a', 4, 2)], 2);
  t.equal(b.byProcess['a']!.tid, 3, 'tie between tid 3 and 4 at 2 s');
  t.equal(b.byProcess['b']!.tid, 9);
  t.same(b.top.map((x) => x.tid), [3, 4]);
  t.same(threadCpuBetween([], 0, 1), []);
});

/**
 * Waits for a line on a child's stdout; rejects when the child fails to start or exits first, so a
 * child that dies never leaves a test waiting for tap's timeout.
 */
function lineWaiter(child: ChildProcess): (want: string) => Promise<void> {
  const lines: string[] = [];
  let failed: Error | undefined;
  const checks = new Set<() => void>();
  const notify = () => checks.forEach((c) => c());
  child.stdout?.on('data', (d: Buffer) => { lines.push(...d.toString().split('\n').filter(Boolean)); notify(); });
  child.once('error', (e) => { failed = e; notify(); });
  child.once('exit', (code) => { failed ??= new Error(`the child exited (code ${code})`); notify(); });
  return (want) => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (lines.includes(want)) { checks.delete(check); resolve(); } else if (failed) { checks.delete(check); reject(failed); }
    };
    checks.add(check);
    check();
  });
}

/**
 * Runs a child that prints "ready", works when sent a line and prints "done"; samples it (as
 * "child") just before the line and just after "done".
 */
async function sampleAroundWork(t: Test, command: string, args: readonly string[]): Promise<{ sampler: ProcSampler; from: number; to: number; pid: number }> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  const waitFor = lineWaiter(child);
  await waitFor('ready');
  const sampler = new ProcSampler({ processes: () => [{ name: 'child', pid: child.pid! }] });
  const from = Date.now();
  sampler.sample();
  child.stdin?.write('go\n');
  await waitFor('done');
  sampler.sample();
  return { sampler, from, to: Date.now(), pid: child.pid! };
}

t.test('a real process whose worker thread burns CPU: that worker is its busiest thread', async (t) => {
  // The main thread idles; one worker spins 0.3 s of CPU after the first sample, then stays alive
  // (an exited thread leaves /proc/<pid>/task, and its CPU with it, before the second sample).
  const script = `
    const { Worker } = require('node:worker_threads');
    process.stdout.write('ready\\n');
    process.stdin.once('data', () => {
      new Worker("const c0 = process.cpuUsage(); while (true) { const u = process.cpuUsage(c0); if (u.user + u.system > 300000) break; } require('node:worker_threads').parentPort.postMessage('done'); setInterval(() => {}, 1000)", { eval: true })
        .once('message', () => process.stdout.write('done\\n'));
    });
    setInterval(() => {}, 1000);`;
  const { sampler, from, to, pid } = await sampleAroundWork(t, process.execPath, ['-e', script]);
  const b = sampler.busiestThreadsBetween(from, to);
  const top = b.byProcess['child']!;
  t.ok(top, 'child threads read from /proc/<pid>/task');
  t.not(top.tid, pid, 'not the main thread');
  t.ok(top.cpuSeconds >= 0.25, `worker used ${top.cpuSeconds} s`);
});

t.test('parseSchedstat, parseProcStat and machineCpuShares', async (t) => {
  t.equal(parseSchedstat('123456789 2500000000 42\n'), 2.5, 'field 2, ns to s');
  t.equal(parseSchedstat('1 0 1'), 0);
  t.equal(parseSchedstat(''), undefined);
  t.equal(parseSchedstat('1 2'), undefined, 'truncated');
  t.equal(parseSchedstat('1 x 3'), undefined);
  t.equal(parseSchedstat('0 0 0\n'), undefined, 'a kernel without scheduler statistics writes zeros: unknown, not 0');
  // guest and guest_nice (the last two) are already inside user and nice: not counted again.
  const a = parseProcStat('cpu  100 10 40 800 20 5 5 20 30 7\ncpu0 50 5 20 400 10 2 3 10 0 0\n');
  t.same(a, { totalTicks: 1000, idleTicks: 820, stealTicks: 20 });
  t.same(parseProcStat('cpu  1 2 3 4\n'), { totalTicks: 10, idleTicks: 4, stealTicks: 0 }, 'an old kernel without iowait..steal');
  t.equal(parseProcStat('cpu0 1 2 3 4\n'), undefined, 'not the aggregate line');
  t.equal(parseProcStat('intr 1 2 3'), undefined);
  const b = parseProcStat('cpu  400 10 140 1100 20 5 5 120 90 7\n')!;
  const shares = machineCpuShares(a!, b)!;
  // 800 ticks passed: 300 idle, 100 stolen.
  t.ok(Math.abs(shares.idleShare - 0.375) < 1e-12, `idle ${shares.idleShare}`);
  t.ok(Math.abs(shares.stealShare - 0.125) < 1e-12, `steal ${shares.stealShare}`);
  t.equal(machineCpuShares(a!, a!), undefined, 'no time passed');
});

t.test('run-queue wait and machine shares over a fake /proc', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'lt-fakesched-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  let now = 2_000_000;
  const realNow = Date.now;
  Date.now = () => now;
  t.teardown(() => { Date.now = realNow; });
  const sampler = new ProcSampler({ processes: () => [{ name: 'n1', pid: 300 }], ticksPerSecond: 100, procRoot: root });
  const write = async (threads: ReadonlyArray<{ tid: number; ticks: number; waitNs?: number }>, cpuLine: string) => {
    await fakeProc(root, 300, 100, threads.map((x) => ({ tid: x.tid, comm: 'node', ticks: x.ticks })));
    for (const x of threads) {
      const f = path.join(root, '300', 'task', String(x.tid), 'schedstat');
      if (x.waitNs !== undefined) await writeFile(f, `${x.ticks * 1e7} ${x.waitNs} 10\n`);
      else await rm(f, { force: true });
    }
    await writeFile(path.join(root, 'stat'), `${cpuLine}\ncpu0 0 0 0 0\n`);
  };
  // t = 0: main waited 1 s so far, worker 301 0.5 s, 302 has no schedstat.
  await write([{ tid: 300, ticks: 100, waitNs: 1e9 }, { tid: 301, ticks: 50, waitNs: 5e8 }, { tid: 302, ticks: 10 }], 'cpu  100 0 0 900 0 0 0 0 0 0');
  sampler.sample();
  // t = 10 s: main +0.25 s of wait, 301 +0.5 s, a new thread 303 born with 0.125 s.
  now += 10_000;
  await write([{ tid: 300, ticks: 200, waitNs: 1.25e9 }, { tid: 301, ticks: 90, waitNs: 1e9 }, { tid: 302, ticks: 20 }, { tid: 303, ticks: 5, waitNs: 1.25e8 }], 'cpu  700 0 0 1200 0 0 0 100 0 0');
  sampler.sample();
  const waits = new Map(sampler.threadCpuBetween(2_000_000, now).map((x) => [x.tid, x.runQueueWaitSeconds]));
  t.equal(waits.get(300), 0.25);
  t.equal(waits.get(301), 0.5);
  t.equal(waits.get(302), undefined, 'no schedstat: unknown, not 0');
  t.equal(waits.get(303), 0.125, 'born in the window: counts from 0');
  const m = sampler.machineCpuBetween(2_000_000, now)!;
  t.ok(Math.abs(m.idleShare - 0.3) < 1e-12 && Math.abs(m.stealShare - 0.1) < 1e-12, `machine ${JSON.stringify(m)}`);
  t.equal(sampler.machineCpuBetween(now, now), undefined, 'one reading: no shares');
});

t.test('serverRunQueueWaitMs: the target and nats-server, never the generators', async (t) => {
  const th = (process: string, tid: number, wait: number | undefined) => ({ process, pid: 1, tid, name: 'node', cpuSeconds: 1, runQueueWaitSeconds: wait });
  const names = new Set(['n1', 'n2']);
  t.equal(serverRunQueueWaitMs([th('n1', 1, 0.5), th('n2', 2, 0.25), th('nats-server', 3, 0.125), th('generator-0', 4, 9), th('other', 5, 9)], names), 875);
  t.equal(serverRunQueueWaitMs([th('n1', 1, undefined), th('generator-0', 4, 9)], names), undefined, 'no server reading');
  t.equal(serverRunQueueWaitMs([th('n1', 1, 0), th('n1', 2, undefined)], names), 0, 'a reading of 0 is a reading');
});

/** The first CPU this process may run on, when taskset can pin a process to it; else why not. */
function pinnableCpu(): { cpu: string } | { skip: string } {
  if (process.platform !== 'linux') return { skip: 'Linux only' };
  const cpu = /^Cpus_allowed_list:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  const r = spawnSync('taskset', ['-c', cpu, 'true']);
  return r.status === 0 ? { cpu } : { skip: `taskset cannot pin to CPU ${cpu} here (${r.error?.message ?? `exit ${r.status}`})` };
}
const pin = pinnableCpu();

t.test('a real process whose two busy threads share one CPU: each waits for it', { skip: 'skip' in pin ? pin.skip : false }, async (t) => {
  // Pinned to one CPU, the main thread and a worker spin together until the process has used
  // ~0.3 s of CPU (process.cpuUsage counts both threads): one runs while the other waits, so their
  // run-queue waits add up to a large share of that. This shows the real files are read and that
  // contention shows in them; which field is the wait, and the window arithmetic, are pinned by the
  // literal and fake-/proc tests above.
  const allowed = 'cpu' in pin ? pin.cpu : '0';
  const script = `
    const { Worker } = require('node:worker_threads');
    const spin = (ms) => { const u0 = process.cpuUsage(); const t0 = Date.now(); while (true) { const u = process.cpuUsage(u0); if (u.user + u.system > ms * 1000 || Date.now() - t0 > 5000) break; } };
    process.stdin.once('data', () => {
      const w = new Worker('(' + spin.toString() + ')(300); require("node:worker_threads").parentPort.postMessage("done"); setInterval(() => {}, 1000)', { eval: true });
      let left = 2;
      const done = () => { if (--left === 0) process.stdout.write('done\\n'); };
      w.once('message', done);
      w.once('online', () => { spin(300); done(); });
    });
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  const { sampler, from, to } = await sampleAroundWork(t, 'taskset', ['-c', allowed, process.execPath, '-e', script]);
  const threads = sampler.threadCpuBetween(from, to);
  const wait = serverRunQueueWaitMs(threads, new Set(['child']));
  t.ok(wait !== undefined, 'schedstat read');
  t.ok(wait! >= 100, `threads waited ${wait} ms for the one CPU`);
});
