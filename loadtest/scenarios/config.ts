/**
 * Scenario files (`loadtest/scenarios/<name>.json`): defaults, then validation, then a resolved
 * type. Every rule throws {@link ScenarioConfigError} naming the bad field by its path (e.g.
 * `load.rate`), and unknown keys are rejected so a typo does not silently fall back to a default.
 * The file format is documented in docs/loadtest.md.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { RequestMixSpec } from '../generator/request-mix.js';
import { DEFAULT_MIX } from '../generator/request-mix.js';
import type { RoutingMode } from '../client/recommender-client.js';
import { isRoutingMode } from '../client/recommender-client.js';
import { SCENARIO_DIR } from '../paths.js';

/** A bad scenario field; `field` is its dotted path. */
export class ScenarioConfigError extends TypeError {
  readonly field: string;
  constructor(field: string, why: string) {
    super(`${field}: ${why}`);
    this.name = 'ScenarioConfigError';
    this.field = field;
  }
}

export const SCENARIO_KINDS = ['steady', 'ramp', 'flash-crowd', 'overload', 'node-loss', 'shard-move'] as const;
export type ScenarioKind = (typeof SCENARIO_KINDS)[number];

/** The service-level objective a phase is judged against. */
export interface Slo {
  /** P99 latency bound from intended send time, ms. Default 50. */
  readonly p99Ms: number;
  /** Highest error rate (errors / completed), 0..1. Default 0.001 (0.1%). */
  readonly maxErrorRate: number;
}

/** Generator settings. */
export interface GeneratorSettings {
  /** Generator processes (child_process.fork); 1 runs in the CLI process. Default 1. */
  readonly processes: number;
  /** gRPC connections per process. Default 4. */
  readonly channels: number;
  /** Outstanding requests (all processes) beyond which arrivals are dropped. Default 2000. */
  readonly maxInFlight: number;
  /** Per-call deadline, ms. Default 1000. */
  readonly deadlineMs: number;
  /** RNG seed. Default 1. */
  readonly seed: number;
  /**
   * How Recommend calls pick a coordinator: "spread" (round-robin, default) or "user" (read the
   * cluster's routing table and send each user to a coordinator hosting the user's partition:
   * loadtest/client/recommender-client.ts). "user" is what a routing-aware caller would do.
   */
  readonly routing: RoutingMode;
}

/** Numeric id range used when the world file is absent. */
export interface IdRange {
  readonly rangeStart: number;
  readonly count: number;
}

/** Memory figures for the capacity model: given directly, or as RSS at two corpus sizes. */
export interface MemoryInputs {
  /** Bytes per million items; or derived from `itemSizes`. */
  readonly bytesPerMillionItems?: number;
  readonly bytesPerMillionUsers?: number;
  /** Two (or more) measurements of node RSS at different item counts. */
  readonly itemSizes?: ReadonlyArray<{ readonly count: number; readonly rssBytes: number }>;
  readonly userSizes?: ReadonlyArray<{ readonly count: number; readonly rssBytes: number }>;
  /** RSS of a node with an empty corpus (runtime, models), bytes. Default 300 MiB. */
  readonly baseBytesPerNode: number;
}

/** Capacity-model inputs (see report/capacity.ts). */
export interface CapacitySettings {
  /** Peak QPS to plan for. Default 50,000. */
  readonly targetQps: number;
  /** Share of capacity kept free, 0..0.9. Default 0.3. */
  readonly headroom: number;
  /** Cores of one production node. Default 16. */
  readonly coresPerNode: number;
  /** Memory of one production node, GiB. Default 64. */
  readonly memoryPerNodeGiB: number;
  /** Items to plan for. Default 10,000,000. */
  readonly items: number;
  /** Users to plan for. Default 100,000,000. */
  readonly users: number;
  /** Copies of each user partition. Default 2. */
  readonly userReplicas: number;
  /**
   * Share of a core a node process's busiest thread may use while the process still holds the SLO,
   * 0.1..1. Default 0.6: on a 16-core Xeon (docs/capacity.md, "A 16-core machine") one process and
   * five processes each met p99 ≤ 50 ms with that thread at 50–52% of a core and missed at 73–74%.
   */
  readonly busiestThreadMaxUtilisation: number;
  readonly memory: MemoryInputs;
}

export type LoadSettings =
  | { readonly kind: 'steady'; readonly rate: number; readonly durationS: number }
  | {
      readonly kind: 'ramp'; readonly startRate: number; readonly stepRate: number; readonly maxRate: number; readonly stepDurationS: number; readonly stopAfterBreaches: number;
      /** Seconds at startRate before the first step, not reported (caches, JIT, thread wake-ups); 0 = none. */
      readonly warmUpS: number;
    }
  | {
      readonly kind: 'flash-crowd'; readonly rate: number; readonly durationS: number; readonly spikeAtS: number; readonly spikeDurationS: number;
      readonly multiplier: number; readonly hotUsers: number; readonly hotItems: number;
    }
  | {
      readonly kind: 'overload'; readonly capacityQps: number | undefined; readonly multipliers: readonly number[]; readonly stepDurationS: number;
      readonly ramp: { readonly startRate: number; readonly stepRate: number; readonly maxRate: number; readonly stepDurationS: number };
    }
  | { readonly kind: 'node-loss'; readonly rate: number; readonly durationS: number; readonly killAtS: number; readonly restartAtS: number; readonly node: string | undefined }
  | {
      readonly kind: 'shard-move'; readonly rate: number; readonly durationS: number; readonly moveAtS: number;
      /** What moves: a user partition ('user', default) or an item shard ('item'). */
      readonly move: 'user' | 'item';
      /** Its index. */
      readonly index: number;
      /** Destination node; default: the first node that does not host it. */
      readonly to: string | undefined;
    };

/** A validated scenario. */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly slo: Slo;
  readonly generator: GeneratorSettings;
  /** World name under data/worlds/; ids fall back to `users` / `videos` ranges without it. */
  readonly world: string | undefined;
  readonly users: IdRange;
  readonly videos: IdRange;
  readonly mix: RequestMixSpec;
  /** Concurrent LogEvents stream, batches/s and events/batch; undefined = none. */
  readonly events: { readonly rate: number; readonly batchSize: number } | undefined;
  readonly load: LoadSettings;
  readonly capacity: CapacitySettings;
}

type Json = Record<string, unknown>;

/** Reads typed fields of one JSON object, naming each by its path. */
class Fields {
  readonly #obj: Json;
  readonly #path: string;
  readonly #seen = new Set<string>();

  constructor(value: unknown, path: string) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ScenarioConfigError(path || '(root)', `must be an object, got ${JSON.stringify(value)}`);
    this.#obj = value as Json;
    this.#path = path;
  }

  at(key: string): string {
    return this.#path ? `${this.#path}.${key}` : key;
  }

  has(key: string): boolean {
    return this.#obj[key] !== undefined;
  }

  raw(key: string): unknown {
    this.#seen.add(key);
    return this.#obj[key];
  }

  num(key: string, def: number | undefined, rule: { min?: number; max?: number; int?: boolean; gt?: number } = {}): number {
    const v = this.raw(key);
    if (v === undefined) {
      if (def === undefined) throw new ScenarioConfigError(this.at(key), 'is required');
      return def;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ScenarioConfigError(this.at(key), `must be a number, got ${JSON.stringify(v)}`);
    if (rule.int && !Number.isInteger(v)) throw new ScenarioConfigError(this.at(key), `must be an integer, got ${v}`);
    if (rule.min !== undefined && v < rule.min) throw new ScenarioConfigError(this.at(key), `must be >= ${rule.min}, got ${v}`);
    if (rule.gt !== undefined && v <= rule.gt) throw new ScenarioConfigError(this.at(key), `must be > ${rule.gt}, got ${v}`);
    if (rule.max !== undefined && v > rule.max) throw new ScenarioConfigError(this.at(key), `must be <= ${rule.max}, got ${v}`);
    return v;
  }

  optNum(key: string, rule: { min?: number; max?: number; int?: boolean; gt?: number } = {}): number | undefined {
    return this.has(key) ? this.num(key, undefined, rule) : (this.raw(key), undefined);
  }

  str(key: string, def: string | undefined): string {
    const v = this.raw(key);
    if (v === undefined) {
      if (def === undefined) throw new ScenarioConfigError(this.at(key), 'is required');
      return def;
    }
    if (typeof v !== 'string') throw new ScenarioConfigError(this.at(key), `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined) return def;
    if (typeof v !== 'boolean') throw new ScenarioConfigError(this.at(key), `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  optStr(key: string): string | undefined {
    return this.has(key) ? this.str(key, undefined) : (this.raw(key), undefined);
  }

  /** An object of non-negative weights with at least one positive. */
  weights(key: string, def: Readonly<Record<string, number>>, keyRule?: (k: string) => string | undefined): Record<string, number> {
    const v = this.raw(key);
    if (v === undefined) return { ...def };
    const f = new Fields(v, this.at(key));
    const out: Record<string, number> = {};
    for (const k of Object.keys(v as Json)) {
      const bad = keyRule?.(k);
      if (bad) throw new ScenarioConfigError(f.at(k), bad);
      out[k] = f.num(k, undefined, { min: 0 });
    }
    if (!Object.values(out).some((w) => w > 0)) throw new ScenarioConfigError(this.at(key), 'needs at least one positive weight');
    return out;
  }

  obj(key: string): Fields | undefined {
    const v = this.raw(key);
    return v === undefined ? undefined : new Fields(v, this.at(key));
  }

  /** Rejects keys nobody read (typos). */
  done(): void {
    for (const k of Object.keys(this.#obj)) if (!this.#seen.has(k)) throw new ScenarioConfigError(this.at(k), 'is not a known field');
  }
}

const empty = (path: string) => new Fields({}, path);

function parseMix(f: Fields | undefined): RequestMixSpec {
  const m = f ?? empty('mix');
  const out: RequestMixSpec = {
    userZipfExponent: m.num('userZipfExponent', DEFAULT_MIX.userZipfExponent, { min: 0, max: 5 }),
    videoZipfExponent: m.num('videoZipfExponent', DEFAULT_MIX.videoZipfExponent, { min: 0, max: 5 }),
    newUserShare: m.num('newUserShare', DEFAULT_MIX.newUserShare, { min: 0, max: 1 }),
    k: m.weights('k', DEFAULT_MIX.k, (k) => {
      const n = Number(k);
      return Number.isInteger(n) && n >= 1 && n <= 1000 ? undefined : `k must be an integer in 1..1000, got "${k}"`;
    }),
    surfaces: m.weights('surfaces', DEFAULT_MIX.surfaces, (k) => (k.length <= 64 ? undefined : 'surface names are at most 64 characters')),
    devices: m.weights('devices', DEFAULT_MIX.devices),
    countries: (() => {
      const v = m.raw('countries');
      if (v === undefined) return DEFAULT_MIX.countries;
      if (!Array.isArray(v) || v.some((c) => typeof c !== 'string' || !/^[A-Z]{2}$/.test(c))) {
        throw new ScenarioConfigError(m.at('countries'), `must be a list of ISO 3166 alpha-2 codes, got ${JSON.stringify(v)}`);
      }
      return v as string[];
    })(),
    context: (() => {
      const v = m.str('context', DEFAULT_MIX.context);
      if (v !== 'user' && v !== 'mix') throw new ScenarioConfigError(m.at('context'), `must be "user" or "mix", got ${JSON.stringify(v)}`);
      return v;
    })(),
    eventTypes: m.weights('eventTypes', DEFAULT_MIX.eventTypes, (k) => (['IMPRESSION', 'CLICK', 'WATCH', 'LIKE', 'SKIP'].includes(k) ? undefined : `unknown event type "${k}"`)),
    stageTimings: m.bool('stageTimings', DEFAULT_MIX.stageTimings),
  };
  m.done();
  return out;
}

function parseRange(f: Fields | undefined, path: string, defCount: number): IdRange {
  const r = f ?? empty(path);
  const out = { rangeStart: r.num('rangeStart', 0, { min: 0, int: true }), count: r.num('count', defCount, { min: 1, int: true }) };
  r.done();
  return out;
}

function parseSizes(f: Fields, key: string): Array<{ count: number; rssBytes: number }> | undefined {
  const v = f.raw(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length < 2) throw new ScenarioConfigError(f.at(key), 'must list at least two {count, rssBytes} measurements');
  return v.map((item, i) => {
    const e = new Fields(item, `${f.at(key)}[${i}]`);
    const out = { count: e.num('count', undefined, { min: 0 }), rssBytes: e.num('rssBytes', undefined, { gt: 0 }) };
    e.done();
    return out;
  });
}

function parseCapacity(f: Fields | undefined): CapacitySettings {
  const c = f ?? empty('capacity');
  const m = c.obj('memory') ?? empty('capacity.memory');
  const memory: MemoryInputs = {
    baseBytesPerNode: m.num('baseBytesPerNode', 300 * 2 ** 20, { min: 0 }),
    ...(m.has('bytesPerMillionItems') ? { bytesPerMillionItems: m.num('bytesPerMillionItems', undefined, { gt: 0 }) } : (m.raw('bytesPerMillionItems'), {})),
    ...(m.has('bytesPerMillionUsers') ? { bytesPerMillionUsers: m.num('bytesPerMillionUsers', undefined, { gt: 0 }) } : (m.raw('bytesPerMillionUsers'), {})),
    ...((s) => (s ? { itemSizes: s } : {}))(parseSizes(m, 'itemSizes')),
    ...((s) => (s ? { userSizes: s } : {}))(parseSizes(m, 'userSizes')),
  };
  m.done();
  const out: CapacitySettings = {
    targetQps: c.num('targetQps', 50_000, { gt: 0 }),
    headroom: c.num('headroom', 0.3, { min: 0, max: 0.9 }),
    coresPerNode: c.num('coresPerNode', 16, { gt: 0 }),
    memoryPerNodeGiB: c.num('memoryPerNodeGiB', 64, { gt: 0 }),
    items: c.num('items', 10_000_000, { min: 0 }),
    users: c.num('users', 100_000_000, { min: 0 }),
    userReplicas: c.num('userReplicas', 2, { min: 1, int: true }),
    busiestThreadMaxUtilisation: c.num('busiestThreadMaxUtilisation', 0.6, { min: 0.1, max: 1 }),
    memory,
  };
  c.done();
  return out;
}

function parseLoad(f: Fields | undefined, kind: ScenarioKind): LoadSettings {
  if (!f) throw new ScenarioConfigError('load', 'is required');
  const rate = () => f.num('rate', undefined, { gt: 0 });
  const duration = () => f.num('durationS', undefined, { gt: 0 });
  let out: LoadSettings;
  switch (kind) {
    case 'steady':
      out = { kind, rate: rate(), durationS: duration() };
      break;
    case 'ramp': {
      const startRate = f.num('startRate', undefined, { gt: 0 });
      const stepRate = f.num('stepRate', undefined, { gt: 0 });
      const maxRate = f.num('maxRate', undefined, { gt: 0 });
      if (maxRate < startRate) throw new ScenarioConfigError(f.at('maxRate'), `must be >= startRate (${startRate}), got ${maxRate}`);
      out = {
        kind, startRate, stepRate, maxRate, stepDurationS: f.num('stepDurationS', undefined, { gt: 0 }), stopAfterBreaches: f.num('stopAfterBreaches', 2, { min: 1, int: true }),
        warmUpS: f.num('warmUpS', 0, { min: 0 }),
      };
      break;
    }
    case 'flash-crowd': {
      const durationS = duration();
      const spikeAtS = f.num('spikeAtS', undefined, { min: 0 });
      const spikeDurationS = f.num('spikeDurationS', undefined, { gt: 0 });
      if (spikeAtS + spikeDurationS > durationS) throw new ScenarioConfigError(f.at('spikeDurationS'), `spike must end by durationS (${durationS}), ends at ${spikeAtS + spikeDurationS}`);
      out = {
        kind, rate: rate(), durationS, spikeAtS, spikeDurationS, multiplier: f.num('multiplier', 3, { gt: 1 }),
        hotUsers: f.num('hotUsers', 20, { min: 1, int: true }), hotItems: f.num('hotItems', 10, { min: 1, int: true }),
      };
      break;
    }
    case 'overload': {
      const ramp = f.obj('ramp') ?? empty(f.at('ramp'));
      const r = {
        startRate: ramp.num('startRate', 100, { gt: 0 }), stepRate: ramp.num('stepRate', 100, { gt: 0 }),
        maxRate: ramp.num('maxRate', 5000, { gt: 0 }), stepDurationS: ramp.num('stepDurationS', 10, { gt: 0 }),
      };
      ramp.done();
      const mult = f.raw('multipliers') ?? [1, 2, 5];
      if (!Array.isArray(mult) || mult.length === 0 || mult.some((x) => typeof x !== 'number' || !(x > 0))) {
        throw new ScenarioConfigError(f.at('multipliers'), `must be a non-empty list of numbers > 0, got ${JSON.stringify(mult)}`);
      }
      out = { kind, capacityQps: f.optNum('capacityQps', { gt: 0 }), multipliers: mult as number[], stepDurationS: f.num('stepDurationS', undefined, { gt: 0 }), ramp: r };
      break;
    }
    case 'node-loss': {
      const durationS = duration();
      const killAtS = f.num('killAtS', undefined, { min: 0 });
      const restartAtS = f.num('restartAtS', undefined, { min: 0 });
      if (killAtS >= durationS) throw new ScenarioConfigError(f.at('killAtS'), `must be < durationS (${durationS}), got ${killAtS}`);
      if (restartAtS <= killAtS) throw new ScenarioConfigError(f.at('restartAtS'), `must be > killAtS (${killAtS}), got ${restartAtS}`);
      out = { kind, rate: rate(), durationS, killAtS, restartAtS, node: f.optStr('node') };
      break;
    }
    case 'shard-move': {
      const durationS = duration();
      const moveAtS = f.num('moveAtS', undefined, { min: 0 });
      if (moveAtS >= durationS) throw new ScenarioConfigError(f.at('moveAtS'), `must be < durationS (${durationS}), got ${moveAtS}`);
      const move = f.str('move', 'user');
      if (move !== 'user' && move !== 'item') throw new ScenarioConfigError(f.at('move'), `must be "user" or "item", got ${JSON.stringify(move)}`);
      out = { kind, rate: rate(), durationS, moveAtS, move, index: f.num('index', 0, { min: 0, int: true }), to: f.optStr('to') };
      break;
    }
    default: {
      const never: never = kind;
      throw new ScenarioConfigError('kind', `unknown kind ${String(never)}`);
    }
  }
  f.done();
  return out;
}

function routingMode(value: string, at: string): RoutingMode {
  if (!isRoutingMode(value)) throw new ScenarioConfigError(at, `must be "spread" or "user", got ${JSON.stringify(value)}`);
  return value;
}

/** Validates a parsed JSON scenario; throws {@link ScenarioConfigError} naming the bad field. */
export function parseScenario(json: unknown): Scenario {
  const root = new Fields(json, '');
  const kind = root.str('kind', undefined);
  if (!(SCENARIO_KINDS as readonly string[]).includes(kind)) throw new ScenarioConfigError('kind', `must be one of ${SCENARIO_KINDS.join(', ')}, got "${kind}"`);
  const slo = root.obj('slo') ?? empty('slo');
  const gen = root.obj('generator') ?? empty('generator');
  const events = root.obj('events');
  const scenario: Scenario = {
    name: root.str('name', kind),
    description: root.str('description', ''),
    slo: { p99Ms: slo.num('p99Ms', 50, { gt: 0 }), maxErrorRate: slo.num('maxErrorRate', 0.001, { min: 0, max: 1 }) },
    generator: {
      processes: gen.num('processes', 1, { min: 1, max: 64, int: true }),
      channels: gen.num('channels', 4, { min: 1, max: 256, int: true }),
      maxInFlight: gen.num('maxInFlight', 2000, { min: 1, int: true }),
      deadlineMs: gen.num('deadlineMs', 1000, { gt: 0 }),
      seed: gen.num('seed', 1, { min: 0, int: true }),
      routing: routingMode(gen.str('routing', 'spread'), gen.at('routing')),
    },
    world: root.optStr('world'),
    users: parseRange(root.obj('users'), 'users', 100_000),
    videos: parseRange(root.obj('videos'), 'videos', 100_000),
    mix: parseMix(root.obj('mix')),
    events: events ? { rate: events.num('rate', undefined, { min: 0 }), batchSize: events.num('batchSize', 10, { min: 1, max: 1000, int: true }) } : undefined,
    load: parseLoad(root.obj('load'), kind as ScenarioKind),
    capacity: parseCapacity(root.obj('capacity')),
  };
  slo.done();
  gen.done();
  events?.done();
  root.done();
  return scenario;
}

/** Loads `<dir>/<name>.json` (default dir: loadtest/scenarios/), or a path ending in .json. */
export function loadScenario(nameOrPath: string, dir = SCENARIO_DIR): Scenario {
  const file = nameOrPath.endsWith('.json') ? nameOrPath : path.join(dir, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ScenarioConfigError('scenario', `no scenario file ${file}; known: ${listScenarios(dir).join(', ')}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScenarioConfigError('scenario', `${file} is not valid JSON: ${(err as Error).message}`);
  }
  return parseScenario(json);
}

/** Scenario names available in `dir`. */
export function listScenarios(dir = SCENARIO_DIR): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}
