/**
 * The node process:
 *
 *   node dist/cluster/node/main.js --name n1 --nats nats://127.0.0.1:4222 --cluster local \
 *     --world data/worlds/default --models models/<v> --run-dir run/local [--config file] [--set key=value]...
 *
 * Connects to NATS, checks the model's feature-spec hash against the running code, follows the
 * cluster's "model" key (the version it names, when it can replace --models live; the parent of
 * --models is the models root where `<version>/` is looked up), runs the actors
 * the shard map assigns it (cluster/node/node.ts), prints ONE JSON line `{"event":"ready",…}` on
 * stdout when they are all up (the local launcher waits for it), logs JSON lines on stderr, and on
 * SIGTERM/SIGINT drains: coordinator first (stop accepting, finish in flight), then the other
 * actors, then the NATS connection. Exit code 0 after a clean drain, 1 on a failed start or a drain
 * that overran `node.drainTimeoutMs`.
 */
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { applyOverrides, readConfigFile, resolveConfig } from '../config.js';
import { natsTlsOptions } from '../tls.js';
import { natsAuthOptions } from '../nats/auth.js';
import type { UpnextConfigInput } from '../config.js';
import { toStatus } from '../../core/status.js';
import { ShardMapStore } from '../../shardmap/kv-store.js';
import type { ModelKeyEntry } from '../../shardmap/kv-store.js';
import { readModelDirAt, resolveStartModel } from './model.js';
import { startNode } from './node.js';
import { createRealLauncher } from './real-launcher.js';

/** Parsed command line of the node process. */
export interface NodeArgs {
  readonly name: string;
  readonly nats: string;
  readonly cluster: string | undefined;
  readonly world: string;
  readonly models: string;
  readonly runDir: string;
  readonly config: string | undefined;
  readonly set: readonly string[];
}

/** Parses the node's flags; throws a TypeError naming a missing or unknown flag. */
export function parseNodeArgs(argv: readonly string[]): NodeArgs {
  const values = new Map<string, string>();
  const set: string[] = [];
  const known = ['name', 'nats', 'cluster', 'world', 'models', 'run-dir', 'config', 'set'];
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (!flag.startsWith('--') || !known.includes(flag.slice(2))) throw new TypeError(`unknown flag ${flag}`);
    if (value === undefined) throw new TypeError(`${flag} needs a value`);
    if (flag === '--set') set.push(value);
    else values.set(flag.slice(2), value);
  }
  const need = (k: string) => {
    const v = values.get(k);
    if (!v) throw new TypeError(`--${k} is required`);
    return v;
  };
  return {
    name: need('name'),
    nats: values.get('nats') ?? 'nats://127.0.0.1:4222',
    cluster: values.get('cluster'),
    world: need('world'),
    models: need('models'),
    runDir: values.get('run-dir') ?? 'run/local',
    config: values.get('config'),
    set,
  };
}

const log = (event: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...event })}\n`);

async function main(): Promise<number> {
  const args = parseNodeArgs(process.argv.slice(2));
  let input: UpnextConfigInput = args.config ? await readConfigFile(args.config) : {};
  if (args.cluster) input = applyOverrides(input, [`cluster.name=${args.cluster}`]);
  const config = resolveConfig(applyOverrides(input, args.set));
  const ownDir = path.resolve(args.models);
  const modelsRoot = path.dirname(ownDir);
  const own = await readModelDirAt(ownDir);
  if (path.basename(ownDir) !== own.manifest.version) {
    // Other nodes find a version's towers at <models root>/<version> (a user partition embedding for
    // this node's coordinator, a model switch): with another folder name they will not find these.
    log({ event: 'model_dir_name_mismatch', node: args.name, dir: ownDir, version: own.manifest.version, message: `--models folder ${path.basename(ownDir)} is not named after its manifest's version ${own.manifest.version}: other nodes will not find it under the models root` });
  }
  const nc = await connect({
    servers: args.nats,
    name: `upnext-${config.cluster.name}-${args.name}`,
    // Async stack capture costs ~15 µs of CPU per request/reply on the hot path (measured by make bench).
    noAsyncTraces: true,
    // With the config's `tls` set, the NATS server must speak TLS and accept the node's certificate.
    ...natsTlsOptions(config.tls),
    // With `nats.credsFile` set, the node signs in with that NKey (the `node` role when the launcher wrote it).
    ...natsAuthOptions(config.nats.credsFile),
  });
  let key: ModelKeyEntry | null = null;
  try {
    key = await (await ShardMapStore.open(nc, config.cluster.name)).readModelKey();
  } catch (err) {
    log({ event: 'model_key_invalid', node: args.name, message: toStatus(err).message });
  }
  const start = await resolveStartModel({
    own,
    modelsRoot,
    key: key === null ? null : { revision: key.revision, version: key.value.version },
    node: args.name,
    log,
  });
  const launcher = createRealLauncher({
    nc,
    config,
    node: args.name,
    worldDir: path.resolve(args.world),
    modelDir: start.served.dir,
    runDir: path.resolve(args.runDir),
    model: start.served.manifest,
    log,
  });
  const node = await startNode({
    name: args.name,
    nc,
    config,
    launcher,
    log,
    model: {
      modelsRoot,
      served: start.served,
      keyRevision: start.keyRevision,
      ...(start.refused !== undefined ? { refused: start.refused } : {}),
      apply: (next, kind, signal) => (kind === 'ranker' ? launcher.switchModel(next.dir, next.manifest, signal) : launcher.switchTowers(next.dir, next.manifest, next.space, signal)),
    },
  });

  let shuttingDown: Promise<number> | undefined;
  const shutdown = (signal: string) => {
    shuttingDown ??= (async () => {
      log({ event: 'draining', node: args.name, signal });
      let timer: NodeJS.Timeout | undefined;
      const overran = new Promise<number>((resolve) => {
        timer = setTimeout(() => resolve(1), config.node.drainTimeoutMs);
      });
      const drained = (async () => {
        await node.stop();
        await nc.drain().catch(() => {});
        return 0;
      })();
      const code = await Promise.race([drained, overran]);
      clearTimeout(timer);
      log({ event: 'stopped', node: args.name, clean: code === 0 });
      return code;
    })();
    return shuttingDown;
  };
  const exitAfter = (signal: string) => void shutdown(signal).then((code) => process.exit(code));
  process.once('SIGTERM', () => exitAfter('SIGTERM'));
  process.once('SIGINT', () => exitAfter('SIGINT'));

  try {
    const ready = await node.ready;
    process.stdout.write(`${JSON.stringify({ event: 'ready', ...ready, modelVersion: node.modelVersion(), pid: process.pid })}\n`);
  } catch (err) {
    const status = toStatus(err);
    log({ event: 'start_failed', node: args.name, code: status.code, message: status.message });
    await shutdown('start_failed');
    return 1;
  }
  // Keep running until a signal: the NATS connection and servers hold the event loop open.
  return new Promise<number>(() => {});
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      const status = toStatus(err);
      log({ event: 'fatal', code: status.code, message: status.message });
      process.exit(1);
    },
  );
}
