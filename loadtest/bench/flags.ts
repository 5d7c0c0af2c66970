/** Command-line numbers of the standalone benches (node:util parseArgs leaves them as strings). */

/** `--name`'s value as a positive integer, `fallback` when absent; TypeError naming the flag otherwise. */
export function positiveIntFlag(value: string | undefined, fallback: number, name: string): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new TypeError(`--${name} must be a positive integer, got ${value}`);
  return n;
}
