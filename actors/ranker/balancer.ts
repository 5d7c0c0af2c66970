/**
 * Client-side balancing over ranker replicas: power of two choices on outstanding requests, skipping
 * replicas that recently failed. A pure pick over a snapshot of loads (no I/O, injected randomness),
 * so it is unit-tested without servers.
 */
import type { Rng } from '../../core/clock.js';

/** What the picker sees of one replica. */
export interface ReplicaLoad {
  /** Requests sent and not yet answered. */
  readonly outstanding: number;
  /** Until when (epoch ms) the replica is skipped after a failure; 0 when healthy. */
  readonly ejectedUntilMs: number;
}

/**
 * Picks a replica index: two distinct random candidates among the healthy ones not in `exclude`, the
 * one with fewer outstanding requests wins (the first on a tie). When every candidate is ejected,
 * picks among the ejected ones instead (trying a doubtful replica beats failing outright). Returns
 * -1 when nothing is left after `exclude`.
 */
export function pickReplica(loads: readonly ReplicaLoad[], nowMs: number, rng: Rng, exclude: ReadonlySet<number> = new Set()): number {
  const healthy: number[] = [];
  const ejected: number[] = [];
  loads.forEach((load, i) => {
    if (exclude.has(i)) return;
    (load.ejectedUntilMs > nowMs ? ejected : healthy).push(i);
  });
  const pool = healthy.length > 0 ? healthy : ejected;
  if (pool.length === 0) return -1;
  if (pool.length === 1) return pool[0] as number;
  const a = Math.floor(rng.next() * pool.length);
  let b = Math.floor(rng.next() * (pool.length - 1));
  if (b >= a) b++;
  const ia = pool[a] as number;
  const ib = pool[b] as number;
  return (loads[ib]?.outstanding ?? 0) < (loads[ia]?.outstanding ?? 0) ? ib : ia;
}
