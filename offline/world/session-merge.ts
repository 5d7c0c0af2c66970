/**
 * K-way merge of concurrent sessions' event lists into one time-ordered stream. Each session's
 * events are already in time order, so a min-heap of sessions keyed by their next event holds only
 * the sessions still in progress: memory follows concurrency, not the day's event count.
 */
import type { SimEvent } from './behaviour.js';

/** A session's events plus what every one of its events shares. */
export interface SessionStream {
  /** Global, increasing session number: breaks timestamp ties so output is deterministic. */
  readonly seq: number;
  readonly userId: number;
  readonly device: string;
  readonly country: string;
  /** Local hour at session start. */
  readonly localHour: number;
  readonly requestId: string;
  readonly events: readonly SimEvent[];
  /** Index of the next event to emit. */
  next: number;
}

function before(a: SessionStream, b: SessionStream): boolean {
  const ta = (a.events[a.next] as SimEvent).tsMs;
  const tb = (b.events[b.next] as SimEvent).tsMs;
  return ta < tb || (ta === tb && a.seq < b.seq);
}

/** Min-heap of sessions by (next event time, seq). */
export class SessionMerge {
  readonly #heap: SessionStream[] = [];

  get size(): number {
    return this.#heap.length;
  }

  /** Adds a session (ignored when it has no events). */
  push(s: SessionStream): void {
    if (s.next >= s.events.length) return;
    const h = this.#heap;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i] as SessionStream, h[p] as SessionStream)) break;
      [h[i], h[p]] = [h[p] as SessionStream, h[i] as SessionStream];
      i = p;
    }
  }

  /** Time of the earliest pending event, or Infinity. */
  peekTs(): number {
    const top = this.#heap[0];
    return top === undefined ? Infinity : (top.events[top.next] as SimEvent).tsMs;
  }

  /** Removes and returns the earliest pending event with its session; undefined when empty. */
  pop(): { session: SessionStream; event: SimEvent } | undefined {
    const h = this.#heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const event = top.events[top.next] as SimEvent;
    top.next++;
    if (top.next >= top.events.length) {
      const last = h.pop() as SessionStream;
      if (h.length === 0) return { session: top, event };
      h[0] = last;
    }
    // Sift the (possibly advanced) root down.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l] as SessionStream, h[m] as SessionStream)) m = l;
      if (r < h.length && before(h[r] as SessionStream, h[m] as SessionStream)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m] as SessionStream, h[i] as SessionStream];
      i = m;
    }
    return { session: top, event };
  }

  /** Drops every pending event (the world's end cuts sessions off); returns how many. */
  clear(): number {
    let n = 0;
    for (const s of this.#heap) n += s.events.length - s.next;
    this.#heap.length = 0;
    return n;
  }
}
