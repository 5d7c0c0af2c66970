/**
 * Starting the retrained ranker from the serving one: the MMoE's weights are read back from the
 * serving version's ranker.onnx (offline/onnx/export.ts names every initializer after the
 * parameter it holds, e.g. `shared.0.weight`), and the architecture (shared width, experts, expert
 * and tower widths) from their shapes. Cheap (one 200 kB file) and it lets a few thousand logged
 * rows refine a model trained on millions of impressions instead of replacing it with one that
 * saw only those rows.
 *
 * When ranker.onnx is not an MMoE of this contract (a single-task ranker, a model from another
 * trainer), {@link warmStartMmoe} says why and the caller trains from scratch.
 */
import { readFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import type { MmoeOptions } from '../models/mmoe.js';
import { MmoeModel } from '../models/mmoe.js';

const { onnx } = onnxProto;

/** Float32 initializers of an ONNX model, by name. */
export function onnxFloatInitializers(bytes: Uint8Array): Map<string, { readonly dims: readonly number[]; readonly data: Float32Array }> {
  const model = onnx.ModelProto.decode(bytes);
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT || typeof t.name !== 'string') continue;
    const dims = (t.dims ?? []).map((d) => Number(d));
    let data: Float32Array;
    if (t.rawData !== undefined && t.rawData !== null && t.rawData.byteLength > 0) {
      // Copy: the decoded bytes are a view into the file buffer, possibly unaligned.
      data = new Float32Array(Uint8Array.prototype.slice.call(t.rawData).buffer);
    } else {
      data = Float32Array.from(t.floatData ?? []);
    }
    out.set(t.name, { dims, data });
  }
  return out;
}

/** A warm-started model, or why there is none. */
export type WarmStart = { readonly model: MmoeModel; readonly options: MmoeOptions } | { readonly model: undefined; readonly reason: string };

/**
 * An MMoE with the weights of `rankerOnnxPath` (an MMoE exported by offline/onnx/export.ts) and
 * `opts`' training settings (lr, watchWeight, seed); architecture options in `opts` are replaced by
 * the file's. `featureWidth` must match the file's input width.
 */
export async function warmStartMmoe(rankerOnnxPath: string, featureWidth: number, opts: Pick<MmoeOptions, 'lr' | 'watchWeight' | 'seed'> = {}): Promise<WarmStart> {
  let inits: ReturnType<typeof onnxFloatInitializers>;
  try {
    inits = onnxFloatInitializers(await readFile(rankerOnnxPath));
  } catch (err) {
    return { model: undefined, reason: `cannot read ${rankerOnnxPath}: ${err instanceof Error ? err.message : String(err)}` };
  }
  const shared = inits.get('shared.0.weight');
  const gate = inits.get('gate_click.weight');
  const tower = inits.get('tower_click.0.weight');
  if (shared === undefined || gate === undefined || tower === undefined) {
    return { model: undefined, reason: `${rankerOnnxPath} is not an MMoE ranker of this trainer (no shared.0.weight / gate_click.weight / tower_click.0.weight initializers)` };
  }
  if (shared.dims[0] !== featureWidth) {
    return { model: undefined, reason: `${rankerOnnxPath} takes ${String(shared.dims[0])} features per row, the spec's rows have ${featureWidth}` };
  }
  const options: MmoeOptions = { ...opts, sharedDim: shared.dims[1]!, experts: gate.dims[1]!, expertDim: tower.dims[0]!, towerDim: tower.dims[1]! };
  const model = new MmoeModel(featureWidth, options);
  for (const p of model.params) {
    const t = inits.get(p.name);
    if (t === undefined || t.data.length !== p.value.length || t.dims.join('x') !== p.shape.join('x')) {
      return { model: undefined, reason: `${rankerOnnxPath}: parameter ${p.name} [${p.shape.join(', ')}] is ${t === undefined ? 'missing' : `[${t.dims.join(', ')}]`}` };
    }
    p.value.set(t.data);
  }
  return { model, options };
}
