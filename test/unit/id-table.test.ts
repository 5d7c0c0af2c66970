/**
 * IdTable: rows found again after growth, ids that collide in the low bits or exceed 32 bits, and
 * columns that keep their values across growth.
 */
import t from 'tap';
import { SeededRng } from '../../core/clock.js';
import { IdTable } from '../../core/id-table.js';

t.test('insert / rowOf agree with a Map across growth, for dense, strided and large ids', async (t) => {
  const table = new IdTable(['a', 'b'] as const, 8);
  const reference = new Map<number, number>();
  const rng = new SeededRng(5);
  const ids: number[] = [];
  for (let i = 1; i <= 3000; i++) ids.push(i); // dense
  for (let i = 1; i <= 3000; i++) ids.push(i * 65536); // same low 16 bits
  for (let i = 1; i <= 3000; i++) ids.push(2 ** 40 + i * 4294967296); // same low 32 bits, beyond 32 bits
  for (let i = 0; i < 3000; i++) ids.push(rng.int(2 ** 31));
  let notDense = 0;
  for (const id of ids) {
    if (reference.has(id)) continue;
    const row = table.insert(id);
    if (row !== reference.size) notDense++;
    reference.set(id, row);
    table.column('a')[row] = id;
    table.column('b')[row] = -row;
  }
  t.equal(notDense, 0, 'rows are dense, in insertion order');
  t.equal(table.size, reference.size);
  let wrong = 0;
  for (const [id, row] of reference) {
    if (table.rowOf(id) !== row || table.idAt(row) !== id || table.column('a')[row] !== id || table.column('b')[row] !== -row) wrong++;
    if (table.insert(id) !== row) wrong++;
  }
  t.equal(wrong, 0, 'every id maps to its row and columns survived growth');
  t.equal(table.rowOf(0), -1, 'absent id');
  t.equal(table.rowOf(2 ** 40), -1, 'absent large id');
  t.equal(table.size, reference.size, 'inserting existing ids adds no row');
  t.ok(table.bytes < reference.size * 60, `${(table.bytes / reference.size).toFixed(1)} bytes per entry with two columns`);
});

t.test('ids that differ only in high or strided bits still spread over the buckets', async (t) => {
  for (const [name, idOf] of [
    ['dense', (i: number) => i + 1],
    ['multiples of 2^20', (i: number) => (i + 1) * 2 ** 20],
    ['multiples of 2^32', (i: number) => (i + 1) * 2 ** 32],
  ] as const) {
    const table = new IdTable(['a'] as const);
    for (let i = 0; i < 20_000; i++) table.insert(idOf(i));
    const probes = table.meanProbeLength();
    t.ok(probes < 2.5, `${name}: ${probes.toFixed(2)} buckets visited per lookup`);
  }
});
