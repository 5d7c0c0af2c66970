// The feature-log collector's two ends (offline/logged/served.ts): over `maxRows` it keeps the oldest
// whole requests (and stops reading) or, for scheduled retraining, the newest (reading on, dropping
// the oldest), with the row count, the order and the truncation flag right either way.
import t from 'tap';
import { ServedRequestsCollector } from '../../offline/logged/served.js';
import type { ServedRowsMsg } from '../../protos/codec.js';

const WIDTH = 2;
/** A ServedRows message of `n` rows for request `i`. */
function msg(i: number, n: number): ServedRowsMsg {
  return {
    requestId: `r${i}`,
    userId: i,
    modelVersion: 'v',
    featureSpecHash: 'h',
    surface: 'home',
    servedAtMs: 1000 + i,
    videoIds: Array.from({ length: n }, (_, k) => i * 100 + k),
    slots: Array.from({ length: n }, (_, k) => k),
    width: WIDTH,
    rows: new Uint8Array(n * WIDTH * 4),
  };
}

t.test('keep oldest: whole requests up to maxRows, then it stops', async (t) => {
  const c = new ServedRequestsCollector(10);
  const wanted = [3, 3, 3, 3, 3].map((n, i) => c.add(msg(i, n), i + 1));
  t.same(wanted, [true, true, true, false, false], 'the fourth request would cross 10 rows');
  const r = c.result();
  t.same(r.requests.map((q) => q.requestId), ['r0', 'r1', 'r2']);
  t.equal(r.rows, 9);
  t.equal(r.truncated, true);
});

t.test('keep newest: reads on, drops the oldest whole requests, keeps the order', async (t) => {
  const c = new ServedRequestsCollector(10, 'newest');
  for (let i = 0; i < 8; i++) t.equal(c.add(msg(i, 3), i + 1), true, `wants request ${i}`);
  const r = c.result();
  t.same(r.requests.map((q) => q.requestId), ['r5', 'r6', 'r7'], 'the newest that fit');
  t.equal(r.rows, 9);
  t.equal(r.truncated, true, 'some were dropped');
  t.same(r.requests.map((q) => q.seq), [6, 7, 8]);
  // A request larger than maxRows on its own is skipped, not allowed to empty the window.
  c.add(msg(99, 11), 9);
  t.same(c.result().requests.map((q) => q.requestId), ['r5', 'r6', 'r7']);
});

t.test('keep newest over many messages (the compaction path)', async (t) => {
  const c = new ServedRequestsCollector(5, 'newest');
  for (let i = 0; i < 5000; i++) c.add(msg(i, 1), i + 1);
  const r = c.result();
  t.same(r.requests.map((q) => q.requestId), ['r4995', 'r4996', 'r4997', 'r4998', 'r4999']);
  t.equal(r.rows, 5);
  const under = new ServedRequestsCollector(100, 'newest');
  for (let i = 0; i < 4; i++) under.add(msg(i, 2), i + 1);
  t.equal(under.result().truncated, false, 'nothing dropped: not truncated');
});
