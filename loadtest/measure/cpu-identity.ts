/**
 * Which CPU a measurement ran on, as precisely as a VM lets us say. The model name alone is not
 * enough: the development VM reports "AMD EPYC" for hosts of different generations, and two rounds'
 * figures on "the same" box differed 2–4× (docs/capacity.md, "Which CPU"): ONNX Runtime's and
 * faiss's kernels depend on the SIMD extensions (AVX-512 or only AVX2), and family/model/stepping
 * tell the generations apart. Read from /proc/cpuinfo (Linux); elsewhere only the model name.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** SIMD extensions that decide which kernels faiss and ONNX Runtime run, in the order printed. */
const SIMD_FLAGS = ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_tile'] as const;

export interface CpuIdentity {
  /** `model name`, e.g. "AMD EPYC" on a VM that hides the rest. */
  readonly model: string;
  /** "family/model/stepping" as /proc/cpuinfo numbers them, e.g. "25/1/1"; "unknown" when unread. */
  readonly familyModelStepping: string;
  /** Which of {@link SIMD_FLAGS} the CPU has, in that order; undefined when the flags could not be read. */
  readonly simd: readonly string[] | undefined;
}

/** Parses the first processor block of a /proc/cpuinfo text. Pure. */
export function parseCpuinfo(text: string): CpuIdentity {
  const first = text.split(/\n\s*\n/)[0] ?? '';
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(first);
    return m?.[1]?.trim();
  };
  const family = field('cpu family');
  const model = field('model');
  const stepping = field('stepping');
  const flagLine = field('flags');
  const flags = new Set((flagLine ?? '').split(/\s+/).filter(Boolean));
  return {
    model: field('model name') ?? 'unknown',
    familyModelStepping: family !== undefined && model !== undefined && stepping !== undefined ? `${family}/${model}/${stepping}` : 'unknown',
    simd: flagLine === undefined ? undefined : SIMD_FLAGS.filter((f) => flags.has(f)),
  };
}

/** This machine's CPU; falls back to os.cpus()'s model name where /proc/cpuinfo cannot be read. */
export function cpuIdentity(cpuinfoPath = '/proc/cpuinfo'): CpuIdentity {
  try {
    return parseCpuinfo(readFileSync(cpuinfoPath, 'utf8'));
  } catch {
    return { model: os.cpus()[0]?.model ?? 'unknown', familyModelStepping: 'unknown', simd: undefined };
  }
}

/** One line for tables and reports: "AMD EPYC (25/1/1; avx2 fma)". */
export function describeCpu(c: CpuIdentity): string {
  if (c.simd === undefined) return `${c.model} (${c.familyModelStepping}; flags unknown)`;
  const simd = c.simd.filter((f) => f !== 'sse4_2' && f !== 'avx');
  return `${c.model} (${c.familyModelStepping}; ${simd.length > 0 ? simd.join(' ') : 'no AVX2'})`;
}
