/**
 * Memory per user of the user-state actor, for the capacity model: loads ONE partition holding
 * every user (P = 1) of a world with many users and measures JS heap + array-buffer growth after a
 * forced GC. The embedder is a stub (embeddings are computed per request and cached separately,
 * bounded by `userState.embeddingCacheSize`).
 *
 *   node --expose-gc dist/loadtest/bench/user-memory.js [--users 200000] [--videos 20000] [--days 3]
 *     [--worlds-dir run/bench-worlds]
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import { REPO_ROOT } from '../../core/paths.js';
import { UserStatePartition } from '../../actors/user-state/partition.js';
import type { UserEmbedder } from '../../actors/user-state/user-tower.js';
import { generateWorld } from '../../offline/world/generate.js';
import { worldExists } from '../../offline/world/reader.js';

export interface UserMemoryResult {
  readonly users: number;
  readonly events: number;
  readonly heapBytes: number;
  readonly arrayBufferBytes: number;
  readonly bytesPerUser: number;
}

/** Loads every user of `worldDir` into one partition and reports the memory it added. */
export async function measureUserMemory(worldDir: string): Promise<UserMemoryResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run node with --expose-gc');
  const embedder: UserEmbedder = {
    dim: DEFAULT_FEATURE_SPEC.embeddingDim,
    spec: DEFAULT_FEATURE_SPEC,
    embed: async (users) => new Float32Array(users.length * DEFAULT_FEATURE_SPEC.embeddingDim),
  };
  gc();
  const before = process.memoryUsage();
  const partition = new UserStatePartition({ partition: 0, partitionCount: 1, embedder });
  const loaded = await partition.loadWorld(worldDir);
  gc();
  const after = process.memoryUsage();
  const heapBytes = after.heapUsed - before.heapUsed;
  const arrayBufferBytes = after.arrayBuffers - before.arrayBuffers;
  return { users: loaded.users, events: loaded.events, heapBytes, arrayBufferBytes, bytesPerUser: (heapBytes + arrayBufferBytes) / Math.max(1, loaded.users) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { users: { type: 'string' }, videos: { type: 'string' }, days: { type: 'string' }, 'worlds-dir': { type: 'string' } } });
  const users = Number(values.users ?? 200_000);
  const videos = Number(values.videos ?? 20_000);
  const days = Number(values.days ?? 3);
  const worldsDir = path.resolve(values['worlds-dir'] ?? path.join(REPO_ROOT, 'run', 'bench-worlds'));
  const name = `users-${users}u-${videos}v-${days}d`;
  const dir = path.join(worldsDir, name);
  if (!(await worldExists(dir))) await generateWorld({ name, outDir: worldsDir, videos, users, days, seed: 3 });
  const r = await measureUserMemory(dir);
  process.stdout.write(
    `user-state memory: ${r.users} users with events (${r.events} events), heap +${(r.heapBytes / 2 ** 20).toFixed(1)} MiB, ` +
      `buffers +${(r.arrayBufferBytes / 2 ** 20).toFixed(1)} MiB → ${(r.bytesPerUser / 1024).toFixed(2)} KiB per user ` +
      `(world ${name}; embedding cache excluded)\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  await main();
}
