/**
 * The skew report: flags, a table for people and `reports/skew.json` for tools.
 *
 * Flags: `skew` when KL(serving ‖ training) exceeds the threshold (default
 * {@link DEFAULT_KL_THRESHOLD}, 0.1 nats); `expected` for `position` over the threshold (training
 * rows carry the logged slot, serving the fixed `spec.inferencePosition`: skew by design, DESIGN
 * §5); `unscored` for `retrieval_score` when no model scored the training rows (the column is 0
 * there, so its numbers compare nothing).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FeatureSkew } from './metrics.js';

/** Default KL (nats) above which a feature is flagged. */
export const DEFAULT_KL_THRESHOLD = 0.1;

/** Where the CLI writes the report by default. */
export const DEFAULT_SKEW_REPORT_PATH = 'reports/skew.json';

/** Why a feature row is marked ('' = nothing to see). */
export type SkewFlag = 'skew' | 'expected' | 'unscored' | '';

/** What was compared with what, and how (the `conditions` object of skew.json). */
export interface SkewConditions {
  readonly cluster: string;
  readonly stream: string;
  readonly world: string;
  readonly split: string;
  /** Model version whose spec (and towers, for retrieval_score) was used; null = the build's default spec. */
  readonly model_version: string | null;
  readonly feature_spec_hash: string;
  readonly serving_rows: number;
  readonly serving_messages: number;
  readonly serving_truncated: boolean;
  /** Messages skipped for another feature spec, with both hashes named. */
  readonly serving_skipped: readonly string[];
  readonly serving_malformed: number;
  readonly serving_model_versions: readonly string[];
  /** ISO times of the first and last taken message (null when none). */
  readonly served_from: string | null;
  readonly served_to: string | null;
  readonly training_rows: number;
  readonly training_rows_available: number;
  readonly retrieval_scored: boolean;
  readonly bins: number;
  readonly epsilon: number;
  readonly kl_threshold: number;
  readonly binning: string;
  readonly generated_at: string;
}

/** One feature of skew.json (non-finite numbers are written as null). */
export interface SkewReportFeature {
  readonly name: string;
  readonly kl: number | null;
  readonly psi: number | null;
  readonly serving_mean: number | null;
  readonly training_mean: number | null;
  readonly kind: string;
  readonly bins: number;
  readonly flag: SkewFlag;
}

/** The content of skew.json. */
export interface SkewReport {
  readonly conditions: SkewConditions;
  /** Sorted by KL, largest first. */
  readonly features: readonly SkewReportFeature[];
}

/** Options of {@link flagFeature}. */
export interface SkewFlagOptions {
  /** Default {@link DEFAULT_KL_THRESHOLD}. */
  readonly klThreshold?: number;
  /** Whether the training rows' retrieval_score was filled by a model. */
  readonly retrievalScored: boolean;
}

/** The flag of one feature (see the module comment). */
export function flagFeature(f: Pick<FeatureSkew, 'name' | 'kl'>, opts: SkewFlagOptions): SkewFlag {
  if (f.name === 'retrieval_score' && !opts.retrievalScored) return 'unscored';
  if (!(f.kl > (opts.klThreshold ?? DEFAULT_KL_THRESHOLD))) return '';
  return f.name === 'position' ? 'expected' : 'skew';
}

const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** The report of `features` (already sorted by KL) under `conditions`. */
export function skewReport(features: readonly FeatureSkew[], conditions: SkewConditions): SkewReport {
  const flags: SkewFlagOptions = { klThreshold: conditions.kl_threshold, retrievalScored: conditions.retrieval_scored };
  return {
    conditions,
    features: features.map((f) => ({
      name: f.name,
      kl: finiteOrNull(f.kl),
      psi: finiteOrNull(f.psi),
      serving_mean: finiteOrNull(f.servingMean),
      training_mean: finiteOrNull(f.trainingMean),
      kind: f.kind,
      bins: f.bins,
      flag: flagFeature(f, flags),
    })),
  };
}

/** Names of the flagged features, by flag. */
export function flagged(report: SkewReport, flag: SkewFlag): string[] {
  return report.features.filter((f) => f.flag === flag).map((f) => f.name);
}

const num = (v: number | null, digits = 4): string => (v === null ? '-' : v.toFixed(digits));

/**
 * A plain-text table (feature, kind, KL, PSI, serving mean, training mean, flag), sorted by KL,
 * with a one-line summary of the conditions. `limit` rows at most (default all).
 */
export function formatSkewTable(report: SkewReport, limit = report.features.length): string {
  const c = report.conditions;
  const header = ['feature', 'kind', 'KL', 'PSI', 'serving mean', 'training mean', 'flag'];
  const body = report.features.slice(0, limit).map((f) => [f.name, f.kind, num(f.kl), num(f.psi), num(f.serving_mean), num(f.training_mean), f.flag]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((s, i) => (i === 0 || i === 1 || i === 6 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [
    `skew of ${c.serving_rows} served rows (${c.serving_messages} messages from ${c.stream}${c.serving_truncated ? ', truncated' : ''}) vs ${c.training_rows} ${c.split} rows of ${c.world}` +
      ` (spec ${c.feature_spec_hash}${c.model_version === null ? '' : `, model ${c.model_version}`}); KL threshold ${c.kl_threshold}`,
    ...c.serving_skipped,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ];
  if (limit < report.features.length) out.push(`… ${report.features.length - limit} more in the JSON report`);
  const flaggedSkew = flagged(report, 'skew');
  out.push(flaggedSkew.length > 0 ? `flagged: ${flaggedSkew.join(', ')}` : 'no feature over the threshold (other than expected ones)');
  return out.join('\n');
}

/** Writes the report as indented JSON, creating the folder. */
export async function writeSkewReport(report: SkewReport, path: string = DEFAULT_SKEW_REPORT_PATH): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
}
