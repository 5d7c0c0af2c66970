/** The tensor section of a {@link ModelManifest}, derived from the feature spec and the contract. */
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import { itemDenseWidth, userDenseWidth } from '../../core/features/towers.js';
import type { ModelManifest } from '../../core/model/contract.js';
import { TENSORS } from '../../core/model/contract.js';

/** Inputs and outputs of the three ONNX files for `spec`; -1 marks the dynamic batch dimension. */
export function manifestTensors(spec: FeatureSpec): ModelManifest['tensors'] {
  const u = TENSORS.userTower;
  const i = TENSORS.itemTower;
  const r = TENSORS.ranker;
  const h = spec.historyLength;
  return {
    userTower: {
      inputs: [
        { name: u.userIds, dtype: 'int64', shape: [-1, 2] },
        { name: u.historyIds, dtype: 'int64', shape: [-1, h] },
        { name: u.historyWeights, dtype: 'float32', shape: [-1, h] },
        { name: u.userDense, dtype: 'float32', shape: [-1, userDenseWidth(spec)] },
      ],
      outputs: [{ name: u.userVec, dtype: 'float32', shape: [-1, spec.embeddingDim] }],
    },
    itemTower: {
      inputs: [
        { name: i.itemIds, dtype: 'int64', shape: [-1, 2] },
        { name: i.creatorIds, dtype: 'int64', shape: [-1] },
        { name: i.itemDense, dtype: 'float32', shape: [-1, itemDenseWidth(spec)] },
      ],
      outputs: [{ name: i.itemVec, dtype: 'float32', shape: [-1, spec.embeddingDim] }],
    },
    ranker: {
      inputs: [{ name: r.features, dtype: 'float32', shape: [-1, rankerRowWidth(spec)] }],
      outputs: [
        { name: r.pClick, dtype: 'float32', shape: [-1, 1] },
        { name: r.watchLog1p, dtype: 'float32', shape: [-1, 1] },
      ],
    },
  };
}
