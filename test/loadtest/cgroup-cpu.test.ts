// CPU-quota throttling of the processes under test, read from their cgroup (v2) so a report can
// tell a quota's lock-step stalls from a saturated machine.
import t from 'tap';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cgroupDirOf, parseCpuMax, parseCpuStat, readCgroupCpu, throttlingBetween } from '../../loadtest/measure/cgroup-cpu.js';
import { ProcSampler } from '../../loadtest/measure/proc-sampler.js';

const cpuStat = (periods: number, throttled: number, us: number) =>
  `usage_usec 1065372637\nuser_usec 972072276\nsystem_usec 93300360\nnr_periods ${periods}\nnr_throttled ${throttled}\nthrottled_usec ${us}\nnr_bursts 0\nburst_usec 0\n`;

t.test('parsing cpu.stat and cpu.max', async (t) => {
  t.same(parseCpuStat(cpuStat(120, 7, 350_000)), { periods: 120, throttledPeriods: 7, throttledUs: 350_000 });
  t.equal(parseCpuStat('usage_usec 5\nuser_usec 4\nsystem_usec 1\n'), undefined, 'the cpu controller off: no throttling counters');
  t.equal(parseCpuMax('150000 100000\n'), 1.5);
  t.equal(parseCpuMax('max 100000\n'), null, 'unlimited');
  t.equal(parseCpuMax('garbage'), null);
});

t.test('the cgroup directory of a process, and throttling between readings', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'lt-cgroup-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const proc = path.join(root, 'proc');
  const cg = path.join(root, 'cgroup');
  await mkdir(path.join(proc, '10'), { recursive: true });
  await mkdir(path.join(proc, '11'), { recursive: true });
  await mkdir(path.join(proc, '12'), { recursive: true });
  await writeFile(path.join(proc, '10', 'cgroup'), '0::/kubepods/pod1\n');
  await writeFile(path.join(proc, '11', 'cgroup'), '0::/\n');
  await writeFile(path.join(proc, '12', 'cgroup'), '0::/../../etc\n');
  t.equal(cgroupDirOf(10, proc, cg), path.join(cg, 'kubepods', 'pod1'));
  t.equal(cgroupDirOf(11, proc, cg), cg, 'a cgroup namespace root is the mount itself');
  t.equal(cgroupDirOf(12, proc, cg), path.join(cg, 'etc'), 'a path cannot climb out of the mount');
  t.equal(cgroupDirOf(99, proc, cg), undefined, 'no such process');

  const pod = path.join(cg, 'kubepods', 'pod1');
  await mkdir(pod, { recursive: true });
  t.equal(readCgroupCpu(pod, cg), undefined, 'no cpu.stat: no reading');
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(100, 2, 10_000));
  t.same(readCgroupCpu(pod, cg), { group: pod, periods: 100, throttledPeriods: 2, throttledUs: 10_000, quotaCores: null }, 'no cpu.max: no quota');
  await writeFile(path.join(pod, 'cpu.max'), '200000 100000\n');
  const a = readCgroupCpu(pod, cg)!;
  t.equal(a.quotaCores, 2);
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(180, 32, 910_000));
  const b = readCgroupCpu(pod, cg)!;
  t.same(throttlingBetween(new Map([[pod, a]]), new Map([[pod, b]])), { quotaCores: 2, periods: 80, throttledPeriods: 30, throttledMs: 900 });
  t.equal(throttlingBetween(new Map(), new Map([[pod, b]])), undefined, 'a group read only once has no window');

  // The quota that binds may be an ancestor's: a container without a limit inside a limited pod
  // reads the pod's counters (its subtree's throttling), and the smallest quota on the way up wins.
  const container = path.join(pod, 'ctr');
  await mkdir(container, { recursive: true });
  await writeFile(path.join(container, 'cpu.max'), 'max 100000\n');
  await writeFile(path.join(container, 'cpu.stat'), cpuStat(0, 0, 0));
  t.same(readCgroupCpu(container, cg), { group: pod, periods: 180, throttledPeriods: 32, throttledUs: 910_000, quotaCores: 2 }, 'the pod binds');
  await writeFile(path.join(container, 'cpu.max'), '50000 100000\n');
  t.same(readCgroupCpu(container, cg), { group: container, periods: 0, throttledPeriods: 0, throttledUs: 0, quotaCores: 0.5 }, 'a smaller quota below binds instead');
  await writeFile(path.join(cg, 'cpu.max'), '10000 100000\n');
  t.equal(readCgroupCpu(container, path.join(cg, 'kubepods'))!.quotaCores, 0.5, 'the walk stops at the mount: a file above it is not read');
});

t.test('the sampler reports throttling per window from the processes\' cgroups, each group once', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'lt-cgsampler-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const proc = path.join(root, 'proc');
  const cg = path.join(root, 'cgroup');
  const pod = path.join(cg, 'pod');
  await mkdir(pod, { recursive: true });
  await writeFile(path.join(pod, 'cpu.max'), '400000 100000\n');
  for (const pid of [100, 200]) {
    await mkdir(path.join(proc, String(pid)), { recursive: true });
    await writeFile(path.join(proc, String(pid), 'cgroup'), '0::/pod\n');
  }
  let now = 5_000_000;
  const realNow = Date.now;
  Date.now = () => now;
  t.teardown(() => { Date.now = realNow; });
  // A generator process (pid 300) in another, throttled group is sampled for CPU but its group is not read.
  await mkdir(path.join(proc, '300'), { recursive: true });
  await writeFile(path.join(proc, '300', 'cgroup'), '0::/gen\n');
  await mkdir(path.join(cg, 'gen'), { recursive: true });
  await writeFile(path.join(cg, 'gen', 'cpu.max'), '100000 100000\n');
  await writeFile(path.join(cg, 'gen', 'cpu.stat'), cpuStat(10, 9, 999_000));
  const cluster = [{ name: 'n1', pid: 100 }, { name: 'n2', pid: 200 }];
  const sampler = new ProcSampler({ processes: () => [...cluster, { name: 'generator-0', pid: 300 }], cgroupProcesses: () => cluster, ticksPerSecond: 100, procRoot: proc, cgroupRoot: cg, threads: false });
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(1000, 10, 50_000));
  sampler.sample();
  now += 10_000;
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(1100, 40, 1_250_000));
  await writeFile(path.join(cg, 'gen', 'cpu.stat'), cpuStat(110, 99, 9_999_000));
  sampler.sample();
  t.same(sampler.cpuThrottlingBetween(5_000_000, now), { quotaCores: 4, periods: 100, throttledPeriods: 30, throttledMs: 1200 }, 'two processes in one group count it once');
  t.equal(sampler.cpuThrottlingBetween(now, now), undefined, 'one reading: no window');
  const bare = new ProcSampler({ processes: () => [{ name: 'n1', pid: 100 }], cgroupProcesses: () => [{ name: 'n1', pid: 100 }], ticksPerSecond: 100, procRoot: proc, cgroupRoot: path.join(root, 'none'), threads: false });
  bare.sample();
  now += 1000;
  bare.sample();
  t.equal(bare.cpuThrottlingBetween(0, now), undefined, 'no cgroup files: nothing reported');
});
