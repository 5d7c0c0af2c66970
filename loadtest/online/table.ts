/**
 * Plain-text tables of an online-evaluation report (arm × metric with 95% intervals, CTR by slot,
 * source shares, paired differences, the served arm's drift). Pure.
 */
import type { ArmDifference, ArmMetricName, Estimate } from './metrics.js';
import { ARM_METRICS } from './metrics.js';
import type { OnlineEvalReport } from './eval.js';
import { ARMS } from './eval.js';

const LABELS: Readonly<Record<ArmMetricName, string>> = {
  watchSecondsPerRequest: 'watch s / request',
  ctr: 'CTR',
  completionShare: 'completion share',
  clickedDurationS: 'duration of clicked, s',
  likesPerRequest: 'likes / request',
  clicksPerRequest: 'clicks / request',
  impressionsPerRequest: 'slots seen / request',
};

function digits(metric: ArmMetricName): number {
  return metric === 'watchSecondsPerRequest' || metric === 'clickedDurationS' ? 1 : metric === 'ctr' || metric === 'completionShare' ? 3 : 2;
}

function fmt(e: Estimate, d: number): string {
  return `${e.value.toFixed(d)} [${e.lo.toFixed(d)}, ${e.hi.toFixed(d)}]`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((s, c) => s.padEnd(widths[c] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function diffRows(diffs: readonly ArmDifference[]): string[][] {
  return diffs.map((d) => [`${d.a} − ${d.b}`, LABELS[d.metric], fmt(d.diff, digits(d.metric)), d.diff.lo > 0 || d.diff.hi < 0 ? 'yes' : 'no']);
}

/** The report as Markdown tables (readable in a terminal too). */
export function formatOnlineEval(r: OnlineEvalReport): string {
  const c = r.conditions;
  const out: string[] = [];
  out.push(
    `online evaluation: world ${c.world.name} (${c.world.numVideos} videos, ${c.world.numUsers} users), ${c.completed}/${c.requests} requests at ${c.rate} req/s ` +
      `(achieved ${c.achievedRate.toFixed(1)}/s over ${c.wallSeconds.toFixed(0)} s), k ${c.k}, seed ${c.seed}, users drawn by ${c.userDraw}, ` +
      `log-events ${c.logEvents ? 'on' : 'off'}, model ${c.modelVersions.join(', ') || '?'}`,
  );
  out.push(`intervals: ${c.intervals}`);
  out.push('');
  out.push(table(['metric', ...ARMS], ARM_METRICS.map((m) => [LABELS[m], ...ARMS.map((a) => fmt(r.arms[a].metrics[m], digits(m)))])));
  out.push('');
  const k = c.k;
  out.push(
    table(
      ['slot', ...ARMS.map((a) => `${a} CTR`), 'served seen'],
      Array.from({ length: k }, (_, s) => [String(s), ...ARMS.map((a) => (r.arms[a].ctrBySlot[s]?.value ?? 0).toFixed(3)), String(r.arms.served.impressionsBySlot[s] ?? 0)]),
    ),
  );
  out.push('');
  const sources = [...new Set(ARMS.flatMap((a) => Object.keys(r.arms[a].sourceShare)))].sort();
  out.push(
    table(
      ['arm', 'items / answer', ...sources.map((s) => s.toLowerCase())],
      ARMS.map((a) => [a, r.arms[a].itemsPerAnswer.toFixed(1), ...sources.map((s) => ((r.arms[a].sourceShare[s] ?? 0) * 100).toFixed(1) + '%')]),
    ),
  );
  out.push('');
  out.push(table(['paired difference', 'metric', 'value [95%]', 'excludes 0'], diffRows(r.differences)));
  out.push('');
  const d = r.servedDrift;
  out.push(`served arm, first vs last quarter (${d.requestsPerQuarter} requests each; log-events ${c.logEvents ? 'on' : 'off'}):`);
  out.push(
    table(
      ['metric', 'first quarter', 'last quarter', 'last − first', 'excludes 0'],
      ARM_METRICS.map((m) => {
        const diff = d.differences.find((x) => x.metric === m)?.diff ?? { value: 0, lo: 0, hi: 0 };
        return [LABELS[m], fmt(d.firstQuarter.metrics[m], digits(m)), fmt(d.lastQuarter.metrics[m], digits(m)), fmt(diff, digits(m)), diff.lo > 0 || diff.hi < 0 ? 'yes' : 'no'];
      }),
    ),
  );
  out.push('');
  out.push(
    `degraded answers: served ${r.degradedAnswers.served}, coldstart ${r.degradedAnswers.coldstart}; failed requests ${r.failures.requests}` +
      (c.logEvents ? `; events published ${r.events.published}, accepted ${r.events.accepted}, duplicates ${r.events.duplicates}, failed LogEvents calls ${r.events.failedCalls}` : ''),
  );
  for (const f of r.failures.samples) out.push(`  ${f}`);
  return out.join('\n');
}
