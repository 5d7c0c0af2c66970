/**
 * ItemColumns keeps one fixed-size record per row; snapshots keep the column-major columns.bin
 * format. These check every field survives append, growth, tombstones, the snapshot bytes and the
 * way back, so a wrong slot or stride in the record layout fails here.
 */
import t from 'tap';
import { COLUMN_NAMES, ItemColumns, ROW_BYTES } from '../../actors/item-shard/columns.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { emptyCandidateBatch } from '../../protos/convert.js';

function item(i: number): ItemFeatures {
  return {
    videoId: 1_000_000_000_000 + i * 7, // beyond 2^32: float64 ids must stay exact
    creatorId: 5_000_000_000 + i,
    category: i % 31,
    durationS: 10.5 + i,
    uploadTsMs: 1_700_000_000_000 + i * 1000,
    impressions: 100 + i,
    clicks: 10 + i,
    watches: 3 + i,
    watchRatioSum: 0.25 * i,
  };
}

t.test('every field of every row survives appends past the initial capacity', async (t) => {
  const cols = new ItemColumns(16);
  const n = 100; // grows 16 -> 32 -> 64 -> 128
  for (let i = 0; i < n; i++) t.equal(cols.append(item(i), item(i)), i);
  t.equal(cols.rows, n);
  t.equal(cols.size, n);
  for (let i = 0; i < n; i++) {
    t.same(cols.featuresAt(i), item(i), `row ${i}`);
    t.equal(cols.rowOf(item(i).videoId), i);
    t.equal(cols.videoIdAt(i), item(i).videoId);
  }
  t.equal(cols.videoIdAt(n), -1, 'a row past the used ones reads as a tombstone');
  t.ok(cols.memoryBytes() >= 128 * ROW_BYTES);
});

t.test('pushCandidate copies the row\'s fields into the batch columns', async (t) => {
  const cols = new ItemColumns(4);
  for (let i = 0; i < 5; i++) cols.append(item(i), item(i));
  const batch = emptyCandidateBatch();
  cols.pushCandidate(batch, 3, 0.75);
  cols.pushCandidate(batch, 1, 0.5);
  const a = item(3);
  const b = item(1);
  t.same(batch, {
    videoIds: [a.videoId, b.videoId], scores: [0.75, 0.5], creatorIds: [a.creatorId, b.creatorId],
    categories: [a.category, b.category], durationS: [a.durationS, b.durationS], uploadTsMs: [a.uploadTsMs, b.uploadTsMs],
    impressions: [a.impressions, b.impressions], clicks: [a.clicks, b.clicks], watches: [a.watches, b.watches],
    watchRatioSums: [a.watchRatioSum, b.watchRatioSum],
  });
});

t.test('updateMeta keeps the counters; remove tombstones only its row', async (t) => {
  const cols = new ItemColumns();
  for (let i = 0; i < 3; i++) cols.append(item(i), item(i));
  cols.updateMeta(1, { ...item(1), category: 30, durationS: 99 });
  t.same(cols.featuresAt(1), { ...item(1), category: 30, durationS: 99 });
  t.equal(cols.remove(item(0).videoId), 0);
  t.equal(cols.remove(item(0).videoId), undefined);
  t.equal(cols.videoIdAt(0), -1);
  t.equal(cols.size, 2);
  t.same(cols.featuresAt(2), item(2));
});

t.test('snapshot bytes are the columns back to back (the columns.bin format), and fromSnapshotBytes reads them back', async (t) => {
  const cols = new ItemColumns(8);
  for (let i = 0; i < 20; i++) cols.append(item(i), item(i));
  cols.remove(item(4).videoId);
  // The format written independently of the implementation: each column in COLUMN_NAMES order.
  const fields: Record<(typeof COLUMN_NAMES)[number], [keyof ItemFeatures, new (n: number) => Float64Array | Int32Array | Uint32Array | Float32Array]> = {
    videoIds: ['videoId', Float64Array], creatorIds: ['creatorId', Float64Array], categories: ['category', Int32Array], durationS: ['durationS', Float32Array],
    uploadTsMs: ['uploadTsMs', Float64Array], impressions: ['impressions', Uint32Array], clicks: ['clicks', Uint32Array], watches: ['watches', Uint32Array],
    watchRatioSums: ['watchRatioSum', Float32Array],
  };
  const expected = Buffer.concat(COLUMN_NAMES.map((name) => {
    const [field, Ctor] = fields[name];
    const a = new Ctor(20);
    for (let r = 0; r < 20; r++) a[r] = r === 4 && name === 'videoIds' ? -1 : (item(r)[field] as number);
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  }));
  const bytes = cols.snapshotBytes();
  t.same(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), expected, 'the file bytes');

  // Read back, also from a buffer that starts off an 8-byte boundary (a pooled Buffer from readFile).
  const shifted = new Uint8Array(bytes.byteLength + 3);
  shifted.set(bytes, 3);
  for (const [what, src] of [['aligned', bytes], ['unaligned', shifted.subarray(3)]] as const) {
    const back = ItemColumns.fromSnapshotBytes(src, 20);
    t.equal(back.size, 19, `${what}: live items`);
    t.equal(back.rowOf(item(4).videoId), undefined, `${what}: the tombstone stays one`);
    for (let r = 0; r < 20; r++) if (r !== 4) t.same(back.featuresAt(r), cols.featuresAt(r), `${what}: row ${r}`);
  }
  t.throws(() => ItemColumns.fromSnapshotBytes(bytes.subarray(1), 20), RangeError, 'a short file is refused');
});
