// Tests of cluster/node/metrics.ts (Prometheus rendering) and the node's desired-actor rule.
import t from 'tap';
import { metricToken, renderMetrics } from '../../cluster/node/metrics.js';
import { desiredActors } from '../../cluster/node/node.js';
import { createShardMap } from '../../shardmap/assign.js';

const proc = { cpuSecondsTotal: 1.5, rssBytes: 1000, heapUsedBytes: 500, eventLoopDelayP99Ms: 2, uptimeSeconds: 3 };

t.test('renders process, node and flattened actor stats with one TYPE line per family', async (t) => {
  const text = renderMetrics({
    node: 'n1',
    cluster: 'c',
    mapVersion: 7,
    modelVersion: 'v1',
    process: proc,
    actors: [
      { kind: 'item_shard', index: 0, stats: { items: 100, memoryBytes: 2048, searches: 5 } },
      { kind: 'item_shard', index: 1, stats: { items: 120, memoryBytes: 4096, searches: 6 } },
      {
        kind: 'coordinator',
        stats: {
          requests: { ok: 3, shed: 1 },
          meanCoverage: 0.5,
          modelVersion: 'v1',
          latencyMs: { total: { bucketsMs: [1, 10], counts: [2, 1, 1], count: 4, sumMs: 40, p50Ms: 1, p99Ms: 10 } },
        },
      },
      { kind: 'ranker', stats: { executionProvider: 'cpu', ready: true } },
    ],
  });
  t.match(text, /^upnext_node_info\{cluster="c",node="n1",model_version="v1"\} 1$/m);
  t.match(text, /^upnext_shard_map_version\{cluster="c",node="n1"\} 7$/m);
  t.match(text, /^process_cpu_seconds_total\{cluster="c",node="n1"\} 1\.5$/m);
  t.match(text, /^upnext_item_shard_items\{cluster="c",node="n1",index="0"\} 100$/m);
  t.match(text, /^upnext_item_shard_items\{cluster="c",node="n1",index="1"\} 120$/m);
  t.equal(text.match(/# TYPE upnext_item_shard_items gauge/g)?.length, 1, 'one TYPE line for both shards');
  t.match(text, /^upnext_actors\{cluster="c",node="n1",kind="item_shard"\} 2$/m);
  t.match(text, /^upnext_coordinator_requests_ok\{cluster="c",node="n1"\} 3$/m);
  t.match(text, /^upnext_coordinator_requests_shed\{cluster="c",node="n1"\} 1$/m);
  t.match(text, /^upnext_coordinator_mean_coverage\{cluster="c",node="n1"\} 0\.5$/m);
  t.match(text, /^upnext_coordinator_model_version_info\{cluster="c",node="n1",value="v1"\} 1$/m);
  // histogram: cumulative buckets in seconds, +Inf, sum in seconds, count
  t.match(text, /# TYPE upnext_coordinator_latency_ms_total_seconds histogram/);
  t.match(text, /^upnext_coordinator_latency_ms_total_seconds_bucket\{cluster="c",node="n1",le="0\.001"\} 2$/m);
  t.match(text, /^upnext_coordinator_latency_ms_total_seconds_bucket\{cluster="c",node="n1",le="0\.01"\} 3$/m);
  t.match(text, /^upnext_coordinator_latency_ms_total_seconds_bucket\{cluster="c",node="n1",le="\+Inf"\} 4$/m);
  t.match(text, /^upnext_coordinator_latency_ms_total_seconds_sum\{cluster="c",node="n1"\} 0\.04$/m);
  t.match(text, /^upnext_coordinator_latency_ms_total_seconds_count\{cluster="c",node="n1"\} 4$/m);
  t.match(text, /^upnext_ranker_ready\{cluster="c",node="n1"\} 1$/m);
  // every sample line is "name{labels} value"
  for (const line of text.trim().split('\n')) {
    if (line.startsWith('#')) continue;
    t.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/, line);
  }
});

t.test('labeled stats: one series per entry under the same names, the label added (not folded into the name)', async (t) => {
  const render = (kind: string, stats: unknown) => renderMetrics({ node: 'n1', cluster: 'c', mapVersion: 1, modelVersion: 'v1', process: proc, actors: [{ kind, stats }] });
  // The coordinator's stats key (actors/coordinator/stats.ts), so these are the names the docs give.
  const text = render('coordinator', { predictionDrift: { ratio: 0.1, surfaces: { labeledBy: 'surface', entries: { home: { ratio: 0.25, top: { clicks: 3 } }, up_next: { ratio: -0.2, top: { clicks: 4 } } } } } });
  t.match(text, /^upnext_coordinator_prediction_drift_ratio\{cluster="c",node="n1"\} 0\.1$/m, 'the pooled figure as before');
  t.match(text, /^upnext_coordinator_prediction_drift_surfaces_ratio\{cluster="c",node="n1",surface="home"\} 0\.25$/m);
  t.match(text, /^upnext_coordinator_prediction_drift_surfaces_ratio\{cluster="c",node="n1",surface="up_next"\} -0\.2$/m);
  t.match(text, /^upnext_coordinator_prediction_drift_surfaces_top_clicks\{cluster="c",node="n1",surface="up_next"\} 4$/m);
  t.notMatch(text, /labeled_by|_home_|_entries_/, 'neither the marker nor the keys become names');
  t.equal(text.match(/^# TYPE upnext_coordinator_prediction_drift_surfaces_ratio /gm)?.length, 1, 'one family for both surfaces');

  // A label name already in use is not overwritten (every entry would render as one series).
  const clash = render('x', { per: { labeledBy: 'node', entries: { a: 1, b: 2 } } });
  t.match(clash, /^upnext_x_per\{cluster="c",node="n1",label_node="a"\} 1$/m);
  t.match(clash, /^upnext_x_per\{cluster="c",node="n1",label_node="b"\} 2$/m);
});

t.test('label values are escaped; names are snake_case', async (t) => {
  t.equal(metricToken('searchP50Ms'), 'search_p50_ms');
  t.equal(metricToken('a.b-c'), 'a_b_c');
  const text = renderMetrics({ node: 'n"1', cluster: 'c', mapVersion: 1, modelVersion: 'x\\y', process: proc, actors: [] });
  t.match(text, /node="n\\"1"/);
  t.match(text, /model_version="x\\\\y"/);
});

t.test('desired actors follow the map: ranker first, coordinator last', async (t) => {
  const map = createShardMap({ cluster: 'c', itemShards: 2, userPartitions: 6, replicas: 1, nodes: ['n1', 'n2', 'n3'] });
  t.same(desiredActors(map, 'n1', 'coordinators'), ['ranker', 'item:0', 'user:1', 'user:4', 'popular', 'coordinator']);
  t.same(desiredActors(map, 'n3', 'coordinators'), ['ranker', 'user:0', 'user:3']);
  t.same(desiredActors(map, 'n3', 'all'), ['ranker', 'user:0', 'user:3', 'popular']);
  t.same(desiredActors(map, 'n9', 'all'), [], 'a node not in the map runs nothing');
});
