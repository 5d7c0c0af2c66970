/**
 * Calibration of each ranker's P(click), fitted on the validation days (never the test days) and
 * stored in the manifest as `calibration.click`.
 */
import type { Calibration } from '../../core/model/contract.js';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import type { ExampleSet } from './examples.js';
import { SplitId } from './examples.js';
import { fitIsotonic, fitTemperature } from '../calibration/index.js';
import { predictRows, splitRows } from './evaluate.js';
import type { ScoringModels } from './scoring.js';

/** Calibration per ranker name, fitted on the validation split. */
export async function fitCalibrations(set: ExampleSet, scoring: ScoringModels, itemVecs: Float32Array): Promise<Record<string, Calibration>> {
  const rows = await splitRows(set, SplitId.VALID, scoring, itemVecs);
  const out: Record<string, Calibration> = {};
  if (rows.idx.length === 0) return out;
  const f = rankerRowWidth(set.spec);
  for (const [name, rank] of Object.entries(scoring.rankers)) {
    const pred = await predictRows(rank, rows, f);
    out[name] = fitClickCalibration(rows.click, pred.pClick);
  }
  return out;
}

/** Validation rows from which isotonic regression is preferred over temperature scaling. 2000. */
export const MIN_ISOTONIC_ROWS = 2000;

/**
 * Isotonic regression (offline/calibration) when the validation day has enough rows for a stable
 * step function; temperature scaling (one parameter, cannot overfit) otherwise.
 */
export function fitClickCalibration(labels: Float32Array, probs: Float32Array): Calibration {
  return labels.length >= MIN_ISOTONIC_ROWS ? fitIsotonic(probs, labels) : fitTemperature(probs, labels);
}
