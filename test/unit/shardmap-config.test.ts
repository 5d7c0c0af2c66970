// Tests of cluster/config.ts (named shardmap-config so it sits with the cluster helper's unit tests).
import t from 'tap';
import { applyOverrides, describeConfig, flattenConfig, itemReplicasCount, resolveConfig } from '../../cluster/config.js';

t.test('defaults resolve: S=2, P=16, R=1, item shards on every node, 3 nodes, coordinator on 50051', async (t) => {
  const c = resolveConfig();
  t.same(
    { ...c.cluster },
    { name: 'local', nodes: 3, itemShards: 2, userPartitions: 16, replicas: 1, itemReplicas: 'all', rankers: 'all', coordinators: 'n1' },
  );
  t.equal(c.coordinator.port, 50051);
  t.equal(c.coordinator.localRanker, 'prefer');
  t.equal(c.coordinator.localShards, 'prefer');
  t.equal(c.coordinator.budgets.rankingMs, 40, 'coordinator defaults come from its own folder');
  t.equal(c.ranker.batching.maxBatchRows, 1024, 'ranker defaults come from its own folder');
  t.equal(c.node.metricsPort, 0);
  t.ok(Object.isFrozen(c.cluster));
});

t.test('overrides merge over defaults without dropping siblings', async (t) => {
  const c = resolveConfig({ coordinator: { budgets: { rankingMs: 25 } }, cluster: { itemShards: 4 } });
  t.equal(c.coordinator.budgets.rankingMs, 25);
  t.equal(c.coordinator.budgets.retrievalMs, 30);
  t.equal(c.cluster.itemShards, 4);
  t.equal(c.cluster.userPartitions, 16);
});

t.test('every rule names the bad option', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ cluster: { itemShards: 0 } }, /^config cluster\.itemShards must be an integer in 1\.\./],
    [{ cluster: { userPartitions: 2.5 } }, /^config cluster\.userPartitions/],
    [{ cluster: { replicas: 4 } }, /^config cluster\.replicas must be an integer in 1\.\.3/],
    [{ cluster: { itemReplicas: 4 } }, /^config cluster\.itemReplicas must be "all" or an integer in 1\.\.3, got 4/],
    [{ cluster: { itemReplicas: 0 } }, /^config cluster\.itemReplicas/],
    [{ cluster: { itemReplicas: 'every' } }, /^config cluster\.itemReplicas/],
    [{ cluster: { nodes: 2, itemReplicas: 3 } }, /^config cluster\.itemReplicas must be "all" or an integer in 1\.\.2/],
    [{ cluster: { name: 'a.b' } }, /^config cluster\.name/],
    [{ cluster: { nodes: 0 } }, /^config cluster\.nodes/],
    [{ cluster: { rankers: 'n1,,n2' } }, /^config cluster\.rankers/],
    [{ cluster: { coordinators: '' } }, /^config cluster\.coordinators/],
    [{ cluster: { itemShard: 2 } }, /^config cluster\.itemShard is not a known option/],
    [{ node: { metricsPort: 70000 } }, /^config node\.metricsPort/],
    [{ node: { popularOn: 'some' } }, /^config node\.popularOn must be one of coordinators\|all/],
    [{ node: { drainTimeoutMs: -1 } }, /^config node\.drainTimeoutMs/],
    [{ node: { host: '' } }, /^config node\.host/],
    [{ coordinator: { port: -1 } }, /^config coordinator\.port/],
    [{ coordinator: { localShards: 'always' } }, /^config coordinator\.localShards must be one of prefer\|off/],
    [{ coordinator: { budgets: { rankingMs: 0 } } }, /^config coordinator\.budgets\.rankingMs/],
    [{ coordinator: { exploration: { epsilon: 2 } } }, /^config coordinator\.exploration\.epsilon/],
    [{ ranker: { workers: 0 } }, /^config ranker\.workers/],
    [{ ranker: { executionProvider: 'tpu' } }, /^config ranker\.executionProvider/],
    [{ ranker: { batching: { maxBatchRows: 0 } } }, /^config ranker\.batching\.maxBatchRows/],
    [{ ranker: { bogus: 1 } }, /^config ranker\.bogus is not a known option/],
    [{ itemShard: 3 }, /^config itemShard must be an object/],
    [{ clustre: {} }, /^config clustre is not a known option/],
  ];
  for (const [input, re] of cases) {
    t.throws(() => resolveConfig(input as never), { name: 'TypeError', message: re }, JSON.stringify(input));
  }
});

t.test('cluster.itemReplicas: "all" is the node count, a number is taken as is', async (t) => {
  const all = resolveConfig({ cluster: { nodes: 5 } });
  t.equal(all.cluster.itemReplicas, 'all');
  t.equal(itemReplicasCount(all.cluster), 5, '"all" = every node');
  const two = resolveConfig({ cluster: { nodes: 5, itemReplicas: 2, replicas: 3 } });
  t.equal(itemReplicasCount(two.cluster), 2);
  t.equal(two.cluster.replicas, 3, 'R for partitions is independent of R_items');
  t.equal(itemReplicasCount(resolveConfig(applyOverrides({}, ['cluster.itemReplicas=all'])).cluster), 3, '--set takes the string');
  t.equal(itemReplicasCount(resolveConfig(applyOverrides({}, ['cluster.itemReplicas=1'])).cluster), 1, '--set takes a number');
  t.equal(resolveConfig({ coordinator: { localShards: 'off' } }).coordinator.localShards, 'off');
});

t.test('--set overrides: dotted keys, JSON values, plain strings', async (t) => {
  const input = applyOverrides({ cluster: { nodes: 2 } }, [
    'coordinator.budgets.rankingMs=25',
    'cluster.name=test-1',
    'node.popularOn=all',
    'coordinator.surfaces={"kids":{"click":1,"watch":0}}',
  ]);
  const c = resolveConfig(input);
  t.equal(c.coordinator.budgets.rankingMs, 25);
  t.equal(c.cluster.name, 'test-1');
  t.equal(c.cluster.nodes, 2, 'file values kept');
  t.equal(c.node.popularOn, 'all');
  t.same(c.coordinator.surfaces.kids, { click: 1, watch: 0, completion: 0 });
  t.throws(() => applyOverrides({}, ['novalue']), /key=value/);
  t.throws(() => applyOverrides({}, ['__proto__.x=1']), /not allowed/);
  t.throws(() => applyOverrides({ cluster: { nodes: 2 } }, ['cluster.nodes.x=1']), /not an object/);
});

t.test('describeConfig documents every resolved knob with its real default', async (t) => {
  const knobs = describeConfig();
  const keys = new Set(knobs.map((k) => k.key));
  const resolved = flattenConfig(resolveConfig());
  for (const key of resolved.keys()) t.ok(keys.has(key), `knob ${key} is documented`);
  for (const k of knobs) {
    t.ok(k.doc.length > 10, `${k.key} has a doc`);
    // Optional knobs (unset by default: the caller token, TLS files) have no resolved value to show.
    if (k.default !== 'unset') t.ok(resolved.has(k.key), `${k.key} exists in the resolved config`);
  }
  t.equal(knobs.find((k) => k.key === 'coordinator.budgets.rankingMs')?.default, '40');
  t.equal(knobs.find((k) => k.key === 'coordinator.budgets.rankingMs')?.unit, 'ms');
  t.equal(knobs.find((k) => k.key === 'coordinator.auth.token')?.default, 'unset');
  t.equal(knobs.find((k) => k.key === 'cluster.itemReplicas')?.default, '"all"');
  t.equal(knobs.find((k) => k.key === 'coordinator.localShards')?.default, '"prefer"');
});
