/**
 * Chooses the ONNX Runtime execution provider. The CUDA provider is never required: onnxruntime-node
 * lists 'cuda' on linux/x64 but ships its provider library only when installed with CUDA binaries
 * (`ONNXRUNTIME_NODE_INSTALL_CUDA=v12`, fetched from NuGet), and a machine may have no GPU. The
 * WebGPU provider (Dawn over Vulkan) is bundled, but it is opt-in: its ~2.8 ms floor per run on an
 * H200 made it slower than one CPU core below ~4,000 rows per run (docs/capacity.md). The decision is a pure
 * function of a probe, so it is unit-tested; the probe itself looks at the files and devices.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ExecutionProviderChoice, ExecutionProviderName } from './options.js';

/** What the machine offers. */
export interface ExecutionProviderProbe {
  /** onnxruntime-node lists 'cuda' in listSupportedBackends(). */
  readonly cudaListed: boolean;
  /** libonnxruntime_providers_cuda.so sits beside the native binding. */
  readonly cudaLibraryPresent: boolean;
  /** An NVIDIA GPU is visible (/dev/nvidiactl or /proc/driver/nvidia). */
  readonly gpuVisible: boolean;
}

/** What the workers should try. */
export interface ExecutionProviderPlan {
  /** Provider tried first. */
  readonly primary: ExecutionProviderName;
  /** When the primary fails to create a session, fall back to CPU (only for 'auto'). */
  readonly fallbackToCpu: boolean;
  /** Why, for the log line. */
  readonly reason: string;
}

export function planExecutionProvider(requested: ExecutionProviderChoice, probe: ExecutionProviderProbe): ExecutionProviderPlan {
  switch (requested) {
    case 'cpu':
      return { primary: 'cpu', fallbackToCpu: false, reason: 'CPU requested' };
    case 'cuda':
      // Asked for explicitly: try it even if the probe doubts it, and fail loudly if it fails.
      return { primary: 'cuda', fallbackToCpu: false, reason: 'CUDA requested' };
    case 'webgpu':
      // Needs libvulkan.so.1 and a Vulkan driver (docs/operations.md); fails the start without them.
      return { primary: 'webgpu', fallbackToCpu: false, reason: 'WebGPU requested' };
    case 'auto': {
      const missing: string[] = [];
      if (!probe.cudaListed) missing.push('onnxruntime-node lists no cuda backend');
      if (!probe.cudaLibraryPresent) missing.push('no libonnxruntime_providers_cuda.so (install with ONNXRUNTIME_NODE_INSTALL_CUDA=v12)');
      if (!probe.gpuVisible) missing.push('no NVIDIA GPU visible');
      return missing.length === 0
        ? { primary: 'cuda', fallbackToCpu: true, reason: 'CUDA provider and GPU present' }
        : { primary: 'cpu', fallbackToCpu: false, reason: `CPU: ${missing.join('; ')}` };
    }
  }
}

/** Looks at this machine. Cheap (a few stat calls); call it once per start or reload. */
export function probeExecutionProviders(): ExecutionProviderProbe {
  const require = createRequire(import.meta.url);
  let cudaListed = false;
  let cudaLibraryPresent = false;
  try {
    const ort = require('onnxruntime-node') as { listSupportedBackends?: () => { name: string }[] };
    cudaListed = (ort.listSupportedBackends?.() ?? []).some((b) => b.name === 'cuda');
    const pkgDir = path.dirname(require.resolve('onnxruntime-node/package.json'));
    const binRoot = path.join(pkgDir, 'bin');
    for (const napi of existsSync(binRoot) ? readdirSync(binRoot) : []) {
      if (existsSync(path.join(binRoot, napi, process.platform, process.arch, 'libonnxruntime_providers_cuda.so'))) {
        cudaLibraryPresent = true;
      }
    }
  } catch {
    // No onnxruntime-node at all: the pool will fail to start with a clearer error.
  }
  const gpuVisible = existsSync('/dev/nvidiactl') || existsSync('/proc/driver/nvidia/version');
  return { cudaListed, cudaLibraryPresent, gpuVisible };
}
