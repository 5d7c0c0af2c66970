/**
 * Streaming writers for world directories. Lines are batched into ~1 MiB chunks and handed to a
 * file stream; when the stream's buffer is full the writer waits for `drain`, so a generator that
 * awaits every `write` never holds more than a chunk or two of output in memory however many events
 * it produces.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { InteractionEvent } from '../../core/events.js';
import { encodeEvent } from './codec.js';
import type { UserRecord, VideoRecord, WorldManifest } from './format.js';
import { WORLD_FILES, dayFileName } from './format.js';

/** Chunk size handed to the file stream, in UTF-16 code units (≈ bytes for our ASCII lines). */
const CHUNK_CHARS = 1 << 20;

/** Appends NDJSON lines to one file with backpressure. Not safe for concurrent `write` calls. */
export class NdjsonWriter {
  readonly path: string;
  #stream: WriteStream;
  #chunk: string[] = [];
  #chunkChars = 0;
  #lines = 0;
  #bytes = 0;
  #error: Error | undefined;
  #closed = false;

  constructor(path: string) {
    this.path = path;
    this.#stream = createWriteStream(path, { highWaterMark: CHUNK_CHARS });
    this.#stream.on('error', (err) => {
      this.#error = err;
    });
  }

  /** Lines written so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Bytes written so far (UTF-8), counting the newline of each line. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Buffers `line` (no newline inside it) synchronously; returns true when the chunk is full and
   * the caller must `await flush()` before pushing more. The hot-path alternative to
   * {@link writeLine}: no promise per line.
   */
  push(line: string): boolean {
    if (this.#closed) throw new Error(`${this.path}: write after close`);
    this.#chunk.push(line);
    this.#chunkChars += line.length + 1;
    this.#lines += 1;
    return this.#chunkChars >= CHUNK_CHARS;
  }

  /** Appends `line` (no newline inside it) and a newline; resolves once it is safe to continue. */
  async writeLine(line: string): Promise<void> {
    if (this.push(line)) await this.flush();
  }

  /** Appends `JSON.stringify(record)` as a line. */
  writeJson(record: unknown): Promise<void> {
    return this.writeLine(JSON.stringify(record));
  }

  /** Flushes, ends the stream and waits until the file is closed. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    this.#stream.end();
    if (!this.#stream.closed) await once(this.#stream, 'close');
    if (this.#error !== undefined) throw this.#error;
  }

  /** Resolves on `drain`, or on `close` after an error (rethrown by the caller); leaves no listener. */
  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#stream.off('drain', done);
        this.#stream.off('close', done);
        resolve();
      };
      this.#stream.on('drain', done);
      this.#stream.on('close', done);
    });
  }

  /** Hands buffered lines to the file; resolves when the stream can take more (backpressure). */
  async flush(): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    if (this.#chunk.length === 0) return;
    this.#chunk.push('');
    const chunk = this.#chunk.join('\n');
    this.#chunk = [];
    this.#chunkChars = 0;
    this.#bytes += Buffer.byteLength(chunk);
    if (!this.#stream.write(chunk)) await this.#drained();
    if (this.#error !== undefined) throw this.#error;
  }
}

/** Writes events to an {@link NdjsonWriter} with the canonical {@link encodeEvent} encoding. */
export class EventFileWriter {
  readonly #out: NdjsonWriter;
  constructor(path: string) {
    this.#out = new NdjsonWriter(path);
  }
  write(event: InteractionEvent): Promise<void> {
    return this.#out.writeLine(encodeEvent(event));
  }
  /** Synchronous buffering; true when the caller must `await flush()` (see NdjsonWriter.push). */
  push(event: InteractionEvent): boolean {
    return this.#out.push(encodeEvent(event));
  }
  flush(): Promise<void> {
    return this.#out.flush();
  }
  get lines(): number {
    return this.#out.lines;
  }
  get bytes(): number {
    return this.#out.bytes;
  }
  close(): Promise<void> {
    return this.#out.close();
  }
}

/**
 * Builds a world directory atomically: everything goes into a sibling staging directory
 * (`.<name>.staging-<pid>`), and {@link commit} writes `world.json` last and renames the staging
 * directory into place, replacing any previous world of that name. A crash mid-way therefore never
 * leaves a directory that {@link worldExists} (reader.ts) accepts.
 */
export class WorldWriter {
  /** Final directory, e.g. `data/worlds/default`. */
  readonly dir: string;
  /** Where files are written until {@link commit}. */
  readonly stagingDir: string;
  #open = new Set<NdjsonWriter | EventFileWriter>();
  #bytes = 0;

  private constructor(dir: string) {
    this.dir = dir;
    this.stagingDir = join(dirname(dir), `.${basename(dir)}.staging-${process.pid}`);
  }

  /** Creates (or empties) the staging directory for world directory `dir`. */
  static async create(dir: string): Promise<WorldWriter> {
    const w = new WorldWriter(dir);
    await rm(w.stagingDir, { recursive: true, force: true });
    await mkdir(join(w.stagingDir, WORLD_FILES.eventsDir), { recursive: true });
    return w;
  }

  /** Writer for `videos.ndjson`; write records in ascending videoId. */
  videos(): NdjsonWriter {
    return this.#track(new NdjsonWriter(join(this.stagingDir, WORLD_FILES.videos)));
  }

  /** Writer for `users.ndjson`; write records in ascending userId. */
  users(): NdjsonWriter {
    return this.#track(new NdjsonWriter(join(this.stagingDir, WORLD_FILES.users)));
  }

  /** Writer for `events/day-NNN.ndjson`; write events in time order. */
  day(day: number): EventFileWriter {
    return this.#track(new EventFileWriter(join(this.stagingDir, WORLD_FILES.eventsDir, dayFileName(day))));
  }

  /** Writes a small extra file (e.g. README.md, LICENSE) into the world directory. */
  async writeText(name: string, text: string): Promise<void> {
    if (name.includes('/') || name === WORLD_FILES.manifest) throw new TypeError(`writeText: ${name} is not a plain extra file name`);
    await writeFile(join(this.stagingDir, name), text);
  }

  /** Bytes written by writers closed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Closes a writer obtained from this world and counts its bytes. */
  async close(writer: NdjsonWriter | EventFileWriter): Promise<void> {
    await writer.close();
    if (this.#open.delete(writer)) this.#bytes += writer.bytes;
  }

  /** Closes open writers, writes `world.json` and moves the world into place. */
  async commit(manifest: WorldManifest): Promise<void> {
    for (const w of [...this.#open]) await this.close(w);
    await writeFile(join(this.stagingDir, WORLD_FILES.manifest), JSON.stringify(manifest, null, 2) + '\n');
    await rm(this.dir, { recursive: true, force: true });
    await rename(this.stagingDir, this.dir);
  }

  /** Closes writers and deletes the staging directory (after a failure). */
  async abort(): Promise<void> {
    for (const w of [...this.#open]) await w.close().catch(() => undefined);
    this.#open.clear();
    await rm(this.stagingDir, { recursive: true, force: true });
  }

  #track<T extends NdjsonWriter | EventFileWriter>(w: T): T {
    this.#open.add(w);
    return w;
  }
}

/** Video records and user records serialise with JSON.stringify; these fix their key order. */
export function videoLine(v: VideoRecord): string {
  return JSON.stringify({
    videoId: v.videoId,
    creatorId: v.creatorId,
    category: v.category,
    durationS: v.durationS,
    uploadTsMs: v.uploadTsMs,
    tags: v.tags,
    clickbait: v.clickbait,
    quality: v.quality,
  });
}

/** See {@link videoLine}. */
export function userLine(u: UserRecord): string {
  return JSON.stringify({ userId: u.userId, country: u.country, device: u.device, activity: u.activity });
}
