/**
 * Time split of joined rows (sorted by servedAtMs): the earliest share trains, the next validates
 * (calibration), the latest tests (both rankers are compared on it). Cuts fall between requests,
 * never inside one, so a request's rows share a split. Pure.
 */
import { failedPrecondition } from '../../core/status.js';
import type { JoinedRows } from './join.js';

/** Default share of rows that validate (calibration). 0.1. */
export const DEFAULT_VALID_SHARE = 0.1;
/** Default share of rows that test. 0.1. */
export const DEFAULT_TEST_SHARE = 0.1;
/** Default fewest rows any split may hold. 200. */
export const DEFAULT_MIN_SPLIT_ROWS = 200;

/** Options of {@link timeSplit}. */
export interface TimeSplitOptions {
  /** Share of rows (0..1) for validation. Default {@link DEFAULT_VALID_SHARE}. */
  readonly validShare?: number;
  /** Share of rows (0..1) for the test. Default {@link DEFAULT_TEST_SHARE}; train gets the rest. */
  readonly testShare?: number;
  /** Fewest rows each split must hold. Default {@link DEFAULT_MIN_SPLIT_ROWS}. */
  readonly minSplitRows?: number;
}

/** Row ranges [start, end) of each split. */
export interface TimeSplit {
  readonly train: { readonly start: number; readonly end: number };
  readonly valid: { readonly start: number; readonly end: number };
  readonly test: { readonly start: number; readonly end: number };
}

function share(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!(Number.isFinite(x) && x > 0 && x < 1)) throw new TypeError(`option ${name} must be a share in (0, 1), got ${String(v)}`);
  return x;
}

/** First row index ≥ `at` that starts a new request (or count). */
function requestBoundary(rows: JoinedRows, at: number): number {
  let i = Math.max(0, Math.min(rows.count, at));
  while (i > 0 && i < rows.count && rows.request[i] === rows.request[i - 1]) i++;
  return i;
}

/**
 * Splits `rows` by time. FAILED_PRECONDITION when a split would hold fewer than `minSplitRows` rows
 * (the message names the minimum and the rows there are).
 */
export function timeSplit(rows: JoinedRows, o: TimeSplitOptions = {}): TimeSplit {
  const validShare = share('validShare', o.validShare, DEFAULT_VALID_SHARE);
  const testShare = share('testShare', o.testShare, DEFAULT_TEST_SHARE);
  if (validShare + testShare >= 1) throw new TypeError(`options validShare + testShare must be < 1 (train gets the rest), got ${validShare} + ${testShare}`);
  const min = o.minSplitRows ?? DEFAULT_MIN_SPLIT_ROWS;
  if (!Number.isInteger(min) || min < 1) throw new TypeError(`option minSplitRows must be a positive integer, got ${String(o.minSplitRows)}`);
  const n = rows.count;
  const trainEnd = requestBoundary(rows, Math.round(n * (1 - validShare - testShare)));
  const validEnd = Math.max(trainEnd, requestBoundary(rows, Math.round(n * (1 - testShare))));
  const split: TimeSplit = { train: { start: 0, end: trainEnd }, valid: { start: trainEnd, end: validEnd }, test: { start: validEnd, end: n } };
  for (const [name, r] of Object.entries(split) as [string, { start: number; end: number }][]) {
    if (r.end - r.start < min) {
      throw failedPrecondition(
        `too few joined rows to split: the ${name} split would hold ${r.end - r.start} of ${n} rows and needs at least ${min} ` +
          `(shares train ${(1 - validShare - testShare).toFixed(2)} / valid ${validShare} / test ${testShare}; log more requests, wait for their windows to close, or lower the minimum)`,
      );
    }
  }
  return split;
}
