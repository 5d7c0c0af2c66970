/**
 * Request sampling shared by the coordinator's samplers (the feature log, the prediction-drift
 * monitor): one hash of the request id, so every sampler agrees on a request wherever it is served.
 */
import { hashString } from '../../core/hash.js';

/** Scale of the request-id hash (32-bit FNV-1a) used for sampling. */
const HASH_RANGE = 2 ** 32;

/**
 * Whether a request is in a sample of share `rate` (in [0, 1]): by a hash of its id, so the same id
 * samples the same way on every coordinator and every replay, and samples taken at two rates nest
 * (the feature log's 1% lies inside the drift monitor's 5%). Requests without an id draw `random()`.
 * Costs one string hash; none at rate 0 or 1.
 */
export function sampledByRequestId(requestId: string, rate: number, random: () => number = Math.random): boolean {
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  const u = requestId.length > 0 ? hashString(requestId) / HASH_RANGE : random();
  return u < rate;
}
