/**
 * A one-line progress bar on stderr with examples/s. On a TTY it redraws in place; otherwise it
 * prints at most one line per 10% so CI logs stay short.
 */
export class ProgressBar {
  readonly #label: string;
  readonly #total: number;
  readonly #enabled: boolean;
  readonly #startMs = performance.now();
  #done = 0;
  #lastDecile = -1;
  #lastDrawMs = 0;

  /** `total` is in examples; nothing is printed when `enabled` is false. */
  constructor(label: string, total: number, enabled: boolean) {
    this.#label = label;
    this.#total = Math.max(1, total);
    this.#enabled = enabled;
  }

  /** Examples per second so far. */
  get rate(): number {
    const s = (performance.now() - this.#startMs) / 1000;
    return s > 0 ? this.#done / s : 0;
  }

  tick(examples: number, note = ''): void {
    this.#done += examples;
    if (!this.#enabled) return;
    const frac = Math.min(1, this.#done / this.#total);
    const tty = process.stderr.isTTY === true;
    const now = performance.now();
    if (tty) {
      if (now - this.#lastDrawMs < 100 && frac < 1) return;
      this.#lastDrawMs = now;
      const width = 24;
      const full = Math.round(frac * width);
      process.stderr.write(
        `\r${this.#label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${Math.round(this.rate).toLocaleString('en-US')} ex/s ${note}   `,
      );
    } else {
      const decile = Math.floor(frac * 10);
      if (decile === this.#lastDecile) return;
      this.#lastDecile = decile;
      process.stderr.write(`${this.#label} ${(frac * 100).toFixed(0)}% ${Math.round(this.rate)} ex/s ${note}\n`);
    }
  }

  /** Ends the line (TTY) so later output starts clean. */
  finish(note = ''): void {
    if (!this.#enabled) return;
    if (process.stderr.isTTY === true) process.stderr.write(`\r${this.#label} done ${Math.round(this.rate).toLocaleString('en-US')} ex/s ${note}\n`);
    else process.stderr.write(`${this.#label} done ${Math.round(this.rate)} ex/s ${note}\n`);
  }
}
