/**
 * A one-line progress bar for long offline jobs, written to a stream (stderr by default). On a
 * terminal the line redraws in place; otherwise a line is printed at most every `intervalMs` so
 * logs stay short.
 */
import type { GenerationProgress } from './generate.js';

/** Options of {@link progressBar}. */
export interface ProgressBarOptions {
  /** Where to draw. Default process.stderr. */
  readonly stream?: NodeJS.WriteStream;
  /** Minimum ms between redraws. Default 250 on a terminal, 5000 otherwise. */
  readonly intervalMs?: number;
}

function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--:--';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}:${String(sec).padStart(2, '0')}`;
}

/** Text of one progress line (exported for tests). */
export function formatProgress(p: GenerationProgress): string {
  const width = 24;
  const filled = Math.round(p.fraction * width);
  const rate = p.elapsedMs > 0 ? (p.events / p.elapsedMs) * 1000 : 0;
  const eta = p.fraction > 0 && p.fraction < 1 ? (p.elapsedMs * (1 - p.fraction)) / p.fraction : p.fraction >= 1 ? 0 : NaN;
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(p.fraction * 100).toFixed(1).padStart(5)}% ` +
    `${p.phase}${p.phase === 'events' ? ` day ${p.day + 1}/${p.days}` : ''} ` +
    `${(p.events / 1e6).toFixed(2)}M events ${(rate / 1e3).toFixed(0)}k ev/s ${(p.bytes / 1e6).toFixed(0)} MB ` +
    `elapsed ${fmtDuration(p.elapsedMs)} ETA ${fmtDuration(eta)}`
  );
}

/** Returns an `onProgress` callback that draws a progress bar. */
export function progressBar(opts: ProgressBarOptions = {}): (p: GenerationProgress) => void {
  const stream = opts.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const interval = opts.intervalMs ?? (tty ? 250 : 5000);
  let last = -Infinity;
  return (p) => {
    const now = performance.now();
    const final = p.phase === 'done';
    if (!final && now - last < interval) return;
    last = now;
    const line = formatProgress(p);
    stream.write(tty ? `\r${line}\x1b[K${final ? '\n' : ''}` : `${line}\n`);
  };
}
