/**
 * The offline evaluation report `reports/eval.json`:
 * `{ "<dataset>": { "<model>": { recall_at_10, recall_at_100, auc, logloss, weighted_auc, mae, ece, ece_raw,
 *   model_version, ranker_shape, ranker_epochs } } }`.
 * Tools merge their results in (a model's entry replaces that model's previous one, other entries
 * are kept) and print a table. The labels say which trained model a row's numbers are of, so a row
 * written before a change of version, widths or epochs is not read as the current model's.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Metric names the report knows, in table order. Omit the ones that do not apply. */
export const REPORT_METRICS = ['recall_at_10', 'recall_at_100', 'auc', 'logloss', 'weighted_auc', 'mae', 'ece', 'ece_raw'] as const;
export type ReportMetric = (typeof REPORT_METRICS)[number];

/**
 * Labels of a row, beside its metrics: `model_version` (the published version evaluated; absent for
 * baselines and for datasets trained without publishing, such as KuaiRand), `ranker_shape` (the
 * MMoE's widths, `mmoeShape`, on the `mmoe` row) and `ranker_epochs` (the epoch the ranker's
 * weights are from and how it was chosen, e.g. "4 (validation)"; "3/4" on `single_task`: click/watch).
 */
export const REPORT_LABELS = ['model_version', 'ranker_shape', 'ranker_epochs'] as const;
export type ReportLabel = (typeof REPORT_LABELS)[number];

/** Metrics of one model on one dataset, and the labels that say which model. */
export type ModelMetrics = Partial<Record<ReportMetric, number>> & Partial<Record<ReportLabel, string>>;

/** The whole report: dataset → model → metrics. */
export type EvalReport = Record<string, Record<string, ModelMetrics>>;

/** Default path, relative to the repository root. */
export const DEFAULT_REPORT_PATH = 'reports/eval.json';

/** Reads a report; an absent file is an empty report. */
export async function readReport(path = DEFAULT_REPORT_PATH): Promise<EvalReport> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as EvalReport;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

/**
 * Pure merge: `update`'s (dataset, model) entries replace those in `base`; non-finite metrics, empty
 * labels and unknown keys are dropped.
 */
export function mergeReports(base: EvalReport, update: EvalReport): EvalReport {
  const out: EvalReport = {};
  for (const [ds, models] of Object.entries(base)) out[ds] = { ...models };
  for (const [ds, models] of Object.entries(update)) {
    const target = (out[ds] ??= {});
    for (const [model, metrics] of Object.entries(models)) {
      const clean: ModelMetrics = {};
      for (const key of REPORT_METRICS) {
        const v = metrics[key];
        if (typeof v === 'number' && Number.isFinite(v)) clean[key] = Math.round(v * 1e6) / 1e6;
      }
      for (const key of REPORT_LABELS) {
        const v = metrics[key];
        if (typeof v === 'string' && v !== '') clean[key] = v;
      }
      target[model] = clean;
    }
  }
  return out;
}

/** Merges `update` into the report file (written atomically) and returns the merged report. */
export async function mergeIntoReport(update: EvalReport, path = DEFAULT_REPORT_PATH): Promise<EvalReport> {
  const merged = mergeReports(await readReport(path), update);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(merged, null, 2) + '\n');
  await rename(tmp, path);
  return merged;
}

/** A readable fixed-width table of the report (one block per dataset). */
export function formatReport(report: EvalReport): string {
  const lines: string[] = [];
  for (const [ds, models] of Object.entries(report)) {
    const cols = REPORT_METRICS.filter((m) => Object.values(models).some((mm) => mm[m] !== undefined));
    const nameWidth = Math.max(5, ...Object.keys(models).map((m) => m.length));
    lines.push(`${ds}`);
    lines.push(`  ${'model'.padEnd(nameWidth)}  ${cols.map((c) => c.padStart(15)).join('')}`);
    for (const [model, metrics] of Object.entries(models)) {
      const cells = cols.map((c) => {
        const v = metrics[c];
        return (v === undefined ? '-' : v.toFixed(4)).padStart(15);
      });
      lines.push(`  ${model.padEnd(nameWidth)}  ${cells.join('')}`);
    }
    for (const [model, metrics] of Object.entries(models)) {
      const labels = REPORT_LABELS.filter((l) => metrics[l] !== undefined).map((l) => `${l} ${metrics[l]}`);
      if (labels.length > 0) lines.push(`  ${model}: ${labels.join(', ')}`);
    }
  }
  return lines.join('\n');
}
