import t from 'tap';
import { listScenarios, loadScenario, parseScenario, SCENARIO_KINDS, ScenarioConfigError } from '../../loadtest/scenarios/config.js';
import { applyOverrides, parseArgs } from '../../loadtest/cli.js';

const bad = (json: unknown, field: RegExp) => {
  try {
    parseScenario(json);
  } catch (err) {
    return err instanceof ScenarioConfigError && field.test(err.field) ? err.message : `wrong error: ${String(err)}`;
  }
  return 'did not throw';
};

t.test('every shipped scenario file loads', async (t) => {
  const names = listScenarios();
  for (const n of ['steady', 'ramp', 'flash-crowd', 'overload', 'node-loss', 'shard-move']) t.ok(names.includes(n), `${n}.json exists`);
  // One file per kind, named after it; named variants of a kind (machine: a ramp) name themselves.
  for (const k of SCENARIO_KINDS) t.equal(loadScenario(k).load.kind, k, `${k} parses, kind matches its name`);
  for (const n of names) t.equal(loadScenario(n).name, n, `${n} parses, its name matches its file`);
  t.equal(loadScenario('machine').load.kind, 'ramp', 'machine is a ramp');
  t.equal(loadScenario('machine').generator.processes, 4, 'machine: several generator processes');
  const ramp = loadScenario('ramp');
  t.equal(ramp.slo.p99Ms, 50);
  t.equal(ramp.capacity.headroom, 0.3);
  t.equal(ramp.load.kind === 'ramp' && ramp.load.warmUpS, 10, 'ramp.json warms up before its first step');
});

t.test('validation names the bad field', async (t) => {
  const steady = { kind: 'steady', load: { rate: 100, durationS: 10 } };
  t.match(bad({ ...steady, kind: 'soak' }, /^kind$/), /kind: must be one of/);
  t.match(bad({ kind: 'steady', load: { rate: -1, durationS: 10 } }, /^load\.rate$/), /load\.rate: must be > 0/);
  t.match(bad({ kind: 'steady', load: { durationS: 10 } }, /^load\.rate$/), /is required/);
  t.match(bad({ ...steady, slo: { p99Ms: 'fast' } }, /^slo\.p99Ms$/), /must be a number/);
  t.match(bad({ ...steady, generator: { channels: 1.5 } }, /^generator\.channels$/), /integer/);
  t.match(bad({ ...steady, generator: { routing: 'nearest' } }, /^generator\.routing$/), /must be "spread" or "user", got "nearest"/);
  t.match(bad({ ...steady, mix: { k: { '0': 1 } } }, /^mix\.k\.0$/), /1\.\.1000/);
  t.match(bad({ ...steady, mix: { newUserShare: 2 } }, /^mix\.newUserShare$/), /<= 1/);
  t.match(bad({ ...steady, mix: { countries: ['usa'] } }, /^mix\.countries$/), /alpha-2/);
  t.match(bad({ ...steady, load: { rate: 1, durationS: 1, extra: 1 } }, /^load\.extra$/), /not a known field/);
  t.match(bad({ ...steady, gnerator: {} }, /^gnerator$/), /not a known field/);
  t.match(bad({ kind: 'node-loss', load: { rate: 1, durationS: 60, killAtS: 30, restartAtS: 20 } }, /^load\.restartAtS$/), /> killAtS/);
  t.match(bad({ kind: 'flash-crowd', load: { rate: 1, durationS: 30, spikeAtS: 20, spikeDurationS: 20 } }, /^load\.spikeDurationS$/), /must end by/);
  t.match(bad({ kind: 'ramp', load: { startRate: 100, stepRate: 10, maxRate: 50, stepDurationS: 5 } }, /^load\.maxRate$/), />= startRate/);
  t.match(bad({ kind: 'ramp', load: { startRate: 10, stepRate: 10, maxRate: 50, stepDurationS: 5, warmUpS: -1 } }, /^load\.warmUpS$/), />= 0|must be/);
  t.match(bad({ kind: 'overload', load: { stepDurationS: 5, multipliers: [] } }, /^load\.multipliers$/), /non-empty/);
  t.match(bad({ ...steady, capacity: { memory: { itemSizes: [{ count: 1, rssBytes: 1 }] } } }, /^capacity\.memory\.itemSizes$/), /at least two/);
  t.match(bad({ ...steady, capacity: { headroom: 0.95 } }, /^capacity\.headroom$/), /<= 0\.9/);
});

t.test('defaults are applied and documented values come back', async (t) => {
  const s = parseScenario({ kind: 'steady', load: { rate: 100, durationS: 10 } });
  t.equal(s.name, 'steady');
  t.equal(s.generator.processes, 1);
  t.equal(s.generator.channels, 4);
  t.equal(s.generator.routing, 'spread');
  t.equal(s.slo.maxErrorRate, 0.001);
  t.equal(s.capacity.targetQps, 50_000);
  t.same(s.mix.k, { '20': 1 });
  t.equal(s.events, undefined);
});

t.test('CLI flags parse and override the scenario', async (t) => {
  const a = parseArgs(['steady', '--target', '127.0.0.1:5000', '--duration', '5', '--rate', '300', '--processes', '2', '--pid', 'node-1=123']);
  t.same(a.target, ['127.0.0.1:5000']);
  t.same(a.pids, [{ name: 'node-1', pid: 123 }]);
  const s = applyOverrides(loadScenario('steady'), a);
  t.equal(s.generator.processes, 2);
  t.equal(s.load.kind === 'steady' && s.load.rate, 300);
  t.equal(s.generator.routing, 'spread', 'routing: the scenario\'s default');
  t.equal(applyOverrides(loadScenario('steady'), parseArgs(['steady', '--target', 'a:1', '--routing', 'user'])).generator.routing, 'user', '--routing overrides it');
  t.throws(() => parseArgs(['steady', '--routing', 'nearest']), /--routing must be "spread" or "user", got "nearest"/);
  t.throws(() => parseArgs(['steady', '--duration', 'x']), /--duration/);
  t.throws(() => parseArgs(['steady', '--target', 'a:1', '--start-cluster']), /exclude/);
  t.throws(() => parseArgs(['--bogus']), /unknown flag --bogus/);
  // Several coordinators: the load is spread over them.
  t.same(parseArgs(['steady', '--target', 'a:1,b:2']).target, ['a:1', 'b:2']);
  t.throws(() => parseArgs(['steady', '--target', 'a:1,b']), /--target needs host:port/);
  // The shape of a started cluster: knobs checked before anything starts.
  const c = parseArgs(['ramp', '--start-cluster', '--nodes', '5', '--set', 'cluster.coordinators=all', '--videos', '2000', '--users', '500', '--days', '3']);
  t.equal(c.cluster.nodes, 5);
  t.same(c.cluster.config, { cluster: { coordinators: 'all' } });
  t.same(c.cluster.world, { videos: 2000, users: 500, days: 3 });
  t.throws(() => parseArgs(['ramp', '--start-cluster', '--set', 'cluster.coordinatorz=all']), /cluster\.coordinatorz/);
  t.throws(() => parseArgs(['ramp', '--start-cluster', '--nodes', '2.5']), /--nodes needs an integer/);
  t.throws(() => parseArgs(['ramp', '--target', 'a:1', '--nodes', '2']), /--start-cluster/);
});
