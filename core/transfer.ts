/**
 * Bytes for a postMessage hop between threads. Structured clone copies a typed array's WHOLE
 * backing ArrayBuffer, not just the view: a NATS message's `data` is a view into the socket read
 * chunk (9 KB and more for a ~100-byte request, measured with nats.js v3), and protobufjs output
 * may sit in Node's 8 KB Buffer pool. Profiling the cluster at 100 req/s put `postMessage` at 10%
 * of all node CPU (31% of one node's main thread).
 *
 * {@link forTransfer} makes an exact-size copy (a memcpy of the payload: ~1 µs per few KB) and
 * returns it with its buffer to transfer, so the hop moves only the payload and never detaches a
 * buffer someone else still reads (transferring a pool slab or a socket chunk would).
 */
export function forTransfer(bytes: Uint8Array): { readonly bytes: Uint8Array; readonly transfer: ArrayBuffer[] } {
  // Not bytes.slice(): on a Node Buffer (protobufjs output) slice() is a view, not a copy, and
  // transferring its buffer would detach Node's shared pool.
  const owned = new Uint8Array(bytes.byteLength);
  owned.set(bytes);
  return { bytes: owned, transfer: [owned.buffer as ArrayBuffer] };
}

/** Anything with postMessage and a transfer list: a Worker, a MessagePort. */
export interface TransferTarget {
  postMessage(value: unknown, transferList: ArrayBuffer[]): void;
}

/** Posts `m` with its `key` bytes replaced by an exact-size copy that is transferred ({@link forTransfer}). */
export function postWithOwnedBytes<M extends object, K extends keyof M>(target: TransferTarget, m: M, key: K): void {
  const t = forTransfer(m[key] as Uint8Array);
  target.postMessage({ ...m, [key]: t.bytes }, t.transfer);
}

/** True when `view` covers its whole buffer, so the buffer can be transferred instead of copied. */
export function spansBuffer(view: ArrayBufferView): boolean {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
}
