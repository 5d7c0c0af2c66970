import { DEVICES } from '../events.js';
import type { RequestContext } from '../events.js';
import { HashSeeds, hashString } from '../hash.js';
import type { FeatureSpec } from './spec.js';

/** Width of the hour-of-day one-hot: six 4-hour buckets. */
export const HOUR_BUCKETS = 6;

/** Index of the device in {@link DEVICES}; unknown strings map to 0 ("unknown"). */
export function deviceIndex(device: string): number {
  const i = (DEVICES as readonly string[]).indexOf(device.toLowerCase());
  return i < 0 ? 0 : i;
}

export function hourBucket(localHour: number): number {
  const h = Number.isFinite(localHour) ? Math.min(23, Math.max(0, Math.floor(localHour))) : 12;
  return Math.floor(h / 4);
}

export function countryBucket(country: string, spec: FeatureSpec): number {
  return hashString(country.toUpperCase(), HashSeeds.COUNTRY) % spec.countryBuckets;
}

/** Width of {@link writeContext}'s output. */
export function contextWidth(spec: FeatureSpec): number {
  return DEVICES.length + HOUR_BUCKETS + spec.countryBuckets;
}

/** Writes the context one-hots (device, hour bucket, country bucket) at `out[offset..]`. */
export function writeContext(out: Float32Array, offset: number, ctx: RequestContext, spec: FeatureSpec): void {
  out.fill(0, offset, offset + contextWidth(spec));
  out[offset + deviceIndex(ctx.device)] = 1;
  out[offset + DEVICES.length + hourBucket(ctx.localHour)] = 1;
  out[offset + DEVICES.length + HOUR_BUCKETS + countryBucket(ctx.country, spec)] = 1;
}
