/**
 * `node dist/loadtest/cli.js <scenario> [--target host:port[,host:port…] | --start-cluster] [--duration s]
 *  [--out reports/loadtest] [--processes n] [--rate r] [--routing spread|user] [--pid name=pid ...] [--world name]
 *  [--nodes n] [--set key=value ...] [--videos n] [--users n] [--days n]   (with --start-cluster)
 *  [--tls-ca ca.pem --tls-cert client.pem --tls-key client.key [--tls-server-name name]]`
 *
 * The `--tls-*` flags dial a `--target` whose cluster sets `tls` (mutual TLS): the generator trusts
 * `--tls-ca` and presents the client certificate. Several `--target` addresses (a cluster's
 * coordinators) share the load evenly, as the callers' balancer would; a started cluster with
 * several coordinators (`--set cluster.coordinators=all`) is called the same way, or, with
 * `--routing user`, each user is sent to a coordinator hosting its partition (GetRouting).
 *
 * Runs a named scenario (loadtest/scenarios/<name>.json, or a path to a .json file) and writes
 * `<out>/<scenario>.json` and `.html`. See docs/loadtest.md.
 */
import path from 'node:path';
import { applyOverrides as applyConfigOverrides, resolveConfig } from '../cluster/config.js';
import type { UpnextConfigInput } from '../cluster/config.js';
import { TLS_FLAGS, resolveTlsSection } from '../cluster/tls.js';
import type { TlsSection } from '../cluster/tls.js';
import { REPO_ROOT } from './paths.js';
import { writeReport } from './report/html.js';
import { runScenario } from './runner/scenario-runner.js';
import { listScenarios, loadScenario, ScenarioConfigError } from './scenarios/config.js';
import type { Scenario } from './scenarios/config.js';
import type { LocalClusterTargetOptions, ProcessRef, Target } from './target.js';
import type { RoutingMode } from './client/recommender-client.js';
import { parseRoutingMode } from './client/recommender-client.js';
import { startLocalClusterTarget, staticTarget, targetAddresses } from './target.js';

/** Parsed command line. */
export interface CliArgs {
  readonly scenario: string;
  /** `--target`: one or more `host:port` (comma-separated on the command line). */
  readonly target: readonly string[] | undefined;
  readonly startCluster: boolean;
  readonly durationS: number | undefined;
  readonly out: string;
  readonly processes: number | undefined;
  readonly rate: number | undefined;
  /** `--routing`: overrides the scenario's `generator.routing`. */
  readonly routing: RoutingMode | undefined;
  readonly world: string | undefined;
  readonly pids: readonly ProcessRef[];
  /** From --tls-ca/--tls-cert/--tls-key/--tls-server-name, validated (files exist and parse); {} = plaintext. */
  readonly tls: TlsSection;
  /** Shape of a `--start-cluster` cluster: `--nodes`, `--set key=value` (cluster/config.ts knobs), world size. */
  readonly cluster: Pick<LocalClusterTargetOptions, 'nodes' | 'config' | 'world'>;
}

const USAGE = `usage: node dist/loadtest/cli.js <scenario> [--target host:port[,host:port...] | --start-cluster] [--duration s] [--out dir]
       [--processes n] [--rate r] [--routing spread|user] [--world name] [--pid name=pid ...]
       [--nodes n] [--set key=value ...] [--videos n] [--users n] [--days n]   (shape of a --start-cluster cluster)
       [--tls-ca ca.pem --tls-cert client.pem --tls-key client.key [--tls-server-name name]]
scenarios: ${listScenarios().join(', ')}`;

/** Parses argv (without node and script); throws TypeError naming the bad flag. */
export function parseArgs(argv: readonly string[]): CliArgs {
  let scenario: string | undefined;
  let target: string[] | undefined;
  let nodes: number | undefined;
  const set: string[] = [];
  const world: { videos?: number; users?: number; days?: number } = {};
  let startCluster = false;
  let durationS: number | undefined;
  let out = path.join(REPO_ROOT, 'reports', 'loadtest');
  let processes: number | undefined;
  let rate: number | undefined;
  let routing: RoutingMode | undefined;
  let worldName: string | undefined;
  const pids: ProcessRef[] = [];
  const tlsInput: Record<string, string | undefined> = {};
  const num = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) throw new TypeError(`${flag} needs a number > 0, got ${v}`);
    return n;
  };
  const int = (flag: string, v: string | undefined) => {
    const n = num(flag, v);
    if (!Number.isInteger(n)) throw new TypeError(`${flag} needs an integer > 0, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    switch (a) {
      case '--target': {
        const v = next() ?? '';
        target = v.split(',');
        const bad = target.find((t) => !/^[^:]+:\d+$/.test(t.replace(/^\[.*\]/, 'h')));
        if (v === '' || bad !== undefined) throw new TypeError(`--target needs host:port[,host:port...], got ${v}`);
        break;
      }
      case '--nodes': nodes = int(a, next()); break;
      case '--set': set.push(next() ?? ''); break; // checked below by applyConfigOverrides + resolveConfig
      case '--videos': world.videos = int(a, next()); break;
      case '--users': world.users = int(a, next()); break;
      case '--days': world.days = int(a, next()); break;
      case '--start-cluster': startCluster = true; break;
      case '--duration': durationS = num(a, next()); break;
      case '--out': out = path.resolve(next() ?? out); break;
      case '--processes': processes = num(a, next()); break;
      case '--rate': rate = num(a, next()); break;
      case '--routing': routing = parseRoutingMode(next(), '--routing'); break;
      case '--world': worldName = next(); break;
      case '--tls-ca': tlsInput.caFile = next(); break;
      case '--tls-cert': tlsInput.certFile = next(); break;
      case '--tls-key': tlsInput.keyFile = next(); break;
      case '--tls-server-name': tlsInput.serverName = next(); break;
      case '--pid': {
        const v = next() ?? '';
        const m = /^([^=]+)=(\d+)$/.exec(v);
        if (!m) throw new TypeError(`--pid needs name=pid, got ${v}`);
        pids.push({ name: m[1]!, pid: Number(m[2]) });
        break;
      }
      default:
        if (a.startsWith('--')) throw new TypeError(`unknown flag ${a}`);
        if (scenario !== undefined) throw new TypeError(`one scenario at a time, got ${scenario} and ${a}`);
        scenario = a;
    }
  }
  if (scenario === undefined) throw new TypeError('a scenario name is required');
  if (target !== undefined && startCluster) throw new TypeError('--target and --start-cluster exclude each other');
  const tls = resolveTlsSection(tlsInput, (f) => TLS_FLAGS[f]);
  if (tls.certFile !== undefined && target === undefined) throw new TypeError('--tls-* flags need --target (a --start-cluster cluster runs plaintext)');
  if (target !== undefined && (nodes !== undefined || set.length > 0 || Object.keys(world).length > 0)) {
    throw new TypeError('--nodes, --set, --videos, --users and --days shape a --start-cluster cluster, not a --target');
  }
  let config: UpnextConfigInput | undefined;
  if (set.length > 0) {
    config = applyConfigOverrides({}, set);
    resolveConfig(config); // an unknown key or a bad value is a usage error now, not after the world is built
  }
  return { scenario, target, startCluster, durationS, out, processes, rate, routing, world: worldName, pids, tls, cluster: { ...(nodes !== undefined ? { nodes } : {}), ...(config !== undefined ? { config } : {}), world } };
}

/** Applies --processes, --rate, --routing and --world to a scenario. */
export function applyOverrides(sc: Scenario, args: CliArgs): Scenario {
  let load = sc.load;
  if (args.rate !== undefined && 'rate' in load) load = { ...load, rate: args.rate };
  return {
    ...sc,
    load,
    world: args.world ?? sc.world,
    generator: { ...sc.generator, processes: args.processes ?? sc.generator.processes, routing: args.routing ?? sc.generator.routing },
  };
}

async function main(argv: readonly string[]): Promise<number> {
  let args: CliArgs;
  let scenario: Scenario;
  try {
    args = parseArgs(argv);
    scenario = applyOverrides(loadScenario(args.scenario), args);
  } catch (err) {
    if (err instanceof TypeError || err instanceof ScenarioConfigError) {
      process.stderr.write(`${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const target: Target = args.target
    ? staticTarget(args.target, args.pids, args.tls.certFile !== undefined ? args.tls : undefined)
    : await startLocalClusterTarget({ log, ...args.cluster });
  try {
    log(`scenario ${scenario.name} (${scenario.load.kind}) against ${targetAddresses(target).join(', ')}`);
    const report = await runScenario({ scenario, target, ...(args.durationS !== undefined ? { durationS: args.durationS } : {}), log });
    const files = await writeReport(report, args.out);
    for (const w of report.warnings) log(`warning: ${w}`);
    log(`report: ${files.html}\n        ${files.json}`);
    return 0;
  } finally {
    await target.stop?.();
  }
}

// Run only as a program, not when imported by tests.
if (process.argv[1] && import.meta.url === new URL(`file://${path.resolve(process.argv[1])}`).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
