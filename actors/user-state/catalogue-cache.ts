/**
 * One catalogue per node process: the user partitions a node hosts (each in its own worker thread)
 * and its popular actor read the same SharedArrayBuffer-backed columns instead of a copy each.
 *
 * This is a small module-level registry, keyed by (world dir, snapshot dir), reference-counted:
 * {@link acquireCatalogue} loads on first use (in a one-off worker thread, catalogue-worker.ts, from
 * the catalogue file under the snapshot dir when it matches, else from videos.ndjson) and the last
 * {@link CatalogueLease.release} drops it. It is read-only data keyed by its source, so two
 * clusters in one test process share it safely: the same world gives the same bytes.
 */
import { Worker } from 'node:worker_threads';
import type { StatusObject } from '../../core/status.js';
import { UpnextError } from '../../core/status.js';
import type { CatalogueColumns } from './catalogue.js';
import { ItemCatalogue, worldIdentity } from './catalogue.js';

/** workerData of catalogue-worker.ts. */
export interface CatalogueWorkerRequest {
  readonly worldDir: string;
  readonly source: string;
  readonly snapshotDir: string | undefined;
}

/** What catalogue-worker.ts posts back. */
export type CatalogueWorkerReply =
  | { readonly type: 'loaded'; readonly columns: CatalogueColumns; readonly fromFile: boolean; readonly loadMs: number }
  | { readonly type: 'failed'; readonly status: StatusObject };

/** A held reference to a shared catalogue. */
export interface CatalogueLease {
  readonly catalogue: ItemCatalogue;
  /** True when this process read it from the catalogue file rather than parsing videos.ndjson. */
  readonly fromFile: boolean;
  /** Milliseconds the load took (0 for a lease of an already-loaded catalogue). */
  readonly loadMs: number;
  /** Drops this reference; the last one frees the catalogue. Idempotent. */
  release(): void;
}

interface Entry {
  refs: number;
  readonly loading: Promise<{ catalogue: ItemCatalogue; fromFile: boolean; loadMs: number }>;
}

const registry = new Map<string, Entry>();

/** Catalogues currently held by this process (tests, /metrics). */
export function heldCatalogues(): number {
  return registry.size;
}

/** The shared catalogue of `worldDir` (see the module comment). Rejects when the world cannot be read. */
export async function acquireCatalogue(worldDir: string, snapshotDir: string | undefined): Promise<CatalogueLease> {
  const key = `${worldDir}\u0000${snapshotDir ?? ''}`;
  let entry = registry.get(key);
  const first = entry === undefined;
  if (entry === undefined) {
    entry = { refs: 0, loading: loadInWorker(worldDir, snapshotDir) };
    registry.set(key, entry);
  }
  entry.refs++;
  const held = entry;
  let loaded;
  try {
    loaded = await held.loading;
  } catch (err) {
    held.refs--;
    if (registry.get(key) === held) registry.delete(key);
    throw err;
  }
  let released = false;
  return {
    catalogue: loaded.catalogue,
    fromFile: loaded.fromFile,
    loadMs: first ? loaded.loadMs : 0,
    release: () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs === 0 && registry.get(key) === held) registry.delete(key);
    },
  };
}

async function loadInWorker(worldDir: string, snapshotDir: string | undefined): Promise<{ catalogue: ItemCatalogue; fromFile: boolean; loadMs: number }> {
  const request: CatalogueWorkerRequest = { worldDir, snapshotDir, source: await worldIdentity(worldDir) };
  const worker = new Worker(new URL('./catalogue-worker.js', import.meta.url), { workerData: request });
  try {
    const reply = await new Promise<CatalogueWorkerReply>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`catalogue worker exited with code ${code}`)));
    });
    if (reply.type === 'failed') throw UpnextError.fromStatus(reply.status);
    return { catalogue: new ItemCatalogue(reply.columns), fromFile: reply.fromFile, loadMs: reply.loadMs };
  } finally {
    await worker.terminate();
  }
}
