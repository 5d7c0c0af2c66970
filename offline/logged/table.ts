/** The text `train-logged` prints: what was read and joined, and the new vs the serving ranker on the test rows. */
import { dirname } from 'node:path';
import type { TrainLoggedResult } from './train-logged.js';

/** Metrics shown, in order, with their column titles. */
const COLUMNS: readonly (readonly [string, string])[] = [
  ['click_auc', 'click AUC'],
  ['click_auc_within_slot', 'AUC in slot'],
  ['click_weighted_auc', 'wAUC'],
  ['click_log_loss', 'logloss'],
  ['click_log_loss_calibrated', 'logloss cal'],
  ['ece_calibrated', 'ECE cal'],
  ['watch_mae_log1p', 'watch MAE log1p'],
];

function cell(v: number | undefined, digits = 4): string {
  return v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits);
}

/** Lines of the report (no trailing newline). `cluster` names the cluster for the switch hint. */
export function formatLoggedTable(r: TrainLoggedResult, cluster: string): string {
  const c = r.counts;
  const pct = (n: number, of: number): string => (of > 0 ? `${((100 * n) / of).toFixed(1)}%` : 'n/a');
  const lines = [
    `feature log ${r.served.stream} seq ${r.served.firstSeq}..${r.served.lastSeq}: ${r.served.rows} rows read${r.served.truncated ? ' (truncated at --max-rows)' : ''}; ` +
      `event stream ${r.events.stream} seq ${r.events.firstSeq}..${r.events.lastSeq}: ${r.events.labelEvents} impression/click/watch events of logged requests (${r.events.unrelated} of unlogged requests skipped)`,
    `rows: joined ${c.joined} (${c.joinedRequests} requests, served ${fmtTime(c.firstServedAtMs)} .. ${fmtTime(c.lastServedAtMs)}), held back ${c.heldBack} (served less than ${c.waitMs} ms before the watermark ${fmtTime(c.watermarkMs)}), ` +
      `duplicate ${c.duplicateRows}, other spec ${c.otherSpecRows}, malformed messages ${r.served.malformed + r.served.undecodable}, ` +
      (c.requireImpression ? `never seen ${c.unseenRows} (no impression, click or watch; ${c.impressions} impressions matched)` : 'every served row kept (no impressions logged, or --all-served)'),
    `labels: clicked ${c.clicked} (${pct(c.clicked, c.joined)}), watched ${c.watched} (${pct(c.watched, c.joined)}); events by request id ${c.eventsByRequestId}, by (user, video) ${c.eventsByFallback}, late ${c.lateEvents}, unmatched ${c.unmatchedEvents}`,
    `split by time: train ${r.split.train} / valid ${r.split.valid} / test ${r.split.test} rows; ${r.warmStart === true ? `started from ${r.servingVersion}'s ranker weights` : `trained from scratch (${r.warmStart})`}, ${r.fit.epochs} epochs`,
    '',
  ];
  const head = ['test rows', ...COLUMNS.map(([, t]) => t)];
  const body = [
    [`new      ${r.version}`, ...COLUMNS.map(([k]) => cell(r.metrics.new[k]))],
    [`serving  ${r.servingVersion}`, ...COLUMNS.map(([k]) => cell(r.metrics.serving[k]))],
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const fmt = (row: readonly string[]): string => row.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  lines.push(fmt(head), ...body.map(fmt), '');
  lines.push(`published ${r.dir} (not switched; models/LATEST untouched)`);
  lines.push(`switch live: node dist/shardmap/cli.js model --nats <url> --cluster ${cluster} --version ${r.version} --models-dir ${dirname(r.dir)}`);
  lines.push(`new version: ${r.version}`);
  return lines.join('\n');
}

function fmtTime(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : 'n/a';
}
