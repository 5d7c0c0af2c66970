/**
 * One-off worker thread that loads a world's catalogue into SharedArrayBuffer-backed columns
 * (catalogue-cache.ts), so parsing videos.ndjson (seconds on a 1M-video world) never runs on the
 * node's main event loop. It posts the columns (shared, not copied) and exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toStatus } from '../../core/status.js';
import { loadCatalogueColumns } from './catalogue.js';
import type { CatalogueWorkerReply, CatalogueWorkerRequest } from './catalogue-cache.js';

const req = workerData as CatalogueWorkerRequest;
let reply: CatalogueWorkerReply;
try {
  const t0 = performance.now();
  const { columns, fromFile } = await loadCatalogueColumns(req.worldDir, req.source, req.snapshotDir, true);
  reply = { type: 'loaded', columns, fromFile, loadMs: performance.now() - t0 };
} catch (err) {
  reply = { type: 'failed', status: toStatus(err) };
}
parentPort?.postMessage(reply);
