/** Prints a benchmark result as an aligned text table with its conditions underneath. */
/** One bench's rows and the conditions they were measured under (printed under the table). */
export interface BenchRows<R> {
  readonly results: readonly R[];
  readonly conditions: Readonly<Record<string, unknown>>;
}

export function printTable(title: string, head: readonly string[], rows: ReadonlyArray<readonly (string | number)[]>, conditions: Readonly<Record<string, unknown>>, out: (s: string) => void = (s) => process.stdout.write(s)): void {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmtNum(c) : c)))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: readonly (string | number)[]) => r.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
  out(`\n${title}\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of cells.slice(1)) out(`${line(r)}\n`);
  out(`conditions: ${Object.entries(conditions).map(([k, v]) => `${k}=${String(v)}`).join(', ')}\n`);
}

function fmtNum(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

/** CPU seconds (user + system) of this process since `from`. */
export function cpuSecondsSince(from: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1e6;
}
