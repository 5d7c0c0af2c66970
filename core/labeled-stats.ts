/**
 * Stats whose entries differ by the value of one label, e.g. prediction drift per surface. An
 * actor's `stats()` may hold one anywhere; /metrics (cluster/node/metrics.ts) renders each entry's
 * leaves under the same metric names as a plain object would, with `{<label>="<key>"}` added,
 * instead of folding the key into the name. Keep the keys bounded (configured names, not user
 * input): each one is a time series.
 */
export interface LabeledStats<T> {
  /** The label's name, a Prometheus label token, e.g. "surface". */
  readonly labeledBy: string;
  /** One entry per label value. */
  readonly entries: Readonly<Record<string, T>>;
}

/** Whether `v` is a {@link LabeledStats}. */
export function isLabeledStats(v: unknown): v is LabeledStats<unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const l = v as Partial<LabeledStats<unknown>>;
  return typeof l.labeledBy === 'string' && typeof l.entries === 'object' && l.entries !== null;
}
