import t from 'tap';
import { cpuIdentity, describeCpu, parseCpuinfo } from '../../loadtest/measure/cpu-identity.js';

const block = (flags: string, model = 'AMD EPYC') =>
  `processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: ${model}\nstepping\t: 1\nflags\t\t: ${flags}\n`;

t.test('parseCpuinfo: model, family/model/stepping and the SIMD flags that pick kernels', async (t) => {
  const milan = parseCpuinfo(`${block('fpu sse4_2 avx avx2 fma bmi2')}\n${block('fpu avx512f', 'other')}`);
  t.same(milan, { model: 'AMD EPYC', familyModelStepping: '25/1/1', simd: ['sse4_2', 'avx', 'avx2', 'fma'] }, 'the first processor only');
  t.equal(describeCpu(milan), 'AMD EPYC (25/1/1; avx2 fma)');
  const genoa = parseCpuinfo(block('avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 sse4_2 avx'));
  t.same(genoa.simd, ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16'], 'printed in a fixed order');
  t.equal(describeCpu(parseCpuinfo('processor : 0\n')), 'unknown (unknown; flags unknown)', 'a block without flags: unknown, not absent');
  t.equal(describeCpu(parseCpuinfo(block('fpu sse4_2'))), 'AMD EPYC (25/1/1; no AVX2)', 'flags read, none of the vector ones');
});

t.test('cpuIdentity reads this machine, or falls back to the model name', async (t) => {
  const here = cpuIdentity();
  t.type(here.model, 'string');
  // arm64's /proc/cpuinfo has no family/model/stepping lines: only x64 Linux is checked for them.
  if (process.platform === 'linux' && process.arch === 'x64') t.not(here.familyModelStepping, 'unknown', 'read from /proc/cpuinfo');
  const missing = cpuIdentity('/nonexistent/cpuinfo');
  t.equal(missing.familyModelStepping, 'unknown');
  t.equal(missing.simd, undefined, 'flags unknown');
});
