import t from 'tap';
import { spawn } from 'node:child_process';
import { clockTicksPerSecond, ProcSampler, readProc } from '../../loadtest/measure/proc-sampler.js';

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
