/**
 * The user tower (user_tower.onnx) under onnxruntime-node: (UserView, context) rows → L2-normalised
 * user vectors. `session.run` executes synchronously on the calling thread, so callers decide which
 * thread that is (see user-state.ts for the measured choice).
 */
import * as ort from 'onnxruntime-node';
import type { RequestContext } from '../../core/events.js';
import type { FeatureSpec } from '../../core/features/spec.js';
import type { UserView } from '../../core/features/towers.js';
import { userDenseWidth, writeUserTowerInputs } from '../../core/features/towers.js';
import { MODEL_FILES, TENSORS } from '../../core/model/contract.js';
import type { ServingSession } from '../model/serving-session.js';
import { ServingTower, openServingSession } from '../model/serving-session.js';

/** Computes user embeddings; the ONNX implementation is {@link UserTower}. */
export interface UserEmbedder {
  readonly dim: number;
  readonly spec: FeatureSpec;
  /** One vector per (user, context) pair: `users.length × dim`, row-major. */
  embed(users: readonly UserView[], contexts: readonly RequestContext[]): Promise<Float32Array>;
}

/** The user tower of one model version, one ORT session (intra-op threads 1). */
export class UserTower extends ServingTower implements UserEmbedder {
  private constructor(opened: ServingSession) {
    super(opened, 'user tower');
  }

  /** Loads `modelDir/user_tower.onnx` after the manifest's feature-spec check. */
  static async load(modelDir: string): Promise<UserTower> {
    return new UserTower(await openServingSession(modelDir, MODEL_FILES.userTower));
  }

  async embed(users: readonly UserView[], contexts: readonly RequestContext[]): Promise<Float32Array> {
    const b = users.length;
    if (contexts.length !== b) throw new TypeError(`embed: ${b} users but ${contexts.length} contexts`);
    const spec = this.spec;
    const h = spec.historyLength;
    const w = userDenseWidth(spec);
    const userIds = new BigInt64Array(b * 2);
    const historyIds = new BigInt64Array(b * h);
    const historyWeights = new Float32Array(b * h);
    const dense = new Float32Array(b * w);
    for (let r = 0; r < b; r++) {
      writeUserTowerInputs(users[r] as UserView, contexts[r] as RequestContext, spec, r, userIds, historyIds, historyWeights, dense);
    }
    const t = TENSORS.userTower;
    return this.runVectors({
      [t.userIds]: new ort.Tensor('int64', userIds, [b, 2]),
      [t.historyIds]: new ort.Tensor('int64', historyIds, [b, h]),
      [t.historyWeights]: new ort.Tensor('float32', historyWeights, [b, h]),
      [t.userDense]: new ort.Tensor('float32', dense, [b, w]),
    }, t.userVec);
  }
}
