/**
 * Prometheus text exposition (format 0.0.4) of a node's state. Pure: takes the node's and its
 * actors' `stats()` objects and renders them, so the rendering is unit-tested without a server.
 *
 * Actors' stats are plain objects whose shape each actor owns; rather than hard-coding every field
 * here (and breaking whenever an actor adds a counter), numeric leaves are flattened into metric
 * names (`upnext_<actor>_<path>`), histogram snapshots ({bucketsMs, counts, count, sumMs}) become
 * Prometheus histograms in seconds, string leaves become `…_info{value="…"} 1`, and
 * {@link LabeledStats} (core/labeled-stats.ts) add a label per entry instead of a name segment.
 */

import { isLabeledStats } from '../../core/labeled-stats.js';
import type { StallSnapshot } from './stall-watch.js';

/** One actor instance's stats, as returned by its handle's `stats()`. */
export interface ActorStatsEntry {
  /** Actor kind, a metric-name token: "item_shard", "user_partition", "ranker", "coordinator", "popular". */
  readonly kind: string;
  /** Shard / partition index, when the kind has one. */
  readonly index?: number;
  readonly stats: unknown;
}

/** Process-level figures of the node. */
export interface ProcessSample {
  /** User + system CPU time since the process started, seconds. */
  readonly cpuSecondsTotal: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Event-loop lateness p99 since the last scrape, ms (how blocked the main loop is; cluster/node/stall-watch.ts). */
  readonly eventLoopDelayP99Ms: number;
  readonly uptimeSeconds: number;
  /** GC pauses and each second's worst event-loop delay (cluster/node/stall-watch.ts), when watched. */
  readonly stalls?: StallSnapshot;
}

/** Everything rendered by {@link renderMetrics}. */
export interface NodeMetricsInput {
  readonly node: string;
  readonly cluster: string;
  readonly mapVersion: number;
  /** Model version the node serves (from the model manifest), or "" when unknown. */
  readonly modelVersion: string;
  readonly process: ProcessSample;
  readonly actors: readonly ActorStatsEntry[];
}

interface HistogramLike {
  bucketsMs: readonly number[];
  counts: readonly number[];
  count: number;
  sumMs: number;
}

function isHistogram(v: unknown): v is HistogramLike {
  if (typeof v !== 'object' || v === null) return false;
  const h = v as Partial<HistogramLike>;
  return Array.isArray(h.bucketsMs) && Array.isArray(h.counts) && typeof h.count === 'number' && typeof h.sumMs === 'number';
}

/** snake_case metric-name token from a camelCase or dotted path segment. */
export function metricToken(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9_]/g, '_')
    .toLowerCase();
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Readonly<Record<string, string | number>>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Collects samples per metric name so each name gets one TYPE line, even across actors. */
class Exposition {
  readonly #families = new Map<string, { type: string; help: string; lines: string[] }>();

  add(name: string, type: string, help: string, line: string): void {
    let f = this.#families.get(name);
    if (!f) {
      f = { type, help, lines: [] };
      this.#families.set(name, f);
    }
    f.lines.push(line);
  }

  sample(name: string, type: string, help: string, labels: Readonly<Record<string, string | number>>, value: number): void {
    this.add(name, type, help, `${name}${labelText(labels)} ${num(value)}`);
  }

  histogram(name: string, help: string, labels: Readonly<Record<string, string | number>>, h: HistogramLike): void {
    let acc = 0;
    h.counts.forEach((c, i) => {
      acc += c;
      const le = i < h.bucketsMs.length ? num(h.bucketsMs[i]! / 1000) : '+Inf';
      this.add(name, 'histogram', help, `${name}_bucket${labelText({ ...labels, le })} ${acc}`);
    });
    this.add(name, 'histogram', help, `${name}_sum${labelText(labels)} ${num(h.sumMs / 1000)}`);
    this.add(name, 'histogram', help, `${name}_count${labelText(labels)} ${h.count}`);
  }

  text(): string {
    const out: string[] = [];
    for (const [name, f] of this.#families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.lines);
    }
    return `${out.join('\n')}\n`;
  }
}

function walk(
  exp: Exposition,
  prefix: string,
  labels: Readonly<Record<string, string | number>>,
  value: unknown,
  depth: number,
): void {
  if (depth > 6) return;
  if (typeof value === 'number') {
    exp.sample(prefix, 'gauge', `${prefix} (from actor stats)`, labels, value);
  } else if (typeof value === 'boolean') {
    exp.sample(prefix, 'gauge', `${prefix} (from actor stats, 1 = true)`, labels, value ? 1 : 0);
  } else if (typeof value === 'string') {
    exp.sample(`${prefix}_info`, 'gauge', `${prefix} (from actor stats, as a label)`, { ...labels, value }, 1);
  } else if (isHistogram(value)) {
    exp.histogram(`${prefix}_seconds`, `${prefix} latency (from actor stats)`, labels, value);
  } else if (isLabeledStats(value)) {
    // e.g. per surface: the same names, one series per label value. A label name already in use
    // (node, cluster, index, or an outer labeled block's) gets a `label_` prefix rather than
    // overwriting it, which would render every entry as the same series.
    const token = metricToken(value.labeledBy);
    const name = Object.hasOwn(labels, token) ? `label_${token}` : token;
    for (const [key, v] of Object.entries(value.entries)) walk(exp, prefix, { ...labels, [name]: key }, v, depth + 1);
  } else if (Array.isArray(value)) {
    // Lists (e.g. per-shard arrays) are rendered with an index label.
    value.forEach((v, i) => walk(exp, prefix, { ...labels, i }, v, depth + 1));
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) walk(exp, `${prefix}_${metricToken(k)}`, labels, v, depth + 1);
  }
}

/** The node's /metrics page. */
export function renderMetrics(input: NodeMetricsInput): string {
  const exp = new Exposition();
  const base = { cluster: input.cluster, node: input.node };
  exp.sample('upnext_node_info', 'gauge', 'Node identity; value always 1', { ...base, model_version: input.modelVersion }, 1);
  exp.sample('upnext_shard_map_version', 'gauge', 'Shard-map version (KV revision) the node runs', base, input.mapVersion);
  const p = input.process;
  exp.sample('process_cpu_seconds_total', 'counter', 'User + system CPU time of the node process, seconds', base, p.cpuSecondsTotal);
  exp.sample('process_resident_memory_bytes', 'gauge', 'Resident set size of the node process, bytes', base, p.rssBytes);
  exp.sample('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use on the main thread, bytes', base, p.heapUsedBytes);
  exp.sample('nodejs_eventloop_delay_p99_seconds', 'gauge', 'Main event-loop delay p99 since the last scrape, seconds', base, p.eventLoopDelayP99Ms / 1000);
  exp.sample('process_uptime_seconds', 'gauge', 'Seconds since the node process started', base, p.uptimeSeconds);
  if (p.stalls !== undefined) {
    for (const [kind, h] of Object.entries(p.stalls.gcPauses)) {
      exp.histogram('nodejs_gc_pause_seconds', 'Main-thread garbage-collection pauses by kind, seconds', { ...base, kind }, h);
    }
    exp.histogram(
      'nodejs_eventloop_window_max_delay_seconds',
      "Each second's worst main event-loop lateness (one observation per second), seconds",
      base,
      p.stalls.eventLoopWindowMax,
    );
    exp.sample('upnext_node_stalls_logged_total', 'counter', 'GC pauses and event-loop seconds at or over node.stallLogMs (each one logged)', base, p.stalls.stallsLogged);
  }
  const counts = new Map<string, number>();
  for (const a of input.actors) counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
  for (const [kind, n] of counts) exp.sample('upnext_actors', 'gauge', 'Actors of each kind hosted by this node', { ...base, kind }, n);
  for (const a of input.actors) {
    const labels = a.index === undefined ? base : { ...base, index: a.index };
    walk(exp, `upnext_${metricToken(a.kind)}`, labels, a.stats, 0);
  }
  return exp.text();
}
