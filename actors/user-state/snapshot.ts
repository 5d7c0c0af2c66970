/**
 * On-disk snapshot of a user partition's profiles, so a restart skips replaying the world (DESIGN
 * §2: "rebuilt from snapshot + event-stream replay"; §6: "restore from snapshot, replay the stream
 * from the snapshot's sequence"). Layout of `<snapshotDir>/user-partition-<p>-of-<P>-<world id>/`:
 * - `profiles.bin` — {@link UserProfileColumns} as little-endian typed arrays back to back, in
 *   {@link SECTIONS} order (no JSON per user);
 * - `meta.json` — {@link UserSnapshotMeta}, written last, so its presence marks a complete snapshot.
 * The folder is written under a temporary name and renamed into place (core/replace-dir.ts).
 *
 * Two snapshots per partition ({@link UserSnapshotKind}): the 'bootstrap' one above (the world's
 * history only, appliedSeq 0: valid whatever the event stream holds) and a 'live' one,
 * `<same name>.live/`, written periodically by the replica that owns the partition
 * (snapshot-writer.ts) with the event-stream sequence it applied and the identity of that stream
 * ({@link UserSnapshotMeta.stream}). Keeping the bootstrap apart means a live snapshot that no
 * longer fits the stream (deleted and created again) falls back to a restore, not a world replay.
 * Replicas of one partition on one machine share the folder: a writer leaves the live snapshot
 * alone when it already holds the same stream at a sequence at least as high
 * ({@link writeLiveUserSnapshot}), and every write is atomic, so a reader always finds one whole
 * snapshot, at worst a little older than the newest.
 *
 * A snapshot is restored only when its partition, P, world identity and feature-spec hash all match
 * (a profile's category affinities and recent-list semantics follow the spec); otherwise the
 * partition is rebuilt from the world and the snapshot replaced.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { replaceDir } from '../../core/replace-dir.js';
import path from 'node:path';

/** Bump when the layout changes; older snapshots are then refused (rebuilt). */
export const USER_SNAPSHOT_FORMAT = 1;

/** What a snapshot must match to be restored. */
export interface UserSnapshotKey {
  readonly partition: number;
  readonly partitionCount: number;
  /** World identity (name@createdAt, see item-shard/bootstrap.ts worldSource). */
  readonly source: string;
  /** specHash of the feature spec the profiles were built with. */
  readonly featureSpecHash: string;
}

/** `meta.json` of a snapshot. */
export interface UserSnapshotMeta extends UserSnapshotKey {
  readonly format: number;
  readonly users: number;
  readonly recentEntries: number;
  readonly numCategories: number;
  /** Highest event-stream sequence applied; the stream consumer resumes after it. */
  readonly appliedSeq: number;
  /**
   * Identity of the event stream `appliedSeq` counts in (stream.ts EventStreamInfo.identity); ''
   * when unknown (no stream followed, or a snapshot written before identities were recorded).
   * Only meaningful when appliedSeq > 0.
   */
  readonly stream?: string;
  readonly createdAt: string;
}

/** Which of a partition's snapshots (see the module comment). */
export type UserSnapshotKind = 'bootstrap' | 'live';

/**
 * Profiles of one partition as columns. Row u: user `userIds[u]`; its counters at
 * `counters[u*5 ..]` (impressions, clicks, watches, watchSeconds, lastEventMs); its recent list at
 * `recentVideoIds/recentCreatorIds[recentOffsets[u] .. recentOffsets[u+1])`, oldest first; its
 * category affinities at `affinity[u*numCategories ..]`.
 */
export interface UserProfileColumns {
  readonly numCategories: number;
  readonly appliedSeq: number;
  readonly userIds: Float64Array;
  readonly counters: Float64Array;
  readonly recentOffsets: Uint32Array;
  readonly recentVideoIds: Float64Array;
  readonly recentCreatorIds: Float64Array;
  readonly affinity: Float32Array;
}

/** Counter columns per user, in order. */
export const USER_COUNTER_FIELDS = ['impressions', 'clicks', 'watches', 'watchSeconds', 'lastEventMs'] as const;

const SECTIONS = ['userIds', 'counters', 'recentOffsets', 'recentVideoIds', 'recentCreatorIds', 'affinity'] as const;
type Section = (typeof SECTIONS)[number];
const CTORS: Record<Section, Float64ArrayConstructor | Uint32ArrayConstructor | Float32ArrayConstructor> = {
  userIds: Float64Array,
  counters: Float64Array,
  recentOffsets: Uint32Array,
  recentVideoIds: Float64Array,
  recentCreatorIds: Float64Array,
  affinity: Float32Array,
};

function sectionLengths(users: number, recent: number, numCategories: number): Record<Section, number> {
  return {
    userIds: users,
    counters: users * USER_COUNTER_FIELDS.length,
    recentOffsets: users + 1,
    recentVideoIds: recent,
    recentCreatorIds: recent,
    affinity: users * numCategories,
  };
}

const pad8 = (n: number): number => (n + 7) & ~7;
const FILES = { profiles: 'profiles.bin', meta: 'meta.json' } as const;

/** `<snapshotDir>/user-partition-<p>-of-<P>-<world id>`. */
export function userSnapshotPath(snapshotDir: string, key: Pick<UserSnapshotKey, 'partition' | 'partitionCount' | 'source'>): string {
  const world = key.source.replace(/[^A-Za-z0-9_.-]/g, '_');
  return path.join(snapshotDir, `user-partition-${key.partition}-of-${key.partitionCount}-${world}`);
}

/** `<snapshotDir>/user-partition-<p>-of-<P>-<world id>.live`: the periodic snapshot. */
export function userLiveSnapshotPath(snapshotDir: string, key: Pick<UserSnapshotKey, 'partition' | 'partitionCount' | 'source'>): string {
  return `${userSnapshotPath(snapshotDir, key)}.live`;
}

function snapshotPathOf(snapshotDir: string, key: UserSnapshotKey, kind: UserSnapshotKind): string {
  return kind === 'live' ? userLiveSnapshotPath(snapshotDir, key) : userSnapshotPath(snapshotDir, key);
}

/** Options of {@link writeUserSnapshot}. */
export interface WriteUserSnapshotOptions {
  /** Default 'bootstrap'. */
  readonly kind?: UserSnapshotKind;
  /** Identity of the event stream `cols.appliedSeq` counts in; default ''. */
  readonly stream?: string;
}

/** Writes `cols` as the snapshot for `key`, replacing an older one atomically (rename). */
export async function writeUserSnapshot(snapshotDir: string, key: UserSnapshotKey, cols: UserProfileColumns, opts: WriteUserSnapshotOptions = {}): Promise<string> {
  const final = snapshotPathOf(snapshotDir, key, opts.kind ?? 'bootstrap');
  const tmp = `${final}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  await mkdir(tmp, { recursive: true });
  const parts: Uint8Array[] = [];
  for (const s of SECTIONS) {
    const a = cols[s];
    parts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    // 8-byte alignment of every section lets a reader view the file without per-section copies.
    const gap = pad8(a.byteLength) - a.byteLength;
    if (gap > 0) parts.push(new Uint8Array(gap));
  }
  await writeFile(path.join(tmp, FILES.profiles), Buffer.concat(parts));
  const meta: UserSnapshotMeta = {
    format: USER_SNAPSHOT_FORMAT,
    ...key,
    users: cols.userIds.length,
    recentEntries: cols.recentVideoIds.length,
    numCategories: cols.numCategories,
    appliedSeq: cols.appliedSeq,
    stream: opts.stream ?? '',
    createdAt: new Date().toISOString(),
  };
  await writeFile(path.join(tmp, FILES.meta), JSON.stringify(meta, null, 2));
  await replaceDir(tmp, final);
  return final;
}

/**
 * The live snapshot of `key` unless the one on disk already holds `stream` at a sequence ≥
 * `cols.appliedSeq` (a twin replica sharing the folder is ahead, or equal): then nothing is written.
 * Returns whether it wrote. A twin may still replace it between the check and the rename; the
 * snapshot left is then whole and valid, only older (the restart replays a little more).
 */
export async function writeLiveUserSnapshot(snapshotDir: string, key: UserSnapshotKey, cols: UserProfileColumns, stream: string): Promise<boolean> {
  const current = await readUserSnapshotMeta(userLiveSnapshotPath(snapshotDir, key)).catch(() => undefined);
  if (current !== undefined && keyRefusal(current, key) === undefined && (current.stream ?? '') === stream && current.appliedSeq >= cols.appliedSeq) return false;
  await writeUserSnapshot(snapshotDir, key, cols, { kind: 'live', stream });
  return true;
}

async function readUserSnapshotMeta(dir: string): Promise<UserSnapshotMeta | undefined> {
  if (!existsSync(path.join(dir, FILES.meta))) return undefined;
  return JSON.parse(await readFile(path.join(dir, FILES.meta), 'utf8')) as UserSnapshotMeta;
}

function keyRefusal(meta: UserSnapshotMeta, key: UserSnapshotKey): string | undefined {
  if (meta.format !== USER_SNAPSHOT_FORMAT) return `format ${meta.format}, expected ${USER_SNAPSHOT_FORMAT}`;
  for (const k of ['partition', 'partitionCount', 'source', 'featureSpecHash'] as const) {
    if (meta[k] !== key[k]) return `${k} is ${String(meta[k])}, expected ${String(key[k])}`;
  }
  return undefined;
}

/** Result of {@link readUserSnapshot}: the profiles and their meta, or why there are none. */
export type UserSnapshotRead =
  | { readonly columns: UserProfileColumns; readonly meta: UserSnapshotMeta; readonly path: string }
  | { readonly columns: undefined; readonly refused: string };

/** Restores the snapshot (default the bootstrap one) for `key`, or says why not (none, other world/spec/P, other format). */
export async function readUserSnapshot(snapshotDir: string, key: UserSnapshotKey, kind: UserSnapshotKind = 'bootstrap'): Promise<UserSnapshotRead> {
  const dir = snapshotPathOf(snapshotDir, key, kind);
  const meta = await readUserSnapshotMeta(dir);
  if (meta === undefined) return { columns: undefined, refused: 'no snapshot' };
  const refusal = keyRefusal(meta, key);
  if (refusal !== undefined) return { columns: undefined, refused: refusal };
  const bytes = await readFile(path.join(dir, FILES.profiles));
  const lengths = sectionLengths(meta.users, meta.recentEntries, meta.numCategories);
  const expected = SECTIONS.reduce((s, k) => s + pad8(lengths[k] * CTORS[k].BYTES_PER_ELEMENT), 0);
  if (bytes.length !== expected) return { columns: undefined, refused: `${FILES.profiles} holds ${bytes.length} bytes, expected ${expected}` };
  // One aligned copy of the whole file; the sections are views into it.
  const buf = new ArrayBuffer(bytes.length);
  new Uint8Array(buf).set(bytes);
  const views = {} as Record<Section, Float64Array | Uint32Array | Float32Array>;
  let at = 0;
  for (const s of SECTIONS) {
    views[s] = new CTORS[s](buf, at, lengths[s]);
    at += pad8(lengths[s] * CTORS[s].BYTES_PER_ELEMENT);
  }
  const columns: UserProfileColumns = {
    numCategories: meta.numCategories,
    appliedSeq: meta.appliedSeq,
    userIds: views.userIds as Float64Array,
    counters: views.counters as Float64Array,
    recentOffsets: views.recentOffsets as Uint32Array,
    recentVideoIds: views.recentVideoIds as Float64Array,
    recentCreatorIds: views.recentCreatorIds as Float64Array,
    affinity: views.affinity as Float32Array,
  };
  return { columns, meta, path: dir };
}
