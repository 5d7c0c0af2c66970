/**
 * Shard-map CLI.
 *
 *   node dist/shardmap/cli.js show --nats nats://127.0.0.1:4222 --cluster local [--json]
 *   node dist/shardmap/cli.js init --nats ... --cluster local --nodes n1,n2,n3
 *        --item-shards 2 --partitions 16 --replicas 1 [--item-replicas N|all]
 *        [--rankers n1,n2] [--coordinators n1] [--force]
 *   node dist/shardmap/cli.js move --nats ... --cluster local (--partition P | --item-shard S)
 *        --from n2 --to n3 [--timeout-ms 120000]
 *   node dist/shardmap/cli.js drain --nats ... --cluster local --node n2 [--timeout-ms 120000]
 *   node dist/shardmap/cli.js add-node --nats ... --cluster local --node n4 [--ranker yes|no]
 *        [--timeout-ms 120000]
 *   node dist/shardmap/cli.js model --nats ... --cluster local [--version V [--models-dir models]
 *        [--by NAME] [--timeout-ms 60000]]
 *   node dist/shardmap/cli.js model --nats ... --cluster local --cancel [--models-dir models]
 *        [--by NAME] [--timeout-ms 600000]
 *
 * `show` prints the map, every node's assignment and (when nodes publish it) their load. `init`
 * writes a new balanced map (refuses to replace an existing one unless --force): R replicas of each
 * user partition and `--item-replicas` of each item shard, a number or "all" = every node (default
 * R, so existing scripts keep their maps; the local launcher's default is "all", from the config
 * knob cluster.itemReplicas). `move` moves one user partition or item shard between nodes live
 * (shardmap/move.ts: add the new owner, wait until it serves, remove the old one, wait until it
 * drained; every step a CAS, safe to retry). `drain` empties a node the same way, one shard at a
 * time (marked draining first, so no move picks it). `add-node` brings a node whose process is
 * already running into the map and gives it its share, live (shardmap/add-node.ts: register it,
 * copy every item shard onto it when every node holds them all, move user partitions to it one at
 * a time until it hosts within one of the others); running it again changes nothing. `model
 * --version V` switches the served model live, towers included (shardmap/model-switch.ts: checks V against
 * `<models-dir>/V` and what the nodes serve, writes the KV "model" key, waits for every node and
 * prints what each did; exit 1 naming the nodes that refused; Ctrl-C stops only the wait); without
 * --version it shows the key and what each node serves. `model --cancel` cancels a switch in
 * progress: puts the key back to the version before (from the key's KV history); nodes still
 * rebuilding give up at their next step, nodes that flipped switch back.
 * Every command but `init` refuses a cluster without a shard-map bucket instead of creating one.
 * Against a NATS server that requires TLS (a cluster whose config sets `tls`), add
 * `--tls-ca ca.pem --tls-cert client.pem --tls-key client.key` to any command. Against a NATS server
 * with per-role credentials (config `nats.auth`, cluster/nats/auth.ts), add `--creds <file>`: the
 * admin role's NKey seed file for writes (init, move, drain, add-node, model --version / --cancel); `show` and
 * `model` without --version also work with the reader's. A refused write exits 1 naming the subject
 * the server refused.
 */
import { existsSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { createShardMap } from './assign.js';
import { formatRanges, formatShardMap } from './format.js';
import { ShardMapStore } from './kv-store.js';
import { drainNode, moveShard } from './move.js';
import type { AddNodeStep } from './add-node.js';
import { addNode, NODE_NAME_PATTERN } from './add-node.js';
import { StatusCode, UpnextError, toStatus } from '../core/status.js';
import { cancelModelSwitch, formatModelOverview, formatModelSwitch, showModel, switchModel } from './model-switch.js';
import { checkModelVersionName } from '../cluster/node/model.js';
import { TLS_FLAGS, natsTlsOptions, tlsSectionFromFlags } from '../cluster/tls.js';
import type { TlsSection } from '../cluster/tls.js';
import { describeNatsAccessError, natsAuthOptions } from '../cluster/nats/auth.js';

const USAGE = `usage:
  shardmap show --nats <url> --cluster <name> [--json]
  shardmap init --nats <url> --cluster <name> --nodes n1,n2 --item-shards S --partitions P --replicas R
                [--item-replicas N|all] [--rankers n1,n2] [--coordinators n1] [--force]
  shardmap move --nats <url> --cluster <name> (--partition P | --item-shard S) --from <node> --to <node>
                [--timeout-ms 120000]
  shardmap drain --nats <url> --cluster <name> --node <node> [--timeout-ms 120000]
  shardmap add-node --nats <url> --cluster <name> --node <node> [--ranker yes|no] [--timeout-ms 120000]
                (start the node process first; it waits, serving nothing, until the map assigns it)
  shardmap model --nats <url> --cluster <name> [--version V [--models-dir models] [--by NAME] [--timeout-ms 60000]]
                (same towers: swaps ranker + calibration live; other towers: each node rebuilds its item
                 shards on them beside the serving ones, then flips (default timeout 600000); without --version: show)
  shardmap model --nats <url> --cluster <name> --cancel [--models-dir models] [--by NAME] [--timeout-ms 600000]
                (a switch in progress: the key goes back to the version before; nodes still rebuilding give up)
  every command: [--tls-ca ca.pem --tls-cert client.pem --tls-key client.key] for a NATS server that requires TLS
                 [--creds admin.nk] for a NATS server that requires credentials (writes need the admin role)`;

const COMMANDS = ['show', 'init', 'move', 'drain', 'add-node', 'model'] as const;

/** Parses `--key value` and `--flag` arguments. Exported for tests. */
export function parseFlags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new TypeError(`unexpected argument "${a}"`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out.set(a.slice(2), 'true');
    else {
      out.set(a.slice(2), next);
      i++;
    }
  }
  return out;
}

/**
 * The NATS TLS files from `--tls-ca/--tls-cert/--tls-key` (all three or none), checked like the
 * config's `tls` section (files readable, PEM that parses, key matches); a TypeError naming the
 * flag. {} = plaintext. Exported for tests.
 */
export function natsTlsFlags(flags: Map<string, string>): TlsSection {
  // NATS has no server-name override: --tls-server-name is not read here.
  return tlsSectionFromFlags((flag) => (flag === TLS_FLAGS.serverName ? undefined : flags.get(flag.slice(2))));
}

function required(flags: Map<string, string>, name: string): string {
  const v = flags.get(name);
  if (v === undefined || v === 'true') throw new TypeError(`--${name} is required`);
  return v;
}

function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

/** `--timeout-ms` as a number of ms, or undefined when absent. Exported for tests. */
export function timeoutFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new TypeError(`--timeout-ms must be a positive integer (ms), got "${value}"`);
  return Number(value);
}

/** A node name flag, checked; the error names the flag. Exported for tests. */
export function nodeFlag(flags: Map<string, string>, name: string): string {
  const v = required(flags, name);
  if (!NODE_NAME_PATTERN.test(v)) throw new TypeError(`--${name} must match [A-Za-z0-9_-]{1,64}, got "${v}"`);
  return v;
}

/** `--ranker yes|no`, or undefined when absent (add-node then decides). */
function rankerFlag(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'yes' || value === 'true') return true;
  if (value === 'no' || value === 'false') return false;
  throw new TypeError(`--ranker must be yes or no, got "${value}"`);
}

/** One line per add-node step. Exported for tests. */
export function formatAddNodeStep(node: string, s: AddNodeStep): string {
  switch (s.action) {
    case 'register':
      return `registered ${node} in the map (v${s.version})${s.ranker ? ' with a ranker replica' : ''}; its process answered in ${s.ms} ms`;
    case 'reactivate':
      return `${node} was drained: active again (v${s.version})`;
    case 'replicate':
      return `item shard ${s.index}: ${node} serves a copy after ${s.ms} ms (v${s.version}; the other owners keep theirs)`;
    case 'move':
      return `${s.kind === 'item' ? 'item shard' : 'partition'} ${s.index}: moved ${s.from} → ${node} in ${s.ms} ms (v${s.version})`;
    case 'item-replicas':
      return `item replicas R_items = ${s.itemReplicas} (every active node) (v${s.version})`;
  }
}

/**
 * The value of `--item-replicas`: "all" → `nodeCount`, a number as is (createShardMap range-checks
 * it against the nodes), absent → undefined (createShardMap then uses R). Exported for tests.
 */
export function itemReplicasFlag(value: string | undefined, nodeCount: number): number | undefined {
  if (value === undefined) return undefined;
  if (value === 'all') return nodeCount;
  if (!/^\d+$/.test(value)) throw new TypeError(`--item-replicas must be a positive integer or "all", got "${value}"`);
  return Number(value);
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!(COMMANDS as readonly (string | undefined)[]).includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return command === undefined || command === '--help' ? 0 : 2;
  }
  const flags = parseFlags(rest);
  const cluster = required(flags, 'cluster');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cluster)) throw new TypeError(`--cluster must match [A-Za-z0-9_-]{1,64}, got "${cluster}"`);
  // Checked before connecting, so a typo costs no NATS round trip.
  const addNodeName = command === 'add-node' ? nodeFlag(flags, 'node') : undefined;
  const timeoutMs = timeoutFlag(flags.get('timeout-ms'));
  const modelVersion = command === 'model' && flags.has('version') ? checkModelVersionName(required(flags, 'version')) : undefined;
  const tls = natsTlsFlags(flags);
  const credsFile = flags.has('creds') ? required(flags, 'creds') : undefined;
  const nc = await connect({ servers: required(flags, 'nats'), name: `shardmap-cli-${command}`, ...natsTlsOptions(tls), ...natsAuthOptions(credsFile, '--creds') });
  try {
    let store: ShardMapStore;
    try {
      // Only init may create a cluster's bucket: elsewhere a mistyped name must not make one.
      store = await ShardMapStore.open(nc, cluster, { create: command === 'init' });
    } catch (err) {
      if (err instanceof UpnextError && err.code === StatusCode.NOT_FOUND) throw new TypeError(`--cluster ${cluster}: no shard map for this cluster on this NATS server (its KV bucket does not exist; check the name)`);
      throw err;
    }
    if (command === 'add-node') {
      const node = addNodeName!;
      if ((await store.read()) === null) throw new TypeError(`--cluster ${cluster}: the cluster has no shard map (run shardmap init first)`);
      const ranker = rankerFlag(flags.get('ranker'));
      const r = await addNode({
        nc,
        store,
        cluster,
        node,
        ...(ranker !== undefined ? { ranker } : {}),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        log: (s) => process.stdout.write(`${formatAddNodeStep(node, s)}\n`),
      });
      const share = `item shards ${formatRanges(r.itemShards)}, partitions ${formatRanges(r.userPartitions)} (${r.userPartitions.length})`;
      process.stdout.write(
        r.noop
          ? `${node} is already in the map, active, with its share (${share}): nothing to do (map v${r.map.version})\n`
          : `${node} added: ${r.steps.length} step(s); it serves ${share} (map v${r.map.version})\n`,
      );
      return 0;
    }
    if (command === 'model') {
      const cancel = flags.get('cancel');
      if (cancel !== undefined && cancel !== 'true') throw new TypeError(`--cancel takes no value, got "${cancel}"`);
      if (cancel !== undefined && modelVersion !== undefined) throw new TypeError('model: --cancel and --version go apart (--cancel goes back to the version before the key\'s)');
      if (cancel === undefined && modelVersion === undefined) {
        process.stdout.write(`${formatModelOverview(await showModel({ nc, store, cluster }))}\n`);
        return 0;
      }
      // Ctrl-C stops only this wait: the nodes follow the key, not this process. Say where things stand.
      let written: { readonly what: 'switch' | 'rollback'; readonly version: string } | undefined;
      const onInterrupt = () => {
        const where =
          written === undefined
            ? 'stopped before the model key was written: nothing changed'
            : written.what === 'switch' && cancel === undefined
              ? `stopped waiting; the switch to ${written.version} goes on. Cancel it with: shardmap model --nats … --cluster ${cluster} --cancel`
              : `stopped waiting; the model key already goes back to ${written.version} and the nodes follow it (shardmap model shows them)`;
        process.stderr.write(`\nshardmap model: ${where}\n`);
        process.exit(130);
      };
      process.once('SIGINT', onInterrupt);
      // Without the version's files here (an operator machine), a cancel leaves the checks to the nodes.
      const modelsDir = flags.get('models-dir') ?? (cancel !== undefined && !existsSync('models') ? undefined : 'models');
      const common = {
        nc,
        store,
        cluster,
        ...(modelsDir !== undefined ? { modelsDir } : {}),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        onKeyWritten: (what: 'switch' | 'rollback', version: string) => void (written = { what, version }),
      };
      try {
        const r = cancel !== undefined
          ? await cancelModelSwitch({ ...common, by: flags.get('by') ?? 'shardmap model --cancel' })
          : await switchModel({ ...common, version: modelVersion!, by: flags.get('by') ?? 'shardmap model' });
        (r.ok ? process.stdout : process.stderr).write(`${formatModelSwitch(r)}\n`);
        return r.ok ? 0 : 1;
      } catch (err) {
        // Refused before the key was written: say which status, so scripts and people can tell.
        const st = toStatus(err);
        process.stderr.write(`shardmap model${cancel !== undefined ? ' --cancel' : ''}: ${StatusCode[st.code] ?? st.code}: ${st.message} (the model key was not changed)\n`);
        return 1;
      } finally {
        process.off('SIGINT', onInterrupt);
      }
    }
    if (command === 'move') {
      const partition = flags.get('partition');
      const itemShard = flags.get('item-shard');
      if ((partition === undefined) === (itemShard === undefined)) throw new TypeError('move needs exactly one of --partition P or --item-shard S');
      const index = Number(partition ?? itemShard);
      const r = await moveShard({
        nc,
        store,
        cluster,
        kind: partition !== undefined ? 'user' : 'item',
        index,
        from: required(flags, 'from'),
        to: required(flags, 'to'),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      });
      process.stdout.write(`moved: new owner serving after ${r.warmMs} ms (map v${r.versions.warm}), old owner drained ${r.drainMs} ms after the flip (map v${r.versions.flip})\n`);
      return 0;
    }
    if (command === 'drain') {
      const node = required(flags, 'node');
      const steps = await drainNode({
        nc,
        store,
        cluster,
        node,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        log: (s) => process.stdout.write(`${s.kind} ${s.index}: ${s.to === undefined ? 'let go (another owner holds it)' : `moved to ${s.to}`} in ${s.ms} ms\n`),
      });
      process.stdout.write(`${node} drained: ${steps.length} shard(s) and partition(s) handed over; it still runs its ranker/coordinator roles\n`);
      return 0;
    }
    if (command === 'init') {
      const nodes = list(required(flags, 'nodes')) ?? [];
      const itemReplicas = itemReplicasFlag(flags.get('item-replicas'), nodes.length);
      const map = createShardMap({
        cluster,
        nodes,
        itemShards: Number(required(flags, 'item-shards')),
        userPartitions: Number(required(flags, 'partitions')),
        replicas: Number(flags.get('replicas') ?? '1'),
        ...(itemReplicas !== undefined ? { itemReplicas } : {}),
        ...(flags.has('rankers') ? { rankers: list(flags.get('rankers')) ?? [] } : {}),
        ...(flags.has('coordinators') ? { coordinators: list(flags.get('coordinators')) ?? [] } : {}),
      });
      if (flags.get('force') === 'true') {
        const stored = await store.put(map);
        process.stdout.write(`${formatShardMap(stored)}\n`);
        return 0;
      }
      const { snapshot, created } = await store.createIfAbsent(map);
      if (!created) {
        process.stderr.write(`cluster ${cluster} already has a map (version ${snapshot.version}); use --force to replace it\n`);
        return 1;
      }
      process.stdout.write(`${formatShardMap(snapshot)}\n`);
      return 0;
    }
    const map = await store.read();
    if (!map) {
      process.stderr.write(`cluster ${cluster} has no shard map (bucket empty)\n`);
      return 1;
    }
    const loads = await store.readLoads(Object.keys(map.nodes));
    if (flags.get('json') === 'true') {
      process.stdout.write(`${JSON.stringify({ map, loads: Object.fromEntries(loads) }, null, 2)}\n`);
    } else {
      process.stdout.write(`${formatShardMap(map, loads)}\n`);
    }
    return 0;
  } finally {
    await nc.close();
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // A refused permission or credential says which, not just the client's error text.
      const argv = process.argv.slice(2);
      const creds = argv.indexOf('--creds');
      const access = describeNatsAccessError(err, creds >= 0 && argv[creds + 1] !== undefined ? `--creds ${argv[creds + 1]}` : 'no credentials (--creds not given)');
      process.stderr.write(`shardmap: ${access ?? (err instanceof Error ? err.message : String(err))}\n`);
      process.exit(1);
    },
  );
}
