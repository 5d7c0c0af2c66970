// A rolling restart onto a model with another user tower (DESIGN §5; docs/operations.md "Switching
// the model"), on the real tiny cluster: one node restarts on v2 while back-to-back Recommend calls
// go to the other, still on v1 (no model key is set, so each node serves its --models). Nodes report
// two embedding spaces; no call fails; from a second after the restarted node first answered in v1's
// space every answer has full coverage and no answer says a vector was refused for its space, because each partition embeds in
// the caller's space (v1's user tower, which the v2 node loads from the models root in the background
// on the first such read; until then those reads go without an embedding and take the popular path)
// and each coordinator searches its own space's shards. (The live switch: tower-switch.test.ts.)
import path from 'node:path';
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { backToBackCalls, metricsText, startTinyCluster } from '../fixtures/tiny-cluster.js';
import { otherTowersVersion } from '../fixtures/model-versions.js';
import { nodeStatus } from '../../shardmap/move.js';
import { readEmbeddingSpace } from '../../actors/model/embedding-space.js';

const { assets, cluster, client } = await startTinyCluster(t, 'roll', { itemReplicas: 'all' });
// v2: the tiny model's ranker with other (untrained) towers of the same spec.
const v2 = await otherTowersVersion(t, assets, `roll-v2-${process.pid}`);
const v2Dir = v2.dir;
const spaces = { v1: await readEmbeddingSpace(assets.modelDir), v2: v2.space };

const nc = await connect({ servers: cluster.natsUrl });
t.teardown(() => nc.close());


/** Sum of every sample of metrics named `upnext_…_<suffix>` in a /metrics text. */
function sumOf(text: string, suffix: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^upnext_\\w*_${suffix}(\\{[^}]*\\})? ([0-9.e+-]+)$`).exec(line);
    if (m) sum += Number(m[2]);
  }
  return sum;
}

t.test('restarting one node on other towers: two spaces, no failed call, full coverage after', async (t) => {
  t.not(spaces.v2, spaces.v1);
  const front = cluster.initialMap.coordinators[0]!;
  const other = cluster.nodes.map((n) => n.name).find((n) => n !== front)!;
  const calls = backToBackCalls(client, Array.from({ length: 16 }, (_, i) => i + 1));
  await calls.firstAnswer;
  const restartedInfo = await cluster.restartNode(other, { modelDir: v2Dir });
  // The restarted node's partitions load v1's user tower in the background on the first v1 read;
  // until then those reads go without an embedding. Measure from when it answers in v1's space.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && sumOf(await metricsText(restartedInfo.metricsAddress), 'space_bridged') === 0) {
    await new Promise((r) => setTimeout(r, 250));
  }
  const readyAt = Date.now();
  // Enough calls after that to reach every partition of both nodes several times.
  await new Promise((r) => setTimeout(r, 4000));
  const log = await calls.stop();
  t.equal(log.errors.length, 0, `no call failed${log.errors.length ? `: ${String(log.errors[0])}` : ''}`);
  const after = log.replies.filter((_, i) => log.answeredAtMs[i]! > readyAt + 1000);
  t.ok(after.length >= 16, `${after.length} calls answered a second after the restarted node first answered in v1's space`);
  const partial = after.filter((r) => r.coverage < 1);
  t.equal(partial.length, 0, `full coverage after the restart${partial.length ? `: ${JSON.stringify(partial[0]!.degraded)}` : ''}`);
  const spaceNotes = after.flatMap((r) => r.degraded).filter((d) => d.includes('embedding space'));
  t.same(spaceNotes, [], 'no vector refused for its space');

  const [sFront, sOther] = await Promise.all([nodeStatus(nc, cluster.cluster, front), nodeStatus(nc, cluster.cluster, other)]);
  t.equal(sFront?.model?.version, assets.manifest.version);
  t.equal(sFront?.model?.space, spaces.v1, 'the front node reports v1\'s space');
  t.equal(sOther?.model?.version, path.basename(v2Dir));
  t.equal(sOther?.model?.space, spaces.v2, 'the restarted node reports v2\'s space');

  // The v2 node embedded the front node's users' requests with v1's user tower.
  const restarted = await metricsText(restartedInfo.metricsAddress);
  t.ok(sumOf(restarted, 'space_bridged') > 0, 'the restarted node answered in the caller\'s space');
});
