/**
 * Worker-thread side of an item shard: owns the faiss index and the item-tower session, so a slow
 * search or a cold-start tower run never blocks the node's event loop. Handles messages strictly in
 * arrival order, one unit of work at a time (faiss search is synchronous); see protocol.ts for the
 * messages.
 *
 * Search batching: a unit of work is one admin request, one snapshot task, or a run of consecutive
 * searches (up to `searchBatch.maxQueries`) answered by ONE faiss call. Work starts from
 * setImmediate, never from the 'message' event itself: the port delivers every message that arrived
 * while the previous (synchronous) unit ran before the check phase, so a burst queued behind a
 * faiss call coalesces, while a lone search starts in the same event-loop turn (no timer: only what
 * is already queued is batched). A batch never spans an admin request or a snapshot task, so a
 * search after an upsert sees it and one before does not.
 *
 * Snapshots after admin changes: the first change after a snapshot arms a timer of
 * `snapshotAfterChangesMs`; when it fires, a snapshot task joins the message queue (so it runs
 * between searches, never in the middle of an upsert), captures the state synchronously (faiss
 * write + column copy: the only part searches wait for) and finishes the files and the atomic
 * rename in the background while searches go on. Changes during the timer ride along in the same
 * write; changes after the capture arm the next one.
 */
import { parentPort } from 'node:worker_threads';
import { itemShardOf } from '../../core/hash.js';
import { StatusCode, invalidArgument, toStatus } from '../../core/status.js';
import type { StatusObject } from '../../core/status.js';
import { Codecs } from '../../protos/codec.js';
import type { CandidateBatchMsg, ItemAdminReplyMsg, ShardSearchReplyMsg } from '../../protos/codec.js';
import { statusToMsg } from '../../protos/convert.js';
import { openItemShard } from './bootstrap.js';
import { ItemTower } from './item-tower.js';
import { ItemColumns } from './columns.js';
import type { ExportedItems, FromItemWorker, ItemShardNprobeInfo, ItemShardWorkerConfig, ItemWorkerGauges, SnapshotTrigger, ToItemWorker } from './protocol.js';
import type { ItemShardIndex, ShardQuery } from './shard-index.js';
import { validateSearch } from './shard-index.js';
import type { SnapshotKey } from './snapshot.js';
import { captureItemSnapshot } from './snapshot.js';
import { postWithOwnedBytes } from '../../core/transfer.js';
import { spacesAgree } from '../model/embedding-space.js';

/** Most items one admin request may upsert or remove. */
export const MAX_ADMIN_ITEMS = 10_000;

interface State {
  readonly config: ItemShardWorkerConfig;
  readonly index: ItemShardIndex;
  readonly tower: ItemTower;
  readonly key: SnapshotKey;
  /** Items upserted or removed since the last capture. */
  changes: number;
  /** Armed by the first change after a capture (see the module comment). */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The background part of the last snapshot write, so writes land in capture order. */
  writing: Promise<unknown>;
}

let state: State | undefined;
const port = parentPort;
if (port === null) throw new Error('actors/item-shard/worker.js must run in a worker thread');

function post(msg: FromItemWorker): void {
  if (msg.type === 'reply' && msg.reply !== null) {
    // Hand over an exact-size copy (core/transfer.ts): cloning the encoder's pooled view copies more.
    if (port !== null) postWithOwnedBytes(port, msg, 'reply');
    return;
  }
  port?.postMessage(msg);
}

function gauges(s: State): ItemWorkerGauges {
  return {
    items: s.index.size,
    memoryBytes: s.index.memoryBytes(),
    changesSinceSnapshot: s.changes,
  };
}

async function init(config: ItemShardWorkerConfig): Promise<void> {
  const tower = await ItemTower.load(config.modelDir);
  const opened = await openItemShard({
    perShardK: config.perShardK,
    worldDir: config.worldDir,
    shard: config.shard,
    shardCount: config.shardCount,
    tower,
    snapshotDir: config.snapshotDir,
    index: config.index,
    towerBatchRows: config.towerBatchRows,
    space: config.space,
    ...(config.seed !== undefined ? { items: ItemColumns.fromSnapshotBytes(config.seed.bytes, config.seed.rows).liveItems() } : {}),
  });
  state = {
    config,
    index: opened.index,
    tower,
    key: opened.key,
    changes: 0,
    timer: undefined,
    writing: Promise.resolve(),
  };
  post({
    type: 'ready',
    info: {
      ...gauges(state),
      restored: opened.restored,
      factory: opened.index.factory,
      dim: opened.index.dim,
      modelVersion: tower.manifest.version,
      space: config.space,
      timings: opened.timings,
      snapshotPath: opened.snapshotPath,
      snapshotRefused: opened.snapshotRefused,
      snapshotItems: opened.snapshotItems,
      snapshotAtMs: opened.snapshotAtMs,
      nprobe: nprobeInfo(opened.index, config.perShardK),
    },
  });
}

function nprobeInfo(index: ItemShardIndex, perShardK: number): ItemShardNprobeInfo {
  const { nprobe, source } = index.searchNprobe(perShardK);
  return { nprobe: nprobe ?? null, source, calibration: index.nprobeCalibration };
}

function errorReply(s: State, status: StatusObject): ShardSearchReplyMsg {
  return { status: statusToMsg(status), shard: s.config.shard, candidates: null, shardSize: s.index.size, searchMs: 0 };
}

/** A search message waiting in the inbox. */
interface QueuedSearch {
  readonly id: number;
  readonly request: Uint8Array;
}

/**
 * Answers a run of consecutive searches with one faiss call. Each request is decoded, checked for
 * its deadline and validated on its own, so a bad or late one is answered (or dropped) alone and
 * never fails its neighbours; the rest share {@link ItemShardIndex.searchMany}.
 */
function searchBatch(s: State, batch: readonly QueuedSearch[]): void {
  const ready: { readonly id: number; readonly query: ShardQuery }[] = [];
  for (const { id, request } of batch) {
    let req;
    try {
      req = Codecs.shardSearchRequest.decode(request);
    } catch (err) {
      replyError(s, id, { code: StatusCode.INVALID_ARGUMENT, message: `undecodable ShardSearchRequest: ${toStatus(err).message}` }, 0);
      continue;
    }
    // deadline_ms 0 means "none" (proto3 default); a passed deadline is dropped silently: the
    // coordinator has already given up on this shard.
    if (req.deadlineMs > 0 && Date.now() >= req.deadlineMs) {
      post({ type: 'reply', id, reply: null, searchMs: 0, gauges: gauges(s) });
      continue;
    }
    if (!spacesAgree(s.config.space, req.space)) {
      // Another tower pair's vector: searching it here would return well-formed nonsense.
      replyError(s, id, { code: StatusCode.FAILED_PRECONDITION, message: spaceMismatchMessage(s, req.space ?? '') }, 0);
      continue;
    }
    const t0 = performance.now();
    const query = req.userVector instanceof Float32Array ? req.userVector : Float32Array.from(req.userVector);
    try {
      validateSearch(s.index.dim, query.length, req.k, req.excludeVideoIds.length);
    } catch (err) {
      // Answered (and counted as a search by the main thread, as before batching: searchMs > 0).
      replyError(s, id, toStatus(err), performance.now() - t0);
      continue;
    }
    ready.push({ id, query: { query, k: req.k, exclude: req.excludeVideoIds } });
  }
  if (ready.length === 0) return;
  const t0 = performance.now();
  let answers: readonly CandidateBatchMsg[];
  try {
    answers = s.index.searchMany(ready.map((r) => r.query));
  } catch (err) {
    const status = toStatus(err);
    const searchMs = (performance.now() - t0) / ready.length;
    for (const r of ready) replyError(s, r.id, status, searchMs);
    return;
  }
  // Each search's share of the batch (see `searchMs` in protocol.ts).
  const searchMs = (performance.now() - t0) / ready.length;
  const g = gauges(s);
  ready.forEach((r, i) => {
    const candidates = answers[i];
    const reply: ShardSearchReplyMsg =
      candidates !== undefined ? { shard: s.config.shard, candidates, shardSize: s.index.size, searchMs } : errorReply(s, { code: StatusCode.INTERNAL, message: 'searchMany returned too few answers' });
    // The first reply of the call carries its size: the main thread counts calls and batched searches.
    post({ type: 'reply', id: r.id, reply: Codecs.shardSearchReply.encode(reply), searchMs, gauges: g, ...(i === 0 ? { batchQueries: ready.length } : {}) });
  });
}

function spaceMismatchMessage(s: State, requested: string): string {
  return `space: the user vector is in embedding space ${requested}, shard ${s.config.shard} serves space ${s.config.space} (model ${s.tower.manifest.version}); the request's towers differ from this shard's`;
}

/** Answers search `id` with an error status. */
function replyError(s: State, id: number, status: StatusObject, searchMs: number): void {
  post({ type: 'reply', id, reply: Codecs.shardSearchReply.encode(errorReply(s, status)), searchMs, gauges: gauges(s) });
}

async function admin(s: State, id: number, bytes: Uint8Array): Promise<void> {
  let reply: ItemAdminReplyMsg;
  try {
    const req = Codecs.itemAdminRequest.decode(bytes);
    if (req.upserts.length > MAX_ADMIN_ITEMS) throw invalidArgument('upserts', `at most ${MAX_ADMIN_ITEMS} items, got ${req.upserts.length}`);
    if (req.removeVideoIds.length > MAX_ADMIN_ITEMS) {
      throw invalidArgument('remove_video_ids', `at most ${MAX_ADMIN_ITEMS} ids, got ${req.removeVideoIds.length}`);
    }
    for (const u of req.upserts) {
      if (itemShardOf(u.videoId, s.config.shardCount) !== s.config.shard) {
        throw invalidArgument('upserts.video_id', `video ${u.videoId} belongs to shard ${itemShardOf(u.videoId, s.config.shardCount)}, not ${s.config.shard}`);
      }
      if (!(u.durationS >= 0)) throw invalidArgument('upserts.duration_s', `must be >= 0, got ${u.durationS}`);
    }
    const metas = req.upserts.map((u) => ({ videoId: u.videoId, creatorId: u.creatorId, category: u.category, durationS: u.durationS, uploadTsMs: u.uploadTsMs }));
    // Cold start: the tower runs now, so the new items are searchable when the reply leaves.
    const vectors = await s.tower.encode(metas);
    const upserted = s.index.upsert(metas, vectors);
    const removed = s.index.remove(req.removeVideoIds);
    noteChanges(s, upserted + removed);
    reply = { upserted, removed, shardSize: s.index.size };
  } catch (err) {
    reply = { status: statusToMsg(toStatus(err)), upserted: 0, removed: 0, shardSize: s.index.size };
  }
  post({ type: 'reply', id, reply: Codecs.itemAdminReply.encode(reply), searchMs: 0, gauges: gauges(s) });
}

/** Counts admin changes and arms the snapshot timer on the first one since the last capture. */
function noteChanges(s: State, n: number): void {
  if (n === 0) return;
  s.changes += n;
  armSnapshotTimer(s);
}

function armSnapshotTimer(s: State): void {
  const delay = s.config.snapshotAfterChangesMs;
  if (s.timer !== undefined || delay <= 0 || s.config.snapshotDir === undefined) return;
  s.timer = setTimeout(() => {
    s.timer = undefined;
    enqueue({
      kind: 'run',
      run: async () => {
        // Only the capture holds the queue; failures are reported (and retried) by snapshotNow.
        if (s.changes > 0) (await snapshotNow(s, 'changes').catch(() => undefined))?.written.catch(() => undefined);
      },
    });
  }, delay);
}

/**
 * Captures a snapshot now (the caller holds the message queue) and returns the background write,
 * which reports its outcome to the main thread. A failed 'changes' write puts its changes back and
 * re-arms the timer, so it is retried.
 */
async function snapshotNow(s: State, trigger: SnapshotTrigger): Promise<{ readonly written: Promise<string> }> {
  const dir = s.config.snapshotDir;
  if (dir === undefined) throw new Error('snapshots are off (no snapshotDir)');
  // Writes land in capture order: an older state never replaces a newer one.
  await s.writing.catch(() => undefined);
  const t0 = performance.now();
  const captured = s.changes;
  let finishing: Promise<string>;
  let captureMs: number;
  let items: number;
  try {
    const c = captureItemSnapshot(dir, s.key, s.index);
    s.changes = 0;
    captureMs = c.captureMs;
    items = c.items;
    finishing = c.finish();
  } catch (err) {
    failed(s, trigger, 0, err);
    throw err;
  }
  if (s.timer !== undefined) {
    // This capture holds every change so far: a pending timer has nothing left to write.
    clearTimeout(s.timer);
    s.timer = undefined;
  }
  const done = finishing.then(
    (path) => {
      post({ type: 'snapshotWritten', trigger, items, atMs: Date.now(), captureMs, writeMs: performance.now() - t0, gauges: gauges(s) });
      return path;
    },
    (err: unknown) => {
      failed(s, trigger, captured, err);
      throw err;
    },
  );
  s.writing = done;
  // Wrapped: an async function returning the promise itself would make callers wait for the write.
  return { written: done };
}

function failed(s: State, trigger: SnapshotTrigger, changes: number, err: unknown): void {
  s.changes += changes;
  if (s.changes > 0) armSnapshotTimer(s);
  post({ type: 'snapshotFailed', trigger, status: toStatus(err), gauges: gauges(s) });
}

async function snapshot(s: State, id: number): Promise<void> {
  if (s.config.snapshotDir === undefined) {
    post({ type: 'snapshotDone', id, path: null, status: { code: StatusCode.FAILED_PRECONDITION, message: 'snapshots are off (no snapshotDir)' } });
    return;
  }
  const reply = (p: Promise<string>) =>
    p.then(
      (path) => post({ type: 'snapshotDone', id, path, status: null }),
      (err: unknown) => post({ type: 'snapshotDone', id, path: null, status: toStatus(err) }),
    );
  try {
    // Not awaited: searches run while the files are written.
    void reply((await snapshotNow(s, 'request')).written);
  } catch (err) {
    void reply(Promise.reject(err));
  }
}

/** Work waiting for the worker, in arrival order: messages, and the snapshot timer's tasks. */
type Task = { readonly kind: 'message'; readonly msg: ToItemWorker } | { readonly kind: 'run'; readonly run: () => Promise<void> };

const inbox: Task[] = [];
/** A unit of work runs or is scheduled: the next one is started by its end. */
let draining = false;
/** Set by the 'holdForTest' hook: queued work waits. */
let held = false;

function enqueue(task: Task): void {
  inbox.push(task);
  schedule();
}

function schedule(): void {
  if (draining || held || inbox.length === 0) return;
  draining = true;
  // setImmediate, not a microtask: messages already at the port are delivered first (module comment).
  setImmediate(drainOne);
}

function drainOne(): void {
  nextUnit()
    .catch((err: unknown) => {
      // Every handler reports its own failures; reaching here is a bug, surfaced in the parent's log.
      console.error('item-shard worker:', err);
    })
    .finally(() => {
      draining = false;
      schedule();
    });
}

type SearchTask = { readonly kind: 'message'; readonly msg: Extract<ToItemWorker, { type: 'search' }> };

function isSearch(task: Task | undefined): task is SearchTask {
  return task?.kind === 'message' && task.msg.type === 'search';
}

/** Runs the oldest task, or the leading run of searches as one batch (module comment). */
async function nextUnit(): Promise<void> {
  const head = inbox[0];
  if (head === undefined) return;
  if (isSearch(head)) {
    // Before a successful init there is nothing to search (the main thread sends none before 'ready').
    const max = state?.config.searchBatch.maxQueries ?? 1;
    let n = 1;
    while (n < max && isSearch(inbox[n])) n++;
    const run = inbox.splice(0, n) as SearchTask[];
    if (state !== undefined) searchBatch(state, run.map((t) => ({ id: t.msg.id, request: t.msg.request })));
    return;
  }
  inbox.shift();
  if (head.kind === 'run') await head.run();
  else await handle(head.msg);
}

port.on('message', (msg: ToItemWorker) => {
  if (msg.type === 'crash') {
    setImmediate(() => {
      throw new Error('crash requested by the test hook');
    });
    return;
  }
  if (msg.type === 'holdForTest') {
    held = msg.hold;
    schedule();
    return;
  }
  enqueue({ kind: 'message', msg });
});

async function handle(msg: ToItemWorker): Promise<void> {
  switch (msg.type) {
    case 'init':
      try {
        await init(msg.config);
      } catch (err) {
        post({ type: 'initFailed', status: toStatus(err) });
      }
      return;
    case 'search':
      return; // runs of searches are taken by nextUnit, never handed here
    case 'admin':
      if (state !== undefined) await admin(state, msg.id, msg.request);
      return;
    case 'snapshot':
      if (state !== undefined) await snapshot(state, msg.id);
      return;
    case 'exportItems':
      if (state !== undefined) {
        const columns = state.index.columns;
        // A copy (snapshotBytes allocates), transferred: the worker keeps serving from its own.
        const items: ExportedItems = { bytes: columns.snapshotBytes(), rows: columns.rows };
        port?.postMessage({ type: 'itemsExported', id: msg.id, items } satisfies FromItemWorker, [items.bytes.buffer as ArrayBuffer]);
      }
      return;
    case 'crash':
    case 'holdForTest':
      return; // handled on arrival
  }
}
