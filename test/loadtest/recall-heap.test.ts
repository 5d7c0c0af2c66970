// The recall bench holds every item as a JS object: a corpus that does not fit the heap limit is
// refused up front with the flag to raise it (at 10M items the default 4 GB heap aborted minutes in).
import t from 'tap';
import { RECALL_HEAP_BYTES_PER_ITEM, assertRecallHeap } from '../../loadtest/bench/recall.js';

const GiB = 2 ** 30;

t.test('a corpus that fits passes; one that does not names the heap flag it needs', async (t) => {
  t.doesNotThrow(() => assertRecallHeap(1_000_000, 4 * GiB), '1M items in the default ~4 GB heap');
  let message = '';
  try {
    assertRecallHeap(10_000_000, 4 * GiB);
  } catch (err) {
    message = (err as Error).message;
  }
  t.match(message, /10000000 items/);
  const m = /--max-old-space-size=(\d+)/.exec(message);
  t.ok(m !== null, `names the flag: ${message}`);
  const mib = Number(m?.[1]);
  t.ok(mib * 2 ** 20 >= 10_000_000 * RECALL_HEAP_BYTES_PER_ITEM, `${mib} MiB covers the items`);
  t.doesNotThrow(() => assertRecallHeap(10_000_000, mib * 2 ** 20), 'and the limit it suggests passes');
});
