/**
 * Seeded parameter initialisation. Every weight of every model comes from a {@link SeededRng}, so
 * training is bit-for-bit reproducible given the seed (the engine is single-threaded and sums in a
 * fixed order).
 */
import { SeededRng } from '../../core/clock.js';

/** Glorot/Xavier uniform in ±sqrt(6 / (fanIn + fanOut)), the usual choice in front of ReLU/sigmoid MLPs. */
export function glorotUniform(out: Float32Array, fanIn: number, fanOut: number, rng: SeededRng): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  for (let i = 0; i < out.length; i++) out[i] = (rng.next() * 2 - 1) * limit;
  return out;
}

/** Normal(0, std²) entries. */
export function normalInit(out: Float32Array, std: number, rng: SeededRng): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * std;
  return out;
}

/** Uniform entries in ±limit. */
export function uniformInit(out: Float32Array, limit: number, rng: SeededRng): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = (rng.next() * 2 - 1) * limit;
  return out;
}
