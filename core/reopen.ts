/**
 * How an actor whose worker thread died gets itself back (user partitions, item shards): try to
 * reopen, and on failure wait and try again — 0.2 s, doubling up to 30 s — until it succeeds or the
 * actor is stopping. One loop for every actor, so they back off alike.
 */

/** First wait after a failed reopen, ms. */
export const REOPEN_FIRST_MS = 200;
/** Longest wait between reopen attempts, ms. */
export const REOPEN_MAX_MS = 30_000;

/**
 * Calls `attempt` until it resolves, waiting with exponential backoff between failures; gives up
 * (resolving undefined) once `stopping()` holds. `onFailure` hears each failure and the wait before
 * the next try.
 */
export async function reopenWithBackoff<T>(
  attempt: () => Promise<T>,
  stopping: () => boolean,
  onFailure: (err: unknown, retryInMs: number) => void,
): Promise<T | undefined> {
  let waitMs = REOPEN_FIRST_MS;
  while (!stopping()) {
    try {
      return await attempt();
    } catch (err) {
      onFailure(err, waitMs);
      await new Promise((r) => setTimeout(r, waitMs));
      waitMs = Math.min(waitMs * 2, REOPEN_MAX_MS);
    }
  }
  return undefined;
}
