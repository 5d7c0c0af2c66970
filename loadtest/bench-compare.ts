/**
 * `make bench-compare A=reports/old.json B=reports/bench.json`: two `make bench` reports side by
 * side — each figure of both runs with the change (b / a for rates, b − a for ms and recall), then
 * every recorded setting in which the runs differ, and warnings (loadtest/bench/compare.ts says
 * which). Exit status 2 when a file cannot be read as a bench report.
 */
import { readFile } from 'node:fs/promises';
import type { BenchReport } from './bench/ceiling-ratio.js';
import type { ComparedFigure } from './bench/compare.js';
import { compareBenchReports } from './bench/compare.js';
import { printTable } from './bench/table.js';

const out = (s: string) => process.stdout.write(s);

/** At most `n` characters of a condition's JSON text, so one long value does not widen the table past reading. */
function clip(text: string, n = 60): string {
  return text.length <= n ? text : `${text.slice(0, n - 1)}…`;
}

/** ×ratio or ±difference, '—' when a run did not measure the figure. */
function formatChange(f: ComparedFigure): string {
  if (f.change === null) return '—';
  if (f.changeKind === 'ratio') return `×${f.change.toFixed(3)}`;
  return `${f.change >= 0 ? '+' : ''}${f.change.toFixed(3)}`;
}

async function readReport(file: string): Promise<BenchReport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as BenchReport;
  } catch (err) {
    throw new Error(`${file} is not JSON: ${(err as Error).message}`);
  }
}

async function main(): Promise<void> {
  const [fileA, fileB] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (fileA === undefined || fileB === undefined) throw new Error('usage: bench-compare <a: baseline bench.json> <b: bench.json>');
  const c = compareBenchReports(await readReport(fileA), await readReport(fileB));
  printTable(
    `make bench: ${fileB} (b) against ${fileA} (a)`,
    ['figure', 'a', 'b', 'change'],
    c.figures.map((f) => [f.figure, f.a ?? '—', f.b ?? '—', formatChange(f)]),
    { change: 'b / a for rates and ratios, b - a for ms and recall', missing: '— where a run did not measure it' },
    out,
  );
  if (c.differing.length === 0) out('\nsettings: the same in both runs (load averages and the runs\' own measurements aside)\n');
  else {
    printTable(
      'Settings that differ',
      ['setting', 'a', 'b'],
      c.differing.map((d) => [d.key, d.detail !== undefined ? `(${clip(d.detail, 120)})` : clip(d.a), d.detail !== undefined ? '' : clip(d.b)]),
      { count: c.differing.length },
      out,
    );
  }
  for (const w of c.warnings) out(`warning: ${w}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-compare: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
});
