/**
 * Inline SVG line charts for the self-contained report page: no scripts, no external CSS, so the
 * file opens anywhere and can be attached to a ticket.
 */

/** One line. */
export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  /** CSS colour; default from a fixed palette. */
  readonly color?: string;
  /** Dashed line (e.g. a limit). */
  readonly dashed?: boolean;
}

/** A vertical marker on the x axis (an event on a timeline). */
export interface Marker {
  readonly x: number;
  readonly label: string;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly markers?: readonly Marker[];
  /** Horizontal reference line (e.g. the SLO). */
  readonly hLine?: { readonly y: number; readonly label: string };
  /** Logarithmic y axis (latency spanning decades). Default false. */
  readonly logY?: boolean;
  /** Pixels. Default 760 × 320. */
  readonly width?: number;
  readonly height?: number;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Escapes text for XML/HTML. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function label(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (a >= 100 || v === 0) return v.toFixed(0);
  if (a >= 1) return Number(v.toFixed(1)).toString();
  return Number(v.toPrecision(2)).toString();
}

/** Renders a line chart as an `<svg>` element string. */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 760;
  const H = o.height ?? 320;
  const m = { l: 64, r: 150, t: 30, b: 44 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = [...all.map(([x]) => x), ...(o.markers ?? []).map((mk) => mk.x)];
  let x0 = xs.length ? Math.min(...xs) : 0;
  let x1 = xs.length ? Math.max(...xs) : 1;
  if (x1 === x0) x1 = x0 + 1;
  const logY = o.logY ?? false;
  const ysRaw = [...all.map(([, y]) => y), ...(o.hLine ? [o.hLine.y] : [])].filter((y) => !logY || y > 0);
  let y0 = logY ? Math.min(...ysRaw, 1) : 0;
  let y1 = ysRaw.length ? Math.max(...ysRaw) : 1;
  if (y1 <= y0) y1 = y0 + 1;
  if (!logY) y1 *= 1.05;
  const ty = (y: number) => (logY ? Math.log10(Math.max(y, y0)) : y);
  const [ly0, ly1] = logY ? [Math.floor(Math.log10(y0)), Math.ceil(Math.log10(y1))] : [y0, y1];
  if (logY) {
    y0 = 10 ** ly0;
    y1 = 10 ** ly1;
  }
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.t + ph - ((ty(y) - ly0) / (ly1 - ly0 || 1)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.title)}">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${m.l}" y="18" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  // Axes and grid.
  const yTicks = logY ? Array.from({ length: ly1 - ly0 + 1 }, (_, i) => 10 ** (ly0 + i)) : ticks(0, y1);
  for (const v of yTicks) {
    const y = sy(v);
    parts.push(`<line x1="${m.l}" y1="${y.toFixed(1)}" x2="${m.l + pw}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(y + 4).toFixed(1)}" font-size="11" text-anchor="end">${label(v)}</text>`);
  }
  for (const v of ticks(x0, x1)) {
    const x = sx(v);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${m.t + ph}" x2="${x.toFixed(1)}" y2="${m.t + ph + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x.toFixed(1)}" y="${m.t + ph + 17}" font-size="11" text-anchor="middle">${label(v)}</text>`);
  }
  parts.push(`<line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 6}" font-size="12" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text x="14" y="${m.t + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${m.t + ph / 2})">${esc(o.yLabel)}${logY ? ' (log)' : ''}</text>`);
  if (o.hLine) {
    const y = sy(o.hLine.y);
    parts.push(`<line class="slo" x1="${m.l}" y1="${y.toFixed(1)}" x2="${m.l + pw}" y2="${y.toFixed(1)}" stroke="#d62728" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${m.l + pw - 4}" y="${(y - 4).toFixed(1)}" font-size="11" fill="#d62728" text-anchor="end">${esc(o.hLine.label)}</text>`);
  }
  (o.markers ?? []).forEach((mk, i) => {
    const x = sx(mk.x);
    parts.push(`<line class="marker" x1="${x.toFixed(1)}" y1="${m.t}" x2="${x.toFixed(1)}" y2="${m.t + ph}" stroke="#555" stroke-dasharray="2 3"/>`);
    parts.push(`<text x="${(x + 3).toFixed(1)}" y="${m.t + 12 + (i % 4) * 12}" font-size="10" fill="#333">${esc(mk.label)}</text>`);
  });
  o.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0));
    if (pts.length > 0) {
      const d = pts.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      if (pts.length <= 40) for (const [x, y] of pts) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${color}"/>`);
    }
    const ly = m.t + 10 + i * 16;
    parts.push(`<line x1="${m.l + pw + 12}" y1="${ly}" x2="${m.l + pw + 30}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${m.l + pw + 34}" y="${ly + 4}" font-size="11">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}
