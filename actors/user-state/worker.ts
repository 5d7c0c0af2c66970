/**
 * A user-state host worker thread: hosts the user partitions its main-thread side (worker-host.ts)
 * opens in it — one in 'worker' mode, every 'shared' partition of the process in 'shared' mode —
 * each with its own profiles, embedding cache and counters, over ONE user-tower session per model
 * directory.
 *
 * Why one session may serve many partitions: onnxruntime-node's `session.run` defers to
 * `setImmediate` and then runs the graph synchronously on this thread, so two runs of this worker can
 * never overlap (ONNX Runtime's `Run` is also documented thread-safe, but nothing here relies on it).
 * A partition's cached embeddings live in the partition, not the session, so sharing changes no
 * answer; it saves a session's memory (~67 MB of weights on the 1M-video world) per extra partition.
 *
 * Live snapshots (snapshot-writer.ts): each partition with `snapshotIntervalMs` > 0 gets a timer
 * here that copies its profiles in the partition's queue (between two applies/gets) and writes
 * them off the queue, then pushes fresh counters to the main thread.
 *
 * Ordering: each partition has its own queue, so an `apply` finishes before that partition's later
 * `get`s read the profile, while a long open (replaying a world) of one partition never holds up
 * requests to the others: they interleave at every await.
 */
import { parentPort } from 'node:worker_threads';
import { toStatus } from '../../core/status.js';
import { openUserPartition, startLiveSnapshots } from './bootstrap.js';
import { handleUserStateRequest } from './handler.js';
import type { UserStatePartition } from './partition.js';
import type { FromUserWorker, UserHostCounters, ToUserWorker, UserPartitionWorkerConfig } from './protocol.js';
import type { UserSnapshotWriter } from './snapshot-writer.js';
import { NO_SNAPSHOT_WRITER_STATS } from './snapshot-writer.js';
import { UserTower } from './user-tower.js';
import { postWithOwnedBytes } from '../../core/transfer.js';

const port = parentPort;
if (port === null) throw new Error('actors/user-state/worker.js must run in a worker thread');

/** One hosted partition. */
interface Slot {
  partition: UserStatePartition | undefined;
  /** Model directory whose tower this slot holds a reference to (after a successful acquire). */
  towerHeld: string | undefined;
  /** Set when the main thread closed it: queued work of the slot is skipped. */
  closed: boolean;
  queue: Promise<void>;
  /** Periodic live snapshots, when on. */
  snapshots: UserSnapshotWriter | undefined;
}

function countersOf(slot: Slot, p: UserStatePartition): UserHostCounters {
  return { ...p.counters(), snapshots: slot.snapshots?.stats() ?? NO_SNAPSHOT_WRITER_STATS };
}

const slots = new Map<number, Slot>();

/** Towers by model directory, reference-counted by the slots that use them. */
const towers = new Map<string, { refs: number; readonly loading: Promise<UserTower> }>();

async function acquireTower(modelDir: string): Promise<UserTower> {
  let entry = towers.get(modelDir);
  if (entry === undefined) {
    entry = { refs: 0, loading: UserTower.load(modelDir) };
    towers.set(modelDir, entry);
  }
  entry.refs++;
  try {
    return await entry.loading;
  } catch (err) {
    releaseTower(modelDir);
    throw err;
  }
}

function releaseTower(modelDir: string): void {
  const entry = towers.get(modelDir);
  if (entry === undefined || --entry.refs > 0) return;
  towers.delete(modelDir);
  entry.loading.then(
    (tower) => tower.close(),
    () => undefined,
  );
}

function post(m: FromUserWorker): void {
  if (m.type === 'reply' && m.reply !== null) {
    // Hand over an exact-size copy (core/transfer.ts): cloning the encoder's pooled view copies more.
    if (port !== null) postWithOwnedBytes(port, m, 'reply');
    return;
  }
  port?.postMessage(m);
}

function enqueue(slot: Slot, work: () => Promise<void> | void): void {
  slot.queue = slot.queue.then(work).catch((err: unknown) => console.error('user-state worker:', err));
}

function releaseSlotTower(slot: Slot): void {
  if (slot.towerHeld !== undefined) releaseTower(slot.towerHeld);
  slot.towerHeld = undefined;
}

/** Runs `fn` on the slot's open partition, in the slot's order; skipped once it is closed or gone. */
function withPartition(id: number, fn: (p: UserStatePartition, slot: Slot) => Promise<void> | void): void {
  const slot = slots.get(id);
  if (slot === undefined) return;
  enqueue(slot, () => (slot.closed || slot.partition === undefined ? undefined : fn(slot.partition, slot)));
}

async function open(id: number, slot: Slot, config: UserPartitionWorkerConfig): Promise<void> {
  try {
    const tower = await acquireTower(config.modelDir);
    slot.towerHeld = config.modelDir;
    const opened = await openUserPartition(config, tower);
    slot.partition = opened.partition;
    slot.snapshots = startLiveSnapshots(
      config,
      opened,
      (fn) =>
        new Promise<boolean>((resolve) =>
          enqueue(slot, () => {
            if (slot.closed || slot.partition === undefined) return resolve(false);
            fn();
            resolve(true);
          }),
        ),
      () => {
        if (!slot.closed && slot.partition !== undefined) post({ type: 'counters', slot: id, counters: countersOf(slot, slot.partition) });
      },
    );
    post({ type: 'opened', slot: id, info: opened.info, counters: countersOf(slot, opened.partition) });
  } catch (err) {
    releaseSlotTower(slot);
    slots.delete(id);
    post({ type: 'openFailed', slot: id, status: toStatus(err) });
  }
}

port.on('message', (msg: ToUserWorker) => {
  switch (msg.type) {
    case 'open': {
      const slot: Slot = { partition: undefined, towerHeld: undefined, closed: false, queue: Promise.resolve(), snapshots: undefined };
      slots.set(msg.slot, slot);
      enqueue(slot, () => open(msg.slot, slot, msg.config));
      return;
    }
    case 'get':
      withPartition(msg.slot, async (p, slot) => {
        post({ type: 'reply', slot: msg.slot, id: msg.id, reply: await handleUserStateRequest(p, msg.request), counters: countersOf(slot, p) });
      });
      return;
    case 'apply':
      withPartition(msg.slot, (p, slot) => {
        try {
          post({ type: 'applied', slot: msg.slot, id: msg.id, result: p.applyEvents(msg.events), status: null, counters: countersOf(slot, p) });
        } catch (err) {
          post({ type: 'applied', slot: msg.slot, id: msg.id, result: null, status: toStatus(err), counters: countersOf(slot, p) });
        }
      });
      return;
    case 'close': {
      const slot = slots.get(msg.slot);
      if (slot === undefined) return;
      slot.closed = true;
      // Not awaited in the queue: a write waiting for its copy (queued behind this close) would
      // never finish. Stopped now, no new tick starts; one writing already completes on its own.
      void slot.snapshots?.stop();
      // After the slot's running work: a get in the middle of a tower run keeps its session.
      enqueue(slot, () => {
        slots.delete(msg.slot);
        slot.partition = undefined;
        releaseSlotTower(slot);
      });
      return;
    }
    case 'crash':
      throw new Error('crash requested by the test hook');
  }
});
