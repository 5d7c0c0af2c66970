/**
 * Offline metrics as pure functions over arrays. Labels are 0/1 (any value > 0 counts as positive
 * where a binary label is needed). Every function throws a TypeError on length mismatch; metrics
 * that are undefined on the input (AUC with one class, empty input) return NaN rather than a
 * made-up number, so reports show "n/a" instead of a misleading 0.5.
 */

type Numbers = ArrayLike<number>;

function sameLength(name: string, a: Numbers, b: Numbers): void {
  if (a.length !== b.length) throw new TypeError(`${name}: length mismatch (${a.length} vs ${b.length})`);
}

/** Indices of `scores` sorted ascending (stable). */
function orderBy(scores: Numbers): Uint32Array {
  const idx = new Uint32Array(scores.length);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  return idx.sort((a, b) => (scores[a] as number) - (scores[b] as number) || a - b);
}

/**
 * Weighted ROC AUC: P(score of a random positive > score of a random negative), each pair weighted
 * by w_pos · w_neg, ties counting one half. O(n log n).
 */
function aucCore(labels: Numbers, scores: Numbers, weights: Numbers | undefined): number {
  const order = orderBy(scores);
  let negBelow = 0; // total negative weight with a strictly lower score
  let totalPos = 0;
  let totalNeg = 0;
  let area = 0;
  let i = 0;
  while (i < order.length) {
    // One group of tied scores.
    let j = i;
    let pos = 0;
    let neg = 0;
    const s = scores[order[i] as number] as number;
    while (j < order.length && scores[order[j] as number] === s) {
      const k = order[j] as number;
      const w = weights === undefined ? 1 : (weights[k] as number);
      if ((labels[k] as number) > 0) pos += w;
      else neg += w;
      j++;
    }
    area += pos * (negBelow + neg / 2);
    negBelow += neg;
    totalPos += pos;
    totalNeg += neg;
    i = j;
  }
  return totalPos > 0 && totalNeg > 0 ? area / (totalPos * totalNeg) : NaN;
}

/** ROC AUC with ties handled (a tied positive/negative pair counts 1/2). NaN with one class. */
export function auc(labels: Numbers, scores: Numbers): number {
  sameLength('auc', labels, scores);
  return aucCore(labels, scores, undefined);
}

/**
 * Weighted AUC, e.g. watch-time-weighted AUC: pass each positive's watch seconds as its weight
 * (negatives usually weight 1). Each (positive, negative) pair counts w_pos · w_neg.
 */
export function weightedAuc(labels: Numbers, scores: Numbers, weights: Numbers): number {
  sameLength('weightedAuc', labels, scores);
  sameLength('weightedAuc', labels, weights);
  for (let i = 0; i < weights.length; i++) {
    if (!((weights[i] as number) >= 0)) throw new TypeError(`weightedAuc: weight ${i} must be >= 0, got ${weights[i]}`);
  }
  return aucCore(labels, scores, weights);
}

/**
 * AUC over the (positive, negative) pairs that share a group, e.g. the same slot of a served list:
 * the mean of each group's AUC weighted by its pair count (groups with one class add no pairs).
 * On logged serving data this is the fair ranking metric: clicks follow the slot (position bias)
 * and the slot follows the serving policy, so a pooled AUC also scores the policy's placement,
 * while within a slot only the score's ordering of comparable impressions counts. NaN without a
 * group holding both classes.
 */
export function groupedAuc(labels: Numbers, scores: Numbers, groups: Numbers): number {
  sameLength('groupedAuc', labels, scores);
  sameLength('groupedAuc', labels, groups);
  const members = new Map<number, number[]>();
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] as number;
    let m = members.get(g);
    if (m === undefined) members.set(g, (m = []));
    m.push(i);
  }
  let area = 0;
  let pairs = 0;
  for (const idx of members.values()) {
    let pos = 0;
    for (const i of idx) if ((labels[i] as number) > 0) pos++;
    const n = pos * (idx.length - pos);
    if (n === 0) continue;
    area += n * aucCore(idx.map((i) => labels[i] as number), idx.map((i) => scores[i] as number), undefined);
    pairs += n;
  }
  return pairs > 0 ? area / pairs : NaN;
}

/** Mean binary cross-entropy in nats; probabilities clamped to [1e-7, 1 - 1e-7]. */
export function logLoss(labels: Numbers, probs: Numbers): number {
  sameLength('logLoss', labels, probs);
  if (labels.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(1 - 1e-7, Math.max(1e-7, probs[i] as number));
    sum -= (labels[i] as number) > 0 ? Math.log(p) : Math.log(1 - p);
  }
  return sum / labels.length;
}

/** Mean absolute error. */
export function mae(targets: Numbers, preds: Numbers): number {
  sameLength('mae', targets, preds);
  if (targets.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < targets.length; i++) sum += Math.abs((targets[i] as number) - (preds[i] as number));
  return sum / targets.length;
}

/**
 * Expected calibration error: equal-width bins over [0, 1] (default 15), Σ_b (n_b / N) ·
 * |mean p_b − mean y_b|. A probability of exactly 1 falls in the last bin.
 */
export function ece(labels: Numbers, probs: Numbers, bins = 15): number {
  sameLength('ece', labels, probs);
  if (!Number.isInteger(bins) || bins < 1) throw new TypeError(`ece: bins must be a positive integer, got ${bins}`);
  if (labels.length === 0) return NaN;
  const n = new Float64Array(bins);
  const sp = new Float64Array(bins);
  const sy = new Float64Array(bins);
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(1, Math.max(0, probs[i] as number));
    const b = Math.min(bins - 1, Math.floor(p * bins));
    n[b] = (n[b] as number) + 1;
    sp[b] = (sp[b] as number) + p;
    sy[b] = (sy[b] as number) + ((labels[i] as number) > 0 ? 1 : 0);
  }
  let sum = 0;
  for (let b = 0; b < bins; b++) {
    const nb = n[b] as number;
    if (nb > 0) sum += Math.abs((sp[b] as number) - (sy[b] as number));
  }
  return sum / labels.length;
}

/**
 * Recall@K of one ranked list: |top-K ∩ positives| / |positives| (duplicates in the list count
 * once). NaN when there are no positives.
 */
export function recallAtK(rankedIds: ArrayLike<number>, positives: ReadonlySet<number> | readonly number[], k: number): number {
  if (!Number.isInteger(k) || k < 1) throw new TypeError(`recallAtK: k must be a positive integer, got ${k}`);
  const pos = positives instanceof Set ? positives : new Set(positives as readonly number[]);
  if (pos.size === 0) return NaN;
  const hit = new Set<number>();
  const n = Math.min(k, rankedIds.length);
  for (let i = 0; i < n; i++) {
    const id = rankedIds[i] as number;
    if (pos.has(id)) hit.add(id);
  }
  return hit.size / pos.size;
}

/** One user's ranked list and positives, for {@link meanRecallAtK}. */
export interface UserRanking {
  readonly ranked: ArrayLike<number>;
  readonly positives: ReadonlySet<number>;
}

/** Mean Recall@K over users with at least one positive (others skipped); NaN when none qualify. */
export function meanRecallAtK(rankings: Iterable<UserRanking>, k: number): number {
  let sum = 0;
  let users = 0;
  for (const r of rankings) {
    if (r.positives.size === 0) continue;
    sum += recallAtK(r.ranked, r.positives, k);
    users++;
  }
  return users > 0 ? sum / users : NaN;
}
