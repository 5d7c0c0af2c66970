/**
 * ServedRowsCollector (offline/skew/served-rows.ts): rows decoded from the wire are copied out of
 * protobufjs' pooled buffer, other feature specs are skipped and named, maxRows truncates.
 */
import t from 'tap';
import type { ServedRowsMsg } from '../../protos/codec.js';
import { Codecs } from '../../protos/codec.js';
import { ServedRowsCollector, describeMismatch } from '../../offline/skew/served-rows.js';

const W = 3;

function msg(hash: string, width: number, rows: number[][], extra: Partial<ServedRowsMsg> = {}): ServedRowsMsg {
  const floats = Float32Array.from(rows.flat());
  return {
    requestId: 'r',
    userId: 1,
    modelVersion: 'v1',
    featureSpecHash: hash,
    width,
    videoIds: rows.map((_, i) => 100 + i),
    slots: rows.map((_, i) => i),
    rows: new Uint8Array(floats.buffer),
    servedAtMs: 1000,
    surface: 'home',
    ...extra,
  };
}

/** Encode then decode, as the reader gets them (rows a view into a pooled buffer). */
const wire = (m: ServedRowsMsg): ServedRowsMsg => Codecs.servedRows.decode(Codecs.servedRows.encode(m));

t.test('takes rows of the expected spec, copies them, counts mismatches by hash', async (t) => {
  const c = new ServedRowsCollector({ featureSpecHash: 'aaaa', width: W, maxRows: 100 });
  t.ok(c.add(wire(msg('aaaa', W, [[1, 2, 3], [4, 5, 6]], { servedAtMs: 2000, modelVersion: 'v2' }))));
  t.ok(c.add(wire(msg('bbbb', W, [[9, 9, 9]]))));
  t.ok(c.add(wire(msg('bbbb', W, [[9, 9, 9], [8, 8, 8]]))));
  t.ok(c.add(wire(msg('aaaa', 4, [[9, 9, 9, 9]]))), 'right hash, wrong width: skipped');
  t.ok(c.add(wire(msg('aaaa', W, [[7, 8, 9]]))));
  const bad = msg('aaaa', W, [[1, 2, 3]]);
  c.add({ ...bad, rows: bad.rows.subarray(0, 8) });
  const r = c.result();
  t.equal(r.count, 3);
  t.same([...r.rows], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.equal(r.messages, 2);
  t.equal(r.malformed, 1);
  t.same(r.mismatches, [
    { featureSpecHash: 'bbbb', width: W, messages: 2, rows: 3 },
    { featureSpecHash: 'aaaa', width: 4, messages: 1, rows: 1 },
  ]);
  t.same(r.modelVersions, ['v1', 'v2']);
  t.equal(r.firstServedAtMs, 1000);
  t.equal(r.lastServedAtMs, 2000);
  t.equal(r.truncated, false);
  const line = describeMismatch(r.mismatches[0]!, { featureSpecHash: 'aaaa', width: W });
  t.match(line, /bbbb/);
  t.match(line, /aaaa/);
});

t.test('maxRows truncates and stops', async (t) => {
  const c = new ServedRowsCollector({ featureSpecHash: 'h', width: W, maxRows: 3 });
  t.equal(c.add(wire(msg('h', W, [[1, 1, 1], [2, 2, 2]]))), true);
  t.equal(c.add(wire(msg('h', W, [[3, 3, 3], [4, 4, 4]]))), false);
  t.equal(c.add(wire(msg('h', W, [[5, 5, 5]]))), false);
  const r = c.result();
  t.equal(r.count, 3);
  t.same([...r.rows], [1, 1, 1, 2, 2, 2, 3, 3, 3]);
  t.equal(r.truncated, true);
  t.equal(r.messages, 2);
});

t.test('grows past its first allocation', async (t) => {
  const c = new ServedRowsCollector({ featureSpecHash: 'h', width: 1, maxRows: 10_000 });
  for (let i = 0; i < 50; i++) c.add(wire(msg('h', 1, Array.from({ length: 100 }, (_, k) => [i * 100 + k]))));
  const r = c.result();
  t.equal(r.count, 5000);
  t.equal(r.rows[4999], 4999);
  t.equal(r.rows[0], 0);
});

t.test('options are validated', async (t) => {
  t.throws(() => new ServedRowsCollector({ featureSpecHash: 'h', width: 0, maxRows: 1 }), /width/);
  t.throws(() => new ServedRowsCollector({ featureSpecHash: 'h', width: 1, maxRows: 0 }), /maxRows/);
});
