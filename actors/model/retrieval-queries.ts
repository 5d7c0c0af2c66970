/**
 * Reading a model version's retrieval queries (core/model/contract.ts `RETRIEVAL_QUERIES_FILE`):
 * the user vectors item shards calibrate their nprobe on. A model without the manifest entry (older
 * versions, models trained elsewhere) has none, and shards keep the fixed rule; a model whose entry
 * is there but whose file does not match it is broken, and reading it fails loudly instead of
 * calibrating on garbage.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelManifest } from '../../core/model/contract.js';
import { failedPrecondition } from '../../core/status.js';

/** A file name inside the version directory, never a path. */
const PLAIN_FILE_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * The `count × dim` query vectors of the model in `modelDir` whose manifest is `manifest`, or
 * undefined when the manifest has no `retrievalQueries`. FAILED_PRECONDITION when the entry is
 * malformed, its width is not the model's embedding width, the file's size is not count × dim × 4
 * bytes, or a value is not finite.
 */
export async function readRetrievalQueries(modelDir: string, manifest: ModelManifest): Promise<Float32Array | undefined> {
  const info = manifest.retrievalQueries;
  if (info === undefined) return undefined;
  const where = `model ${manifest.version}: manifest retrievalQueries`;
  if (typeof info.file !== 'string' || !PLAIN_FILE_NAME.test(info.file) || info.file === '.' || info.file === '..') {
    throw failedPrecondition(`${where}.file must be a file name in the version directory, got ${JSON.stringify(info.file)}`);
  }
  if (!Number.isInteger(info.count) || info.count < 1) throw failedPrecondition(`${where}.count must be a positive integer, got ${String(info.count)}`);
  const dim = manifest.featureSpec.embeddingDim;
  if (info.dim !== dim) throw failedPrecondition(`${where}.dim is ${String(info.dim)}, the model's embedding width is ${dim}`);
  let bytes: Buffer;
  try {
    bytes = await readFile(path.join(modelDir, info.file));
  } catch (err) {
    throw failedPrecondition(`${where}: cannot read ${info.file}: ${(err as Error).message}`);
  }
  const want = info.count * dim * 4;
  if (bytes.byteLength !== want) throw failedPrecondition(`${where}: ${info.file} holds ${bytes.byteLength} bytes, count × dim × 4 = ${want}`);
  // Copy into an aligned buffer (small files come back in Node's shared pool at any offset).
  // Little-endian: the format's byte order and every platform upnext runs on.
  const vectors = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  for (let i = 0; i < vectors.length; i++) {
    if (!Number.isFinite(vectors[i])) throw failedPrecondition(`${where}: ${info.file} row ${Math.floor(i / dim)} holds a non-finite value`);
  }
  return vectors;
}
