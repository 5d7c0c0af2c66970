/**
 * ONNX export of the trained models, named and shaped exactly as core/model/contract.ts TENSORS
 * says, so serving (onnxruntime-node) and a Triton server load the same files. Each graph mirrors
 * the TypeScript forward pass op for op; offline/onnx/parity.ts checks the two agree.
 */
import { TENSORS } from '../../core/model/contract.js';
import type { MmoeModel } from '../models/mmoe.js';
import type { SingleTaskModel } from '../models/single-task.js';
import type { Tower } from '../models/tower.js';
import type { TwoTowerModel } from '../models/two-tower.js';
import type { Mlp } from '../nn/mlp.js';
import { L2_EPS } from '../nn/activations.js';
import { GraphBuilder } from './graph.js';

const B = 'B';

/** MatMul + Add per layer, Relu between layers (and after the last when `mlp.reluOut`). */
function emitMlp(g: GraphBuilder, mlp: Mlp, x: string): string {
  let h = x;
  mlp.layers.forEach((layer, i) => {
    const w = g.floats(layer.weight.name, layer.weight.value, layer.weight.shape);
    const b = g.floats(layer.bias.name, layer.bias.value, layer.bias.shape);
    h = g.node('Add', [g.node('MatMul', [h, w], `${layer.weight.name}_mm`), b], `${layer.bias.name}_add`);
    if (i + 1 < mlp.layers.length || mlp.reluOut) h = g.node('Relu', [h], `${layer.bias.name}_relu`);
  });
  return h;
}

/** How one tower bag reaches the graph: its input name and whether the ids are [B] instead of [B, bag]. */
interface BagInput {
  readonly ids: string;
  readonly weights?: string;
  readonly rank1?: boolean;
}

function emitTower(g: GraphBuilder, tower: Tower, bagInputs: readonly BagInput[], dense: string, output: string): void {
  const parts: string[] = [];
  tower.options.bags.forEach((bag, i) => {
    const table = tower.tables[i]!;
    const w = g.floats(table.name, table.weight, [table.rows, table.dim]);
    const input = bagInputs[i]!;
    let e = g.node('Gather', [w, input.ids], `${bag.name}_gather`, { axis: 0 });
    if (input.rank1 === true) {
      parts.push(e);
      return;
    }
    if (bag.weighted) {
      if (input.weights === undefined) throw new Error(`bag ${bag.name} needs a weights input`);
      const wt = g.node('Unsqueeze', [input.weights, g.int64s('axis_2', [2])], `${bag.name}_w3`);
      e = g.node('Mul', [e, wt], `${bag.name}_weighted`);
    }
    parts.push(g.node('ReduceSum', [e, g.int64s('axis_1', [1])], `${bag.name}_pool`, { keepdims: 0 }));
  });
  parts.push(dense);
  const x = g.node('Concat', parts, 'concat', { axis: 1 });
  const h = emitMlp(g, tower.mlp, x);
  const norm = g.node('ReduceL2', [h], 'norm', { axes: [1], keepdims: 1 });
  const eps = g.floats('l2_eps', new Float32Array([L2_EPS]), []);
  const safe = g.node('Max', [norm, eps], 'norm_safe');
  g.node('Div', [h, safe], output, {}, [output]);
}

/** user_tower.onnx bytes. */
export function exportUserTower(model: TwoTowerModel): Uint8Array {
  const spec = model.spec;
  const t = TENSORS.userTower;
  const g = new GraphBuilder('user_tower');
  g.input(t.userIds, 'int64', [B, 2]);
  g.input(t.historyIds, 'int64', [B, spec.historyLength]);
  g.input(t.historyWeights, 'float32', [B, spec.historyLength]);
  g.input(t.userDense, 'float32', [B, model.user.options.denseWidth]);
  g.output(t.userVec, 'float32', [B, spec.embeddingDim]);
  emitTower(g, model.user, [{ ids: t.userIds }, { ids: t.historyIds, weights: t.historyWeights }], t.userDense, t.userVec);
  return g.encode('upnext two-tower user tower: L2-normalised user vector');
}

/** item_tower.onnx bytes. */
export function exportItemTower(model: TwoTowerModel): Uint8Array {
  const spec = model.spec;
  const t = TENSORS.itemTower;
  const g = new GraphBuilder('item_tower');
  g.input(t.itemIds, 'int64', [B, 2]);
  g.input(t.creatorIds, 'int64', [B]);
  g.input(t.itemDense, 'float32', [B, model.item.options.denseWidth]);
  g.output(t.itemVec, 'float32', [B, spec.embeddingDim]);
  emitTower(g, model.item, [{ ids: t.itemIds }, { ids: t.creatorIds, rank1: true }], t.itemDense, t.itemVec);
  return g.encode('upnext two-tower item tower: L2-normalised item vector');
}

/** ranker.onnx bytes for the MMoE ranker. */
export function exportMmoeRanker(model: MmoeModel): Uint8Array {
  const t = TENSORS.ranker;
  const g = new GraphBuilder('ranker');
  g.input(t.features, 'float32', [B, model.featureWidth]);
  g.output(t.pClick, 'float32', [B, 1]);
  g.output(t.watchLog1p, 'float32', [B, 1]);
  const axis1 = g.int64s('axis_1', [1]);
  const shape = g.int64s('experts_shape', [-1, model.numExperts, model.expertDim]);
  const h = emitMlp(g, model.shared, t.features);
  const ex = g.node('Reshape', [emitMlp(g, model.experts, h), shape], 'experts_3d');
  const outs = [t.pClick, t.watchLog1p];
  model.gates.forEach((gate, i) => {
    const w = g.floats(gate.weight.name, gate.weight.value, gate.weight.shape);
    const b = g.floats(gate.bias.name, gate.bias.value, gate.bias.shape);
    const logits = g.node('Add', [g.node('MatMul', [h, w], `${gate.weight.name}_mm`), b], `${gate.bias.name}_add`);
    const p = g.node('Softmax', [logits], `gate${i}_softmax`, { axis: 1 });
    // mixed[b] = p[b] · experts[b]: a batched MatMul [B,1,E] × [B,E,X]. The same sum as Mul +
    // ReduceSum over the experts (the middle) axis, but on ONNX Runtime 1.30's CPU kernels it cut
    // the whole call by 15–18% at 431 rows (docs/capacity.md "A smaller ranker").
    const p3 = g.node('Unsqueeze', [p, axis1], `gate${i}_row`);
    const mixed = g.node('Squeeze', [g.node('MatMul', [p3, ex], `gate${i}_mix3`), axis1], `mix${i}`);
    const raw = emitMlp(g, model.towers[i]!, mixed);
    const name = outs[i]!;
    if (name === t.pClick) g.node('Sigmoid', [raw], name, {}, [name]);
    else g.node('Identity', [raw], name, {}, [name]);
  });
  return g.encode('upnext MMoE ranker: p_click (uncalibrated) and watch_log1p_s');
}

/**
 * A ranker.onnx from the two single-task baselines (same contract as the MMoE), so the baselines
 * can be served and A/B-compared.
 */
export function exportSingleTaskRanker(click: SingleTaskModel, watch: SingleTaskModel, featureWidth: number): Uint8Array {
  const t = TENSORS.ranker;
  const g = new GraphBuilder('ranker');
  g.input(t.features, 'float32', [B, featureWidth]);
  g.output(t.pClick, 'float32', [B, 1]);
  g.output(t.watchLog1p, 'float32', [B, 1]);
  g.node('Sigmoid', [emitMlp(g, click.mlp, t.features)], t.pClick, {}, [t.pClick]);
  g.node('Identity', [emitMlp(g, watch.mlp, t.features)], t.watchLog1p, {}, [t.watchLog1p]);
  return g.encode('upnext single-task ranker baselines: p_click and watch_log1p_s');
}
