/**
 * Worker-thread side of an item shard: owns the faiss index and the item-tower session, so a slow
 * search or a cold-start tower run never blocks the node's event loop. Handles one message at a
 * time (faiss search is synchronous); see protocol.ts for the messages.
 */
import { parentPort } from 'node:worker_threads';
import { itemShardOf } from '../../core/hash.js';
import { StatusCode, invalidArgument, toStatus } from '../../core/status.js';
import type { StatusObject } from '../../core/status.js';
import { Codecs } from '../../protos/codec.js';
import type { ItemAdminReplyMsg, ShardSearchReplyMsg } from '../../protos/codec.js';
import { statusToMsg } from '../../protos/convert.js';
import { openItemShard } from './bootstrap.js';
import { ItemTower } from './item-tower.js';
import type { FromItemWorker, ItemShardWorkerConfig, ItemWorkerGauges, ToItemWorker } from './protocol.js';
import type { ItemShardIndex } from './shard-index.js';
import { writeItemSnapshot } from './snapshot.js';
import { worldSource } from './bootstrap.js';
import { postWithOwnedBytes } from '../../core/transfer.js';

/** Most items one admin request may upsert or remove. */
export const MAX_ADMIN_ITEMS = 10_000;

interface State {
  readonly config: ItemShardWorkerConfig;
  readonly index: ItemShardIndex;
  readonly tower: ItemTower;
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
  return { items: s.index.size, memoryBytes: s.index.memoryBytes() };
}

async function init(config: ItemShardWorkerConfig): Promise<void> {
  const tower = await ItemTower.load(config.modelDir);
  const opened = await openItemShard({
    worldDir: config.worldDir,
    shard: config.shard,
    shardCount: config.shardCount,
    tower,
    snapshotDir: config.snapshotDir,
    index: config.index,
    towerBatchRows: config.towerBatchRows,
  });
  state = { config, index: opened.index, tower };
  post({
    type: 'ready',
    info: {
      ...gauges(state),
      restored: opened.restored,
      factory: opened.index.factory,
      dim: opened.index.dim,
      modelVersion: tower.manifest.version,
      timings: opened.timings,
      snapshotPath: opened.snapshotPath,
    },
  });
}

function errorReply(s: State, status: StatusObject): ShardSearchReplyMsg {
  return { status: statusToMsg(status), shard: s.config.shard, candidates: null, shardSize: s.index.size, searchMs: 0 };
}

function search(s: State, id: number, bytes: Uint8Array): void {
  let req;
  try {
    req = Codecs.shardSearchRequest.decode(bytes);
  } catch (err) {
    const status = { code: StatusCode.INVALID_ARGUMENT, message: `undecodable ShardSearchRequest: ${toStatus(err).message}` };
    post({ type: 'reply', id, reply: Codecs.shardSearchReply.encode(errorReply(s, status)), searchMs: 0, gauges: gauges(s) });
    return;
  }
  // deadline_ms 0 means "none" (proto3 default); a passed deadline is dropped silently: the
  // coordinator has already given up on this shard.
  if (req.deadlineMs > 0 && Date.now() >= req.deadlineMs) {
    post({ type: 'reply', id, reply: null, searchMs: 0, gauges: gauges(s) });
    return;
  }
  const t0 = performance.now();
  let reply: ShardSearchReplyMsg;
  try {
    const query = req.userVector instanceof Float32Array ? req.userVector : Float32Array.from(req.userVector);
    const candidates = s.index.search(query, req.k, req.excludeVideoIds);
    reply = { shard: s.config.shard, candidates, shardSize: s.index.size, searchMs: performance.now() - t0 };
  } catch (err) {
    reply = errorReply(s, toStatus(err));
  }
  post({ type: 'reply', id, reply: Codecs.shardSearchReply.encode(reply), searchMs: performance.now() - t0, gauges: gauges(s) });
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
    reply = { upserted, removed, shardSize: s.index.size };
  } catch (err) {
    reply = { status: statusToMsg(toStatus(err)), upserted: 0, removed: 0, shardSize: s.index.size };
  }
  post({ type: 'reply', id, reply: Codecs.itemAdminReply.encode(reply), searchMs: 0, gauges: gauges(s) });
}

async function snapshot(s: State, id: number): Promise<void> {
  const c = s.config;
  if (c.snapshotDir === undefined) {
    post({ type: 'snapshotDone', id, path: null, status: { code: StatusCode.FAILED_PRECONDITION, message: 'snapshots are off (no snapshotDir)' } });
    return;
  }
  try {
    const key = {
      shard: c.shard,
      shardCount: c.shardCount,
      modelVersion: s.tower.manifest.version,
      featureSpecHash: s.tower.manifest.featureSpecHash,
      source: await worldSource(c.worldDir),
    };
    post({ type: 'snapshotDone', id, path: await writeItemSnapshot(c.snapshotDir, key, s.index), status: null });
  } catch (err) {
    post({ type: 'snapshotDone', id, path: null, status: toStatus(err) });
  }
}

// Messages are handled strictly in order: an admin upsert finishes before the next search runs.
let queue: Promise<void> = Promise.resolve();

port.on('message', (msg: ToItemWorker) => {
  if (msg.type === 'crash') {
    setImmediate(() => {
      throw new Error('crash requested by the test hook');
    });
    return;
  }
  queue = queue.then(() => handle(msg)).catch((err: unknown) => {
    // Every handler reports its own failures; reaching here is a bug, surfaced in the parent's log.
    console.error('item-shard worker:', err);
  });
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
      if (state !== undefined) search(state, msg.id, msg.request);
      return;
    case 'admin':
      if (state !== undefined) await admin(state, msg.id, msg.request);
      return;
    case 'snapshot':
      if (state !== undefined) await snapshot(state, msg.id);
      return;
    case 'crash':
      return; // handled on arrival
  }
}
