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
  t.same(parseCpuStat('nr_periods 3\nnr_throttled 1\nthrottled_time 2000000\n'), { periods: 3, throttledPeriods: 1, throttledUs: 2000 }, 'cgroup v1: throttled_time in ns');
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
  t.equal(readCgroupCpu(pod), undefined, 'no cpu.stat: no reading');
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(100, 2, 10_000));
  t.same(readCgroupCpu(pod), { periods: 100, throttledPeriods: 2, throttledUs: 10_000, quotaCores: null }, 'no cpu.max: no quota');
  await writeFile(path.join(pod, 'cpu.max'), '200000 100000\n');
  const a = readCgroupCpu(pod)!;
  t.equal(a.quotaCores, 2);
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(180, 32, 910_000));
  const b = readCgroupCpu(pod)!;
  t.same(throttlingBetween(new Map([[pod, a]]), new Map([[pod, b]])), { quotaCores: 2, periods: 80, throttledPeriods: 30, throttledMs: 900 });
  t.equal(throttlingBetween(new Map(), new Map([[pod, b]])), undefined, 'a group read only once has no window');
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
  const sampler = new ProcSampler({ processes: () => [{ name: 'n1', pid: 100 }, { name: 'n2', pid: 200 }], ticksPerSecond: 100, procRoot: proc, cgroupRoot: cg, threads: false });
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(1000, 10, 50_000));
  sampler.sample();
  now += 10_000;
  await writeFile(path.join(pod, 'cpu.stat'), cpuStat(1100, 40, 1_250_000));
  sampler.sample();
  t.same(sampler.cpuThrottlingBetween(5_000_000, now), { quotaCores: 4, periods: 100, throttledPeriods: 30, throttledMs: 1200 }, 'two processes in one group count it once');
  t.equal(sampler.cpuThrottlingBetween(now, now), undefined, 'one reading: no window');
  const bare = new ProcSampler({ processes: () => [{ name: 'n1', pid: 100 }], ticksPerSecond: 100, procRoot: proc, cgroupRoot: path.join(root, 'none'), threads: false });
  bare.sample();
  now += 1000;
  bare.sample();
  t.equal(bare.cpuThrottlingBetween(0, now), undefined, 'no cgroup files: nothing reported');
});
