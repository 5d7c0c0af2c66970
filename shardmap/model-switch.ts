/**
 * Switching the served model live (DESIGN §5: "the current version lives in NATS KV; rankers and
 * shards hot-swap on change"):
 *
 * 1. check the version here first, when this machine has the models root: it exists (NOT_FOUND),
 *    this build accepts its manifest, and it can replace what the nodes serve now (same feature
 *    spec and ranker width: cluster/node/model.ts `liveSwitchKind`);
 * 2. write the cluster's "model" key, compare-and-set on its revision;
 * 3. every node in the map sees the key, runs the same checks against what it serves and switches:
 *    with the same towers it reloads its ranker replica and then its coordinator's model; with other
 *    towers it first rebuilds its item shards on them beside the serving ones (seconds to minutes:
 *    cluster/node/real-launcher.ts `switchTowers`); it reports the outcome in its status;
 * 4. wait until every node has answered the new revision; when one refused or did not answer, the
 *    key is put back to the version before (nodes that had switched follow it back), so the
 *    cluster does not stay split between two versions.
 *
 * While nodes switch at different moments each request stays in its coordinator's embedding space
 * (actors/model/embedding-space.ts), so a tower switch never searches a vector of other towers.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { StatusCode, UpnextError, toStatus } from '../core/status.js';
import { checkModelVersionName, liveSwitchKind, readModelDir } from '../cluster/node/model.js';
import type { ModelDirInfo } from '../cluster/node/model.js';
import type { ModelKeyEntry, ModelKeyValue, ShardMapStore } from './kv-store.js';
import { nodeStatus } from './move.js';
import type { NodeStatus } from './move.js';

/** Default wait for every node to switch, ms. */
export const DEFAULT_SWITCH_TIMEOUT_MS = 60_000;
/** Default wait when the towers change (each node rebuilds its item shards on them), ms. */
export const TOWER_SWITCH_TIMEOUT_MS = 600_000;

/** Options of {@link switchModel}. */
export interface ModelSwitchOptions {
  readonly nc: NatsConnection;
  readonly store: ShardMapStore;
  readonly cluster: string;
  /** The version to serve: a directory name under the models root. */
  readonly version: string;
  /**
   * This machine's models root (`models/`), for the checks before the key is written. Absent: no
   * local checks, the nodes alone decide (for an operator machine without the model files).
   */
  readonly modelsDir?: string;
  /** Who asks, stored in the key for the audit trail. Default: none. */
  readonly by?: string;
  /**
   * Longest wait for every node to answer a key change, ms. Default 60,000, or
   * {@link TOWER_SWITCH_TIMEOUT_MS} when the local check sees a tower switch (shards are rebuilt).
   */
  readonly timeoutMs?: number;
  /** Poll interval of the node status, ms. Default 100. */
  readonly pollMs?: number;
  /**
   * Write only if the key is still at this revision (null: only if it has no value), e.g. the one a
   * caller based its decision on; ABORTED otherwise. Default: the revision read just before writing.
   */
  readonly expectedRevision?: number | null;
  /** Told when the key is written: the switch's value, then (when a node refused) the rollback's. */
  readonly onKeyWritten?: (what: 'switch' | 'rollback', version: string, revision: number) => void;
}

/** How one node answered a "model" key change. */
export interface NodeModelOutcome {
  readonly node: string;
  /** switched: serves the version now; refused: kept its model (see code/message); no-answer: did not act on the key in time. */
  readonly state: 'switched' | 'refused' | 'no-answer';
  /** The version the node serves now ("" when it did not answer). */
  readonly serving: string;
  /** gRPC status code name of a refusal, e.g. "FAILED_PRECONDITION". */
  readonly code?: string;
  readonly message?: string;
}

/** The result of one key write and the wait that followed. */
export interface ModelRollout {
  readonly version: string;
  /** KV revision of the key value written. */
  readonly revision: number;
  readonly nodes: readonly NodeModelOutcome[];
}

/** What {@link switchModel} did. */
export interface ModelSwitchResult extends ModelRollout {
  /** True when every node serves `version`. */
  readonly ok: boolean;
  /** When a node refused or did not answer: the key put back to the previous version, and how the nodes followed. */
  readonly rollback?: ModelRollout;
}

/** One node's model, as `shardmap model` (no --version) shows it. */
export interface NodeModelView {
  readonly node: string;
  /** undefined: the node did not answer. */
  readonly status: NodeStatus | undefined;
}

/** The key and what every node serves. */
export interface ModelOverview {
  readonly key: ModelKeyEntry | null;
  readonly nodes: readonly NodeModelView[];
}

const codeName = (err: unknown) => StatusCode[toStatus(err).code] ?? 'UNKNOWN';

/** Every node's status, in name order. */
async function statuses(o: Pick<ModelSwitchOptions, 'nc' | 'cluster'>, nodes: readonly string[]): Promise<NodeModelView[]> {
  return Promise.all([...nodes].sort().map(async (node) => ({ node, status: await nodeStatus(o.nc, o.cluster, node) })));
}

async function mapNodes(store: ShardMapStore, cluster: string): Promise<string[]> {
  const map = await store.read();
  if (map === null) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cluster ${cluster} has no shard map (run shardmap init first)`);
  return Object.keys(map.nodes);
}

/** The "model" key and what each node of the map serves now. */
export async function showModel(o: Pick<ModelSwitchOptions, 'nc' | 'store' | 'cluster'>): Promise<ModelOverview> {
  const nodes = await mapNodes(o.store, o.cluster);
  return { key: await o.store.readModelKey(), nodes: await statuses(o, nodes) };
}

/**
 * The local check of step 1 against what the nodes serve: FAILED_PRECONDITION naming the nodes and
 * what differs. Versions the nodes serve that this machine does not have are skipped (the nodes
 * check those).
 */
async function checkAgainstServed(modelsDir: string, next: ModelDirInfo, before: readonly NodeModelView[]): Promise<void> {
  const version = next.manifest.version;
  const byVersion = new Map<string, string[]>();
  for (const { node, status } of before) {
    const v = status?.model?.version;
    if (v !== undefined && v !== version) byVersion.set(v, [...(byVersion.get(v) ?? []), node]);
  }
  for (const [v, nodes] of byVersion) {
    let served: ModelDirInfo;
    try {
      served = await readModelDir(modelsDir, v);
    } catch (err) {
      if (toStatus(err).code === StatusCode.NOT_FOUND) continue;
      throw err;
    }
    try {
      liveSwitchKind(served, next);
    } catch (err) {
      const st = toStatus(err);
      throw new UpnextError(st.code, `${nodes.join(', ')} serve${nodes.length === 1 ? 's' : ''} ${v}: ${st.message}`);
    }
  }
}

/** Polls every node until it has acted on key revision `revision` (or the timeout), then says how. */
async function awaitNodes(o: ModelSwitchOptions, nodes: readonly string[], version: string, revision: number): Promise<NodeModelOutcome[]> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_SWITCH_TIMEOUT_MS;
  const end = Date.now() + timeoutMs;
  return Promise.all(
    [...nodes].sort().map(async (node): Promise<NodeModelOutcome> => {
      for (;;) {
        const s = await nodeStatus(o.nc, o.cluster, node);
        const m = s?.model;
        if (m !== undefined && m.keyRevision >= revision) {
          if (m.version === version) return { node, state: 'switched', serving: m.version };
          if (m.refused !== undefined && m.refused.version === version) {
            return { node, state: 'refused', serving: m.version, code: m.refused.code, message: m.refused.message };
          }
          // Acted on a later revision (another switch since): report what it serves.
          return { node, state: 'refused', serving: m.version, code: 'ABORTED', message: `the model key changed again (revision ${m.keyRevision}) before ${node} was seen serving ${version}` };
        }
        if (Date.now() > end) {
          const why = s === undefined ? 'did not answer its status' : m === undefined ? 'does not follow the model key (older build?)' : `still at key revision ${m.keyRevision}, serving ${m.version}`;
          return { node, state: 'no-answer', serving: m?.version ?? '', code: 'DEADLINE_EXCEEDED', message: `no answer to the switch within ${timeoutMs} ms: ${why}` };
        }
        await new Promise((r) => setTimeout(r, o.pollMs ?? 100));
      }
    }),
  );
}

/**
 * Switches the cluster to `o.version` (see the module comment). Throws before writing the key
 * (INVALID_ARGUMENT bad name, NOT_FOUND no `<modelsDir>/<version>/`, FAILED_PRECONDITION refused by
 * the checks, ABORTED another writer changed the key meanwhile). Once the key is written it
 * resolves; `ok` false means at least one node refused or did not answer, and the result names them.
 */
export async function switchModel(o: ModelSwitchOptions): Promise<ModelSwitchResult> {
  return rollOut(o);
}

/**
 * {@link switchModel}; with `revertOf` the cancel's write of the version before: the value names
 * the version undone, and a node's refusal is not rolled back onto it.
 */
async function rollOut(o: ModelSwitchOptions, revertOf?: string): Promise<ModelSwitchResult> {
  const version = checkModelVersionName(o.version);
  const next = o.modelsDir !== undefined ? await readModelDir(o.modelsDir, version) : undefined;
  const nodes = await mapNodes(o.store, o.cluster);
  const before = await statuses(o, nodes);
  if (o.modelsDir !== undefined && next !== undefined) await checkAgainstServed(o.modelsDir, next, before);
  // A node that reports another embedding space than the new version's rebuilds its shards: wait longer.
  const towers = next !== undefined && before.some((b) => b.status?.model?.space !== undefined && b.status.model.space !== next.space);
  if (o.timeoutMs === undefined && towers) o = { ...o, timeoutMs: TOWER_SWITCH_TIMEOUT_MS };
  const previous = await o.store.readModelKey();
  const value: ModelKeyValue = { version, requestedAt: new Date().toISOString(), ...(o.by !== undefined ? { by: o.by } : {}), ...(revertOf !== undefined ? { revertOf } : {}) };
  const revision = await o.store.writeModelKey(value, o.expectedRevision !== undefined ? o.expectedRevision : (previous?.revision ?? null));
  o.onKeyWritten?.('switch', version, revision);
  const outcomes = await awaitNodes(o, nodes, version, revision);
  const ok = outcomes.every((n) => n.state === 'switched');
  // A cancel that fails on a node is not undone: that would restart the switch it cancelled.
  if (ok || revertOf !== undefined) return { version, revision, ok, nodes: outcomes };

  // Put the key back so the cluster converges on one version again.
  const back = goBackVersion(previous?.value, before, version);
  if (back === undefined) return { version, revision, ok, nodes: outcomes };
  let backRevision: number;
  try {
    backRevision = await o.store.writeModelKey({ version: back, requestedAt: new Date().toISOString(), by: `${o.by ?? 'shardmap model'} (rollback of ${version})`, revertOf: version }, revision);
  } catch (err) {
    if (codeName(err) === 'ABORTED') return { version, revision, ok, nodes: outcomes }; // someone else moved on: leave it to them
    throw err;
  }
  o.onKeyWritten?.('rollback', back, backRevision);
  const rollback: ModelRollout = { version: back, revision: backRevision, nodes: await awaitNodes(o, nodes, back, backRevision) };
  return { version, revision, ok, nodes: outcomes, rollback };
}

/**
 * The version to go back to from `from`: the key's value before it, else the one version the nodes
 * in `views` serve (none when they disagree, or serve `from`).
 */
function goBackVersion(before: ModelKeyValue | undefined, views: readonly NodeModelView[], from: string): string | undefined {
  if (before !== undefined && before.version !== from) return before.version;
  const served = new Set(views.map((v) => v.status?.model?.version));
  const [only] = served;
  return served.size === 1 && only !== undefined && only !== from ? only : undefined;
}

/** Options of {@link cancelModelSwitch}: those of a switch, less the version (the key's history names it). */
export type ModelCancelOptions = Omit<ModelSwitchOptions, 'version' | 'expectedRevision'>;

/** What {@link cancelModelSwitch} did: a switch back to `version`, the one before `cancelled`. */
export interface ModelCancelResult extends ModelSwitchResult {
  /** The version whose switch was cancelled. */
  readonly cancelled: string;
}

/**
 * Cancels a switch in progress (`shardmap model --cancel`): puts the "model" key back to the version
 * it named before (from the key's KV history; without one, the version the nodes that have not
 * acted on the key still serve) and waits for every node, like a switch. A node still switching to
 * the cancelled version gives up at its next step and keeps what it served (cluster/node/node.ts);
 * a node that had flipped already switches back, rebuilding for the version it had served.
 *
 * FAILED_PRECONDITION, the key unchanged: no model key; the key's value already undoes a switch (a
 * rollback or an earlier cancel: cancelling it would restart the undone switch); no switch in
 * progress (every node that answers has acted on the key: go back with a switch to the version
 * wanted); no version to go back to. ABORTED when the key changed since the cancel read it.
 */
export async function cancelModelSwitch(o: ModelCancelOptions): Promise<ModelCancelResult> {
  const key = await o.store.readModelKey();
  if (key === null) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cluster ${o.cluster} has no model key: no switch to cancel`);
  const cancelled = key.value.version;
  if (key.value.revertOf !== undefined) {
    throw new UpnextError(
      StatusCode.FAILED_PRECONDITION,
      `the model key (revision ${key.revision}) already goes back from ${key.value.revertOf} to ${cancelled}${key.value.by !== undefined ? ` (${key.value.by})` : ''}: wait for the nodes (shardmap model shows them), or switch with --version`,
    );
  }
  const views = await statuses(o, await mapNodes(o.store, o.cluster));
  // Nodes that report a key revision below the key's are still switching. Silent nodes (down, or an
  // older build that does not follow the key) say nothing either way.
  const pending = views.filter((v) => v.status?.model !== undefined && v.status.model.keyRevision < key.revision);
  if (pending.length === 0) {
    const silent = views.filter((v) => v.status?.model === undefined).map((v) => v.node);
    throw new UpnextError(
      StatusCode.FAILED_PRECONDITION,
      `no switch in progress: every node that answers has acted on the model key (revision ${key.revision}, ${cancelled})${silent.length > 0 ? `; ${silent.join(', ')} did not report a model` : ''}; to go back, switch to the version wanted with shardmap model --version`,
    );
  }
  const before = (await o.store.readModelKeyHistory()).filter((e) => e.revision < key.revision && e.value.version !== cancelled).pop()?.value;
  const back = goBackVersion(before, pending, cancelled);
  if (back === undefined) {
    throw new UpnextError(StatusCode.FAILED_PRECONDITION, `no version to go back to: the model key's history holds none before ${cancelled} (revision ${key.revision}), and the nodes still switching do not serve one version`);
  }
  // A node gives up at its next step, which may be after an item shard's rebuild (minutes at 10M
  // items): wait as long as for a tower switch unless told otherwise.
  const result = await rollOut(
    // Compare-and-set on the revision this cancel looked at: a switch written meanwhile wins.
    { ...o, version: back, by: `${o.by ?? 'shardmap model --cancel'} (cancel of ${cancelled})`, timeoutMs: o.timeoutMs ?? TOWER_SWITCH_TIMEOUT_MS, expectedRevision: key.revision },
    cancelled,
  );
  return { ...result, cancelled };
}

/** One line per node of a rollout. */
function formatOutcomes(r: ModelRollout): string[] {
  return r.nodes.map((n) =>
    n.state === 'switched'
      ? `  ${n.node}: serving ${n.serving}`
      : `  ${n.node}: ${n.state === 'refused' ? 'REFUSED' : 'NO ANSWER'} (${n.code}) — ${n.message}${n.serving ? ` [serving ${n.serving}]` : ''}`,
  );
}

/** The report `shardmap model --version` (or `--cancel`) prints. */
export function formatModelSwitch(r: ModelSwitchResult | ModelCancelResult): string {
  const head = `model key → ${r.version} (revision ${r.revision})`;
  const lines = ['cancelled' in r ? `${head}: switch to ${r.cancelled} cancelled` : head, ...formatOutcomes(r)];
  if (r.ok) lines.push(`every node serves ${r.version}`);
  else {
    const bad = r.nodes.filter((n) => n.state !== 'switched');
    lines.push(`switch to ${r.version} FAILED on ${bad.map((n) => `${n.node} (${n.code}: ${n.message})`).join('; ')}`);
    if (r.rollback) lines.push(`model key put back → ${r.rollback.version} (revision ${r.rollback.revision})`, ...formatOutcomes(r.rollback));
  }
  return lines.join('\n');
}

/** The report `shardmap model` (no --version) prints. */
export function formatModelOverview(v: ModelOverview): string {
  const key = v.key === null ? 'model key: not set (nodes serve their --models)' : `model key: ${v.key.value.version} (revision ${v.key.revision}, requested ${v.key.value.requestedAt}${v.key.value.by ? ` by ${v.key.value.by}` : ''})`;
  const lines = [key];
  for (const { node, status } of v.nodes) {
    const m = status?.model;
    if (status === undefined) lines.push(`  ${node}: no answer`);
    else if (m === undefined) lines.push(`  ${node}: does not report its model`);
    else lines.push(`  ${node}: serving ${m.version}${m.space ? ` (embedding space ${m.space})` : ''} (key revision ${m.keyRevision})${m.refused ? `; refused ${m.refused.version}: ${m.refused.code} ${m.refused.message}` : ''}`);
  }
  return lines.join('\n');
}
