/**
 * Which model version a cluster serves, for `train-logged` without `--from-model` ("retrain what
 * is serving"): the cluster's model key when a switch has written it (every node follows it),
 * else the one version every answering node reports. Reads only: the reader role suffices.
 */
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { failedPrecondition } from '../../core/status.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import { showModel } from '../../shardmap/model-switch.js';
import { checkModelVersionName } from '../../cluster/node/model.js';

/** The served version's directory under `modelsDir`, and where the version came from. */
export interface ServingModelDir {
  readonly dir: string;
  readonly version: string;
  readonly source: 'model key' | 'node status';
  /** The model key's revision read (null: no key was set), for a later switch's compare-and-set. */
  readonly keyRevision: number | null;
}

/** FAILED_PRECONDITION when the nodes disagree, none answers, or the cluster has no shard map. */
export async function servingModelDir(o: { readonly nc: NatsConnection; readonly cluster: string; readonly modelsDir: string }): Promise<ServingModelDir> {
  const store = await ShardMapStore.open(o.nc, o.cluster, { create: false });
  const key = await store.readModelKey();
  if (key !== null) {
    const version = checkModelVersionName(key.value.version);
    return { dir: join(o.modelsDir, version), version, source: 'model key', keyRevision: key.revision };
  }
  // No switch has written the key: ask the nodes (one status request each, in parallel).
  const overview = await showModel({ nc: o.nc, store, cluster: o.cluster });
  const versions = new Set<string>();
  for (const n of overview.nodes) if (n.status?.model?.version !== undefined) versions.add(n.status.model.version);
  if (versions.size === 1) {
    const version = checkModelVersionName([...versions][0]);
    return { dir: join(o.modelsDir, version), version, source: 'node status', keyRevision: null };
  }
  throw failedPrecondition(
    versions.size === 0
      ? `cluster ${o.cluster} has no model key and no node reported the model it serves: pass --from-model models/<version>`
      : `cluster ${o.cluster}'s nodes serve different versions (${[...versions].sort().join(', ')}): pass --from-model models/<version>`,
  );
}
