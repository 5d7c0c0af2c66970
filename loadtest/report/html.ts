/**
 * The report page: one self-contained HTML file (inline CSS and SVG, no scripts) a capacity
 * planner can read without tools: verdict per phase, latency vs offered load, latency over time
 * with events marked, CPU and memory per process, and the capacity model with its assumptions.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fmt, fmtBytes } from './capacity.js';
import { esc, lineChart } from './svg.js';
import type { Series } from './svg.js';
import type { LoadtestReport, PhaseResult, ThreadLoad } from './types.js';
import { SERVER_STAGES, STAGE_LABELS, slowestStage } from '../measure/outcome.js';
import { describeCpu } from '../measure/cpu-identity.js';

const n1 = (v: number | undefined) => (v === undefined ? '—' : fmt(v));
const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>, cls = ''): string {
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** Latency percentiles against offered load, one point per phase (sorted by offered rate). */
function latencyVsLoad(r: LoadtestReport): string {
  const phases = [...r.phases].sort((a, b) => a.offeredRate - b.offeredRate);
  const pick = (f: (p: (typeof phases)[number]) => number) => phases.map((p) => [p.offeredRate, f(p)] as const);
  return lineChart({
    title: 'Latency vs offered load (from intended send time)',
    xLabel: 'offered load, req/s',
    yLabel: 'latency, ms',
    logY: true,
    series: [
      { name: 'p50', points: pick((p) => p.latencyMs.p50) },
      { name: 'p90', points: pick((p) => p.latencyMs.p90) },
      { name: 'p99', points: pick((p) => p.latencyMs.p99) },
      { name: 'p99.9', points: pick((p) => p.latencyMs.p999) },
    ],
    hLine: { y: r.slo.p99Ms, label: `SLO p99 ${r.slo.p99Ms} ms` },
  });
}

/**
 * Each pipeline stage's p99 (the server's own timings) beside the client's p99, against offered
 * load: the stage whose line bends first holds the tail, and a client line far above the
 * pipeline's total is time outside the pipeline. Empty when no phase carried timings.
 */
function stagesVsLoad(r: LoadtestReport): string {
  const phases = r.phases
    .flatMap((p) => (p.serverStagesMs === undefined ? [] : [{ rate: p.offeredRate, clientP99: p.latencyMs.p99, stages: p.serverStagesMs }]))
    .sort((a, b) => a.rate - b.rate);
  if (phases.length === 0) return '<p class="muted">No stage timings: the requests were sent without debug (mix.stageTimings false) or the report predates them.</p>';
  return lineChart({
    title: 'Where the time goes: p99 of each server stage vs offered load',
    xLabel: 'offered load, req/s',
    yLabel: 'p99, ms',
    logY: true,
    series: [
      { name: 'client', points: phases.map((p) => [p.rate, p.clientP99] as const), dashed: true, color: '#999' },
      // A stage no answer of a phase ran has p99 0: drawn at the axis floor of the log scale.
      ...SERVER_STAGES.map((st) => ({ name: STAGE_LABELS[st], points: phases.map((p) => [p.rate, Math.max(0.01, p.stages[st].p99)] as const) })),
    ],
    hLine: { y: r.slo.p99Ms, label: `SLO p99 ${r.slo.p99Ms} ms` },
  });
}

function throughputVsLoad(r: LoadtestReport): string {
  const phases = [...r.phases].sort((a, b) => a.offeredRate - b.offeredRate);
  return lineChart({
    title: 'Throughput and goodput vs offered load',
    xLabel: 'offered load, req/s',
    yLabel: 'req/s',
    series: [
      { name: 'offered', points: phases.map((p) => [p.offeredRate, p.offeredRate] as const), dashed: true, color: '#999' },
      { name: 'answered', points: phases.map((p) => [p.offeredRate, p.throughput] as const) },
      { name: 'goodput (ranked+degraded)', points: phases.map((p) => [p.offeredRate, p.goodput] as const) },
    ],
  });
}

function latencyOverTime(r: LoadtestReport): string {
  const markers = [...r.events.map((e) => ({ x: e.tS, label: e.label })), ...r.phases.slice(1).map((p) => ({ x: p.startS, label: p.name }))];
  return lineChart({
    title: 'Latency over time (per second of intended send time)',
    xLabel: 'time, s',
    yLabel: 'latency, ms',
    logY: true,
    series: [
      { name: 'p50', points: r.timeline.map((t) => [t.tS, t.p50Ms] as const) },
      { name: 'p99', points: r.timeline.map((t) => [t.tS, t.p99Ms] as const) },
    ],
    markers,
    hLine: { y: r.slo.p99Ms, label: `SLO ${r.slo.p99Ms} ms` },
  });
}

function rateOverTime(r: LoadtestReport): string {
  return lineChart({
    title: 'Offered, answered, fallback and errors per second',
    xLabel: 'time, s',
    yLabel: 'req/s',
    series: [
      { name: 'offered', points: r.timeline.map((t) => [t.tS, t.offered] as const), dashed: true, color: '#999' },
      { name: 'answered', points: r.timeline.map((t) => [t.tS, t.completed] as const) },
      { name: 'fallback', points: r.timeline.map((t) => [t.tS, t.fallback] as const) },
      { name: 'errors', points: r.timeline.map((t) => [t.tS, t.errors] as const), color: '#d62728' },
      { name: 'dropped by generator', points: r.timeline.map((t) => [t.tS, t.dropped] as const), color: '#8c564b' },
    ],
    markers: r.events.map((e) => ({ x: e.tS, label: e.label })),
  });
}

function cpuPerProcess(r: LoadtestReport): string {
  const series: Series[] = r.processes.map((p) => ({ name: `${p.name} (${p.pid})`, points: p.points.map((q) => [q.tS, q.cpuCores] as const) }));
  return lineChart({ title: 'CPU per process', xLabel: 'time, s', yLabel: 'cores', series, markers: r.events.map((e) => ({ x: e.tS, label: e.label })) });
}

function rssPerProcess(r: LoadtestReport): string {
  const series: Series[] = r.processes.map((p) => ({ name: `${p.name} (${p.pid})`, points: p.points.map((q) => [q.tS, q.rssMiB] as const) }));
  return lineChart({ title: 'Resident memory per process', xLabel: 'time, s', yLabel: 'RSS, MiB', series });
}

/** "n1 main: 1.57 ms/req, 24% of a core". */
function threadCell(t: Pick<ThreadLoad, 'process' | 'thread' | 'msPerRequest' | 'utilisation'> | undefined): string {
  if (!t) return '—';
  return `${esc(t.process)} ${esc(t.thread)}: ${t.msPerRequest === undefined ? '—' : ms(t.msPerRequest)} ms/req, ${Math.round(t.utilisation * 100)}% of a core`;
}

/** ' / throttled N of M periods' when the cluster's cgroup has a CPU quota (nothing otherwise). */
function throttledCell(t: PhaseResult['cpuThrottling']): string {
  return t === undefined || t.quotaCores === null ? '' : ` / throttled ${t.throttledPeriods} of ${t.periods} periods (quota ${t.quotaCores.toFixed(2)} cores)`;
}

/** The pipeline's p99 and the stage with the highest p99: where a phase's slow answers waited. */
function stagesCell(stages: PhaseResult['serverStagesMs']): string {
  if (stages === undefined) return '—';
  const worst = slowestStage(stages);
  return `${ms(stages.total.p99)} (${esc(STAGE_LABELS[worst])} ${ms(stages[worst].p99)})`;
}

function phaseTable(r: LoadtestReport): string {
  return table(
    ['phase', 'offered/s', 'answered/s', 'goodput/s', 'p50', 'p90', 'p99', 'p99.9', 'errors', 'fallback', 'dropped', 'coverage', 'server cores', 'QPS/core', 'busiest thread (CPU per answer)', 'waited for a core, ms per answer', 'machine idle / steal (/ quota throttling)', 'pipeline p99 (slowest stage)', 'gen lag p99', 'verdict'],
    r.phases.map((p) => [
      esc(p.name), n1(p.offeredRate), n1(p.throughput), n1(p.goodput), ms(p.latencyMs.p50), ms(p.latencyMs.p90), ms(p.latencyMs.p99), ms(p.latencyMs.p999),
      `${(p.errorRate * 100).toFixed(2)}%`, n1(p.outcomes['fallback'] ?? 0), n1(p.dropped), p.coverage ? p.coverage.mean.toFixed(3) : '—',
      p.serverCpuCores === undefined ? '—' : p.serverCpuCores.toFixed(2), n1(p.qpsPerServerCore), threadCell(p.busiestThread),
      p.runQueueWaitMsPerRequest === undefined ? '—' : ms(p.runQueueWaitMsPerRequest),
      p.machineCpu === undefined ? '—' : `${Math.round(p.machineCpu.idleShare * 100)}% / ${(p.machineCpu.stealShare * 100).toFixed(1)}%${throttledCell(p.cpuThrottling)}`,
      stagesCell(p.serverStagesMs),
      `${ms(p.lagMs.p99)}${p.generatorSaturated ? ' ⚠' : ''}`,
      `<span class="${p.sloMet ? 'ok' : 'bad'}">${esc(p.sloVerdict)}</span>`,
    ]),
  );
}

/** Per phase and process, its busiest thread: where the serial work of each process sits. */
function threadTable(r: LoadtestReport): string {
  const rows: string[][] = [];
  for (const p of r.phases) {
    // Reports written before threads were sampled lack the field.
    for (const t of Object.values(p.busiestThreadByProcess ?? {})) {
      rows.push([
        esc(p.name), esc(t.process), esc(t.thread), t.cpuSeconds.toFixed(2), t.msPerRequest === undefined ? '—' : ms(t.msPerRequest), `${Math.round(t.utilisation * 100)}%`,
        t.waitMsPerRequest === undefined ? '—' : ms(t.waitMsPerRequest),
      ]);
    }
  }
  if (rows.length === 0) return '<p class="muted">Threads were not sampled.</p>';
  return table(['phase', 'process', 'busiest thread', 'CPU s', 'CPU ms per answer', 'share of a core', 'waited for a core, ms per answer'], rows);
}

function outcomeTable(r: LoadtestReport): string {
  const rows: string[][] = [];
  for (const p of r.phases) {
    for (const [k, q] of Object.entries(p.byOutcome)) rows.push([esc(p.name), esc(k), n1(q.count), ms(q.p50), ms(q.p99), ms(q.max)]);
    rows.push([esc(p.name), '<i>naive (from actual send)</i>', n1(p.serviceMs.count), ms(p.serviceMs.p50), ms(p.serviceMs.p99), ms(p.serviceMs.max)]);
  }
  return table(['phase', 'outcome', 'count', 'p50 ms', 'p99 ms', 'max ms'], rows);
}

function capacitySection(r: LoadtestReport): string {
  const c = r.capacity;
  const i = c.inputs;
  const mem = c.memory;
  const rows: Array<[string, string]> = [
    ['max QPS at SLO (this test)', c.measured ? `${n1(c.measured.qps)} req/s in phase ${esc(c.measured.phase)}` : 'no phase met the SLO'],
    ['server cores used there', c.measured?.serverCpuCores === undefined ? '—' : c.measured.serverCpuCores.toFixed(2)],
    ['QPS per core at SLO', n1(c.measured?.qpsPerCore)],
    [`QPS per node (${i.coresPerNode} cores, CPU-limited)`, n1(c.qpsPerNode)],
    ['busiest node-process thread at SLO', threadCell(c.busiestThread)],
    [`process ceiling (1000 / busiest thread ms per request of its process${c.measured?.entryProcesses ? `; requests entered through ${fmt(c.measured.entryProcesses)} processes` : ''})`, c.processCeilingQps === undefined ? '—' : `${fmt(c.processCeilingQps)} QPS per node process`],
    [`within the SLO (busiest thread ≤ ${Math.round(i.busiestThreadMaxUtilisation * 100)}% of a core)`, c.processSloQps === undefined ? '—' : `${fmt(c.processSloQps)} QPS per node process`],
    [`QPS per node with one node process`, n1(c.qpsPerNodeOneProcess)],
    [`<b>node processes per node</b> to use ${i.coresPerNode} cores`, `<b>${n1(c.processesPerNode)}</b>`],
    ['QPS per node within the SLO (CPU, or processes × their SLO bound)', n1(c.qpsPerNodeAtSlo)],
    [`nodes for ${fmt(i.targetQps)} QPS with one process each (CPU)`, n1(c.nodesForTargetQpsOneProcess)],
    [`usable QPS per node (${Math.round(i.headroom * 100)}% headroom)`, n1(c.usableQpsPerNode)],
    [`nodes for ${fmt(i.targetQps)} QPS (CPU)`, n1(c.nodesForTargetQps)],
    ['memory per million items', mem.bytesPerMillionItems === undefined ? '—' : fmtBytes(mem.bytesPerMillionItems)],
    ['memory per million users', mem.bytesPerMillionUsers === undefined ? '—' : fmtBytes(mem.bytesPerMillionUsers)],
    ['memory source', esc(mem.source)],
    [`items (${fmt(i.items)})`, mem.itemBytes === undefined ? '—' : fmtBytes(mem.itemBytes)],
    [`users (${fmt(i.users)}, ×${i.userReplicas} replicas)`, mem.userBytesAllReplicas === undefined ? '—' : fmtBytes(mem.userBytesAllReplicas)],
    [`memory budget per node (${i.memoryPerNodeGiB} GiB, ${Math.round(i.headroom * 100)}% headroom)`, fmtBytes(mem.budgetBytesPerNode)],
    [`items per node (every one of its ${mem.processesPerNode ?? 1} process(es) holds its own copy)`, mem.itemBytesPerMachine === undefined ? '—' : fmtBytes(mem.itemBytesPerMachine)],
    ['base footprint per node (all processes)', mem.baseBytesPerMachine === undefined ? '—' : fmtBytes(mem.baseBytesPerMachine)],
    ['item groups', n1(mem.itemGroups)],
    [`nodes for ${fmt(i.items)} items and ${fmt(i.users)} users (memory)`, n1(mem.nodesForMemory)],
    [`<b>nodes needed</b> (${fmt(i.targetQps)} QPS, ${fmt(i.items)} items, ${fmt(i.users)} users)`, `<b>${n1(c.nodesNeeded)}</b>`],
  ];
  return `${table(['quantity', 'value'], rows.map(([a, b]) => [a, b]), 'kv')}<ul class="notes">${c.notes.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>`;
}

/** How the generator spread its calls over coordinators, for the conditions table. */
function routingText(c: LoadtestReport['conditions']): string {
  if (c.routing === 'user') {
    const busiest = c.busiestCoordinatorShare !== undefined ? `, the busiest took ${(c.busiestCoordinatorShare * 100).toFixed(0)}%` : '';
    return `; each user routed to a coordinator hosting its partition (${c.coordinatorsCalled} coordinator(s)${busiest})`;
  }
  return c.coordinatorsCalled > 1 ? `; requests spread over ${c.coordinatorsCalled} coordinators` : '';
}

function conditions(r: LoadtestReport): string {
  const c = r.conditions;
  const rows: Array<[string, string]> = [
    ['target', esc(r.target)],
    ['started', esc(r.startedAt)],
    ['duration', `${r.durationS.toFixed(0)} s`],
    ['host', `${esc(c.host)}: ${c.cpus} CPUs (${esc(describeCpu({ model: c.cpuModel, familyModelStepping: c.cpuFamilyModelStepping ?? 'unknown', simd: c.cpuSimd }))}), ${c.memoryGiB} GiB, Node ${esc(c.node)}`],
    ['generator', `${c.generatorProcesses} process(es) × ${c.channelsPerProcess} gRPC channels, max ${c.maxInFlight} in flight, deadline ${c.deadlineMs} ms, seed ${c.seed}${routingText(c)}${c.generatorOnTargetHost ? '; <b>shares the host with the target</b>' : ''}`],
    ['users', esc(c.users)],
    ['videos', esc(c.videos)],
    ['LogEvents stream', `${c.eventsPerSecond} events/s`],
    ['SLO', `p99 ≤ ${r.slo.p99Ms} ms from intended send time, error rate < ${(r.slo.maxErrorRate * 100).toFixed(2)}%`],
  ];
  return table(['condition', 'value'], rows, 'kv');
}

/** Renders the report as a self-contained HTML document. */
export function renderHtml(r: LoadtestReport): string {
  const warnings = r.warnings.length
    ? `<div class="warn"><b>Warnings</b><ul>${r.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></div>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>upnext load test: ${esc(r.scenario)}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}th,td{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}table.kv td{text-align:left}
.ok{color:#1a7f37}.bad{color:#c62828}.warn{background:#fff4e5;border:1px solid #f0b35b;padding:8px 12px;margin:12px 0}
.charts svg{display:block;margin:10px 0}.notes{font-size:13px}.muted{color:#666;font-size:13px}
</style></head><body>
<h1>upnext load test: ${esc(r.scenario)} <span class="muted">(${esc(r.kind)})</span></h1>
<p class="muted">${esc(r.description)}</p>
${warnings}
<h2>Phases</h2>
${phaseTable(r)}
<h2>Latency and throughput vs offered load</h2>
<div class="charts">${latencyVsLoad(r)}${throughputVsLoad(r)}</div>
<h2>Where the time goes</h2>
<p class="muted">The coordinator's own timing of each stage (RecommendResponse.timings), each over the answers that ran it. Admission is the wait for one of the node's concurrent-request slots (coordinator.admission): it rises when more requests are in flight than the node admits at once. Per-stage p99s do not add up; the stage that rises first holds the tail. The client's p99 above the pipeline's total is time outside the pipeline: the node's event loop before the handler, gRPC, the network, the generator.</p>
<div class="charts">${stagesVsLoad(r)}</div>
<h2>Over time</h2>
<div class="charts">${latencyOverTime(r)}${rateOverTime(r)}</div>
<h2>Server processes</h2>
<div class="charts">${cpuPerProcess(r)}${rssPerProcess(r)}</div>
${table(['process', 'pid', 'CPU s', 'max RSS'], r.processes.map((p) => [esc(p.name), String(p.pid), p.cpuSeconds.toFixed(1), fmtBytes(p.maxRssBytes)]))}
<h2>Busiest threads</h2>
<p class="muted">Per process, the thread with the most CPU in each phase (/proc/&lt;pid&gt;/task/&lt;tid&gt;/stat). A thread cannot use more than one core: at 100% it caps its process, however many cores the machine has.</p>
${threadTable(r)}
<h2>Capacity model</h2>
${capacitySection(r)}
<h2>Latency by outcome</h2>
<p class="muted">"naive" is latency from the actual send time: what a generator with coordinated omission would report.</p>
${outcomeTable(r)}
<h2>Conditions</h2>
${conditions(r)}
</body></html>
`;
}

/** Writes `<outDir>/<scenario>.json` and `.html`; returns both paths. */
export async function writeReport(r: LoadtestReport, outDir: string): Promise<{ json: string; html: string }> {
  await mkdir(outDir, { recursive: true });
  const json = path.join(outDir, `${r.scenario}.json`);
  const html = path.join(outDir, `${r.scenario}.html`);
  await writeFile(json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(html, renderHtml(r));
  return { json, html };
}
