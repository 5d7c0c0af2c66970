/**
 * The main-thread side of a user-state host worker (worker.ts): starts the thread, opens partitions
 * in it (one slot each), routes their calls and replies, and tears the thread down when its last
 * partition closes.
 *
 * Two kinds: a 'dedicated' host per partition (thread mode 'worker'), and the process's one 'shared'
 * host (thread mode 'shared', {@link sharedUserStateHost}), started on first use and ended when its
 * last partition stops, so a node runs one user-state thread and one user-tower session however many
 * partitions it owns. The shared host is a module-level singleton on purpose (one thread per
 * process is the point); it holds no cluster state, so two clusters in one test process can share it
 * (slots, not partition numbers, name what it hosts).
 *
 * A worker that dies (an uncaught error, or an exit nobody asked for) fails every pending call of
 * every partition it hosts with INTERNAL, and every later call at once with the same status; the
 * partitions stay dead (nothing restarts them) until their owner stops them. A later open starts a
 * fresh worker.
 */
import { Worker } from 'node:worker_threads';
import { StatusCode, UpnextError } from '../../core/status.js';
import type { StatusObject } from '../../core/status.js';
import type { ApplyResult, SequencedEvent } from './partition.js';
import type { FromUserWorker, ToUserWorker, UserHostCounters, UserPartitionReadyInfo, UserPartitionWorkerConfig } from './protocol.js';
import { NO_SNAPSHOT_WRITER_STATS } from './snapshot-writer.js';
import { postWithOwnedBytes } from '../../core/transfer.js';

/** Which kind of host a worker is (see the module comment). */
export type UserStateHostKind = 'shared' | 'dedicated';

/** Live user-state host workers of this process (a read-only diagnostic for tests and /metrics). */
export interface UserStateWorkerCounts {
  /** Shared host workers alive: 0 or 1. */
  readonly sharedWorkers: number;
  /** Partitions hosted by the shared worker (open or opening). */
  readonly sharedPartitions: number;
  /** Per-partition ('worker' mode) host workers alive. */
  readonly dedicatedWorkers: number;
}

const live = new Set<UserStateHostWorker>();
let shared: UserStateHostWorker | undefined;

/** Counts this process's live user-state host workers (see {@link UserStateWorkerCounts}). */
export function userStateWorkerCounts(): UserStateWorkerCounts {
  let sharedWorkers = 0;
  let dedicatedWorkers = 0;
  for (const h of live) {
    if (h.kind === 'shared') sharedWorkers++;
    else dedicatedWorkers++;
  }
  return { sharedWorkers, sharedPartitions: shared?.partitions ?? 0, dedicatedWorkers };
}

/** The process's shared host, started when there is none (or the last one died or went idle). */
export function sharedUserStateHost(): UserStateHostWorker {
  shared ??= new UserStateHostWorker('shared');
  return shared;
}

/** A fresh host for one partition ('worker' mode); it ends when that partition closes. */
export function dedicatedUserStateHost(): UserStateHostWorker {
  return new UserStateHostWorker('dedicated');
}

type Waiter = { resolve(v: never): void; reject(e: Error): void };

interface SlotState {
  readonly waiting: Map<number, Waiter>;
  counters: UserHostCounters;
  /** Told once when the worker dies while the slot is open (the partition then reopens elsewhere). */
  onFailure: ((status: StatusObject) => void) | undefined;
  /** Set while the open is in progress. */
  opening: { resolve(m: Extract<FromUserWorker, { type: 'opened' }>): void; reject(e: Error): void } | undefined;
}

/** One host worker thread and the partitions open in it. */
export class UserStateHostWorker {
  readonly kind: UserStateHostKind;
  readonly #worker: Worker;
  readonly #slots = new Map<number, SlotState>();
  #nextSlot = 1;
  #nextId = 1;
  /** Why the worker died; set once, after which every call fails with it. */
  #failure: StatusObject | undefined;

  constructor(kind: UserStateHostKind) {
    this.kind = kind;
    this.#worker = new Worker(new URL('./worker.js', import.meta.url));
    live.add(this);
    this.#worker.on('message', (m: FromUserWorker) => this.#onMessage(m));
    this.#worker.on('error', (err) => this.#die(`user-state ${kind} worker crashed: ${err.message}`));
    this.#worker.on('exit', (code) => this.#die(`user-state ${kind} worker exited with code ${code}`));
  }

  /** Partitions open or opening in this host. */
  get partitions(): number {
    return this.#slots.size;
  }

  /**
   * Opens a partition in this worker (restore or replay, see bootstrap.ts). Rejects with the open's
   * status, or INTERNAL when the worker dies meanwhile; the host is released if it was the last.
   */
  async open(config: UserPartitionWorkerConfig): Promise<{ partition: HostedUserPartition; info: UserPartitionReadyInfo }> {
    if (this.#failure !== undefined) throw UpnextError.fromStatus(this.#failure);
    const slot = this.#nextSlot++;
    const state: SlotState = { waiting: new Map(), counters: emptyCounters(), opening: undefined, onFailure: undefined };
    this.#slots.set(slot, state);
    try {
      const opened = await new Promise<Extract<FromUserWorker, { type: 'opened' }>>((resolve, reject) => {
        state.opening = { resolve, reject };
        this.#post({ type: 'open', slot, config });
      });
      state.counters = opened.counters;
      return { partition: new HostedUserPartition(this, slot), info: opened.info };
    } catch (err) {
      await this.#dropSlot(slot, false);
      throw err;
    }
  }

  /** @internal A call of a hosted partition; see {@link HostedUserPartition}. */
  call<T>(slot: number, build: (id: number) => ToUserWorker): Promise<T> {
    const state = this.#slots.get(slot);
    if (this.#failure !== undefined) return Promise.reject(UpnextError.fromStatus(this.#failure));
    if (state === undefined) return Promise.reject(new UpnextError(StatusCode.UNAVAILABLE, 'user partition stopped'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      state.waiting.set(id, { resolve: resolve as (v: never) => void, reject });
      this.#post(build(id));
    });
  }

  /**
   * @internal Test hook: makes the worker throw an uncaught error (it handles messages in order, so
   * calls posted after this one are never answered and fail INTERNAL when the crash is seen).
   */
  crashForTest(): void {
    this.#post({ type: 'crash', slot: 0 });
  }

  /** @internal Registers the slot's failure listener; called at once if the worker is already dead. */
  onFailure(slot: number, listener: (status: StatusObject) => void): void {
    const state = this.#slots.get(slot);
    if (state === undefined) return;
    if (this.#failure !== undefined && this.#failure.code === StatusCode.INTERNAL) {
      listener(this.#failure);
      return;
    }
    state.onFailure = listener;
  }

  /** @internal Last counters the worker reported for `slot`. */
  counters(slot: number): UserHostCounters | undefined {
    return this.#slots.get(slot)?.counters;
  }

  /** @internal Fails the slot's pending calls with UNAVAILABLE, drops it in the worker, ends the worker if it was the last. */
  async close(slot: number): Promise<void> {
    const state = this.#slots.get(slot);
    if (state === undefined) return;
    fail(state, { code: StatusCode.UNAVAILABLE, message: 'user partition stopped' });
    await this.#dropSlot(slot, true);
  }

  async #dropSlot(slot: number, tellWorker: boolean): Promise<void> {
    if (!this.#slots.delete(slot)) return;
    if (tellWorker && this.#failure === undefined) this.#post({ type: 'close', slot });
    if (this.#slots.size > 0) return;
    // Retire synchronously, so an open that starts from here on gets a fresh worker, not this one.
    this.#retireOnce();
    if (this.#failure === undefined) {
      this.#failure = { code: StatusCode.UNAVAILABLE, message: 'user-state host stopped' };
      await this.#worker.terminate();
    }
    live.delete(this);
  }

  #post(m: ToUserWorker): void {
    if (m.type === 'get') {
      // msg.data is a view into the NATS socket chunk: clone would copy the whole chunk.
      postWithOwnedBytes(this.#worker, m, 'request');
      return;
    }
    this.#worker.postMessage(m);
  }

  /** Stops taking new partitions (idle or dead): the next shared open starts a fresh worker. Idempotent. */
  #retireOnce(): void {
    if (shared === this) shared = undefined;
  }

  #die(message: string): void {
    live.delete(this);
    this.#retireOnce();
    if (this.#failure !== undefined) return;
    const status: StatusObject = { code: StatusCode.INTERNAL, message };
    this.#failure = status;
    for (const state of this.#slots.values()) {
      state.opening?.reject(UpnextError.fromStatus(status));
      state.opening = undefined;
      fail(state, status);
    }
    for (const state of this.#slots.values()) {
      const listener = state.onFailure;
      state.onFailure = undefined;
      listener?.(status);
    }
  }

  #onMessage(m: FromUserWorker): void {
    const state = this.#slots.get(m.slot);
    if (state === undefined) return; // closed meanwhile: its calls were already failed
    switch (m.type) {
      case 'opened':
        state.opening?.resolve(m);
        state.opening = undefined;
        return;
      case 'openFailed':
        state.opening?.reject(UpnextError.fromStatus(m.status));
        state.opening = undefined;
        return;
      case 'counters':
        state.counters = m.counters;
        return;
      case 'reply':
      case 'applied': {
        state.counters = m.counters;
        const w = state.waiting.get(m.id);
        state.waiting.delete(m.id);
        if (w === undefined) return;
        if (m.type === 'reply') w.resolve(m.reply as never);
        else if (m.result !== null) w.resolve(m.result as never);
        else w.reject(UpnextError.fromStatus(m.status ?? { code: StatusCode.INTERNAL, message: 'apply failed' }));
        return;
      }
    }
  }
}

function fail(state: SlotState, status: StatusObject): void {
  for (const [id, w] of state.waiting) {
    state.waiting.delete(id);
    w.reject(UpnextError.fromStatus(status));
  }
}

function emptyCounters(): UserHostCounters {
  return { users: 0, requests: 0, unknownUsers: 0, cacheHits: 0, cacheMisses: 0, eventsApplied: 0, appliedSeq: 0, cachedEmbeddings: 0, spaceMismatches: 0, spaceBridged: 0, memoryBytes: 0, catalogueBytes: 0, snapshots: NO_SNAPSHOT_WRITER_STATS };
}

/** One partition open in a host worker: the calls user-state.ts makes, addressed to its slot. */
export class HostedUserPartition {
  readonly #host: UserStateHostWorker;
  readonly #slot: number;
  #last: UserHostCounters = emptyCounters();

  constructor(host: UserStateHostWorker, slot: number) {
    this.#host = host;
    this.#slot = slot;
  }

  /** Answers one encoded UserStateRequest; null when its deadline passed. Rejects when stopped or the worker died. */
  request(bytes: Uint8Array): Promise<Uint8Array | null> {
    return this.#host.call(this.#slot, (id) => ({ type: 'get', slot: this.#slot, id, request: bytes }));
  }

  apply(events: readonly SequencedEvent[]): Promise<ApplyResult> {
    return this.#host.call(this.#slot, (id) => ({ type: 'apply', slot: this.#slot, id, events }));
  }

  /** The latest counters the worker reported (kept after close or a crash). */
  counters(): UserHostCounters {
    this.#last = this.#host.counters(this.#slot) ?? this.#last;
    return this.#last;
  }

  /** `listener` is called once if the worker dies while this partition is open. */
  onFailure(listener: (status: StatusObject) => void): void {
    this.#host.onFailure(this.#slot, listener);
  }

  close(): Promise<void> {
    this.counters();
    return this.#host.close(this.#slot);
  }
}
