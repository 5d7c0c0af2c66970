// The pure half of shardmap/add-node.ts (no NATS, no processes): which move brings a new node to
// its share, when item shards count as "on every node", the registration edits, the CLI's flag
// checks. The live half runs in add-node.test.ts.
import t from 'tap';
import { createShardMap } from '../../shardmap/assign.js';
import { itemsOnEveryNode, nextRebalanceMove, rankerByDefault, validateNodeName, withNewNode, withoutNode } from '../../shardmap/add-node.js';
import { formatAddNodeStep, nodeFlag, parseFlags, timeoutFlag } from '../../shardmap/cli.js';
import { withExtraOwner, withNodeState, withoutOwner } from '../../shardmap/move.js';
import type { MovableKind } from '../../shardmap/move.js';
import type { ShardMapSnapshot } from '../../shardmap/snapshot.js';
import { assignmentOf } from '../../shardmap/snapshot.js';
import { validateShardMap } from '../../shardmap/route.js';

/** Applies nextRebalanceMove until it says stop, as addNode does (warm + flip = one move). */
function rebalance(map: ShardMapSnapshot, kind: MovableKind, node: string): { map: ShardMapSnapshot; moves: number } {
  let moves = 0;
  for (let next = nextRebalanceMove(map, kind, node); next !== undefined; next = nextRebalanceMove(map, kind, node)) {
    map = withoutOwner(withExtraOwner(map, kind, next.index, node), kind, next.index, next.from);
    moves++;
    if (moves > 1000) throw new Error('rebalance does not terminate');
  }
  return { map, moves };
}

const counts = (map: ShardMapSnapshot, nodes: readonly string[]) => nodes.map((n) => assignmentOf(map, n).userPartitions.length);

t.test('a new node gets partitions until it is within one of every other active node', async (t) => {
  for (const [nodes, P, R] of [[2, 4, 1], [3, 16, 1], [3, 16, 2], [4, 7, 3], [1, 5, 1], [5, 3, 1]] as const) {
    const names = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
    const base = createShardMap({ cluster: 'c', nodes: names, itemShards: 2, userPartitions: P, replicas: R });
    const added = withNewNode(base, 'new', true);
    const { map, moves } = rebalance(added, 'user', 'new');
    validateShardMap(map);
    const all = [...names, 'new'];
    const c = counts(map, all);
    const mine = c[c.length - 1]!;
    t.ok(c.every((x) => x - mine <= 1), `${nodes} nodes P=${P} R=${R}: counts ${c.join(',')} after ${moves} moves`);
    t.ok(map.partitionOwners.every((o) => new Set(o).size === o.length && o.length === R), 'every partition keeps R distinct owners');
    t.equal(nextRebalanceMove(map, 'user', 'new'), undefined, 'then nothing more to do (idempotent)');
  }
});

t.test('draining nodes are neither source nor counted; a draining target gets nothing', async (t) => {
  const base = createShardMap({ cluster: 'c', nodes: ['n1', 'n2', 'n3'], itemShards: 1, userPartitions: 9, replicas: 1 });
  const draining = withNodeState(withNewNode(base, 'n4', false), 'n3', 'draining');
  const { map } = rebalance(draining, 'user', 'n4');
  t.same(assignmentOf(map, 'n3').userPartitions, assignmentOf(base, 'n3').userPartitions, 'the draining node keeps what its drain will move');
  t.same(counts(map, ['n1', 'n2', 'n4']), [2, 2, 2], 'n1 and n2 (3 each) gave one each');
  t.equal(nextRebalanceMove(withNodeState(draining, 'n4', 'draining'), 'user', 'n4'), undefined);
});

t.test('item shards count as on every node when R_items covers every other active node', async (t) => {
  const all = createShardMap({ cluster: 'c', nodes: ['n1', 'n2'], itemShards: 2, userPartitions: 4, replicas: 1, itemReplicas: 2 });
  const one = createShardMap({ cluster: 'c', nodes: ['n1', 'n2'], itemShards: 2, userPartitions: 4, replicas: 1, itemReplicas: 1 });
  t.ok(itemsOnEveryNode(all, 'n3'));
  t.ok(itemsOnEveryNode(withNewNode(all, 'n3', true), 'n3'), 'still after registering (a resumed run decides the same)');
  t.notOk(itemsOnEveryNode(one, 'n3'));
  t.ok(itemsOnEveryNode(withNodeState(withNewNode(all, 'n3', true), 'n2', 'draining'), 'n4'), 'draining nodes do not count');
  // Not on every node: item shards are rebalanced like partitions.
  const { map } = rebalance(withNewNode(createShardMap({ cluster: 'c', nodes: ['n1', 'n2'], itemShards: 6, userPartitions: 4, replicas: 1, itemReplicas: 1 }), 'n3', true), 'item', 'n3');
  t.same(['n1', 'n2', 'n3'].map((n) => assignmentOf(map, n).itemShards.length), [2, 2, 2]);
});

t.test('registration edits', async (t) => {
  const base = createShardMap({ cluster: 'c', nodes: ['n1', 'n2'], itemShards: 1, userPartitions: 2, replicas: 1 });
  const added = withNewNode(base, 'n3', true);
  t.same(added.nodes.n3, { name: 'n3', state: 'active' });
  t.same(added.rankers, ['n1', 'n2', 'n3']);
  t.same(withNewNode(base, 'n3', false).rankers, ['n1', 'n2']);
  t.throws(() => withNewNode(base, 'n1', true), /already in the shard map/);
  t.throws(() => withNewNode(base, 'bad name', true), /node name must match/);
  t.throws(() => validateNodeName(''), /node name must match/);
  t.ok(rankerByDefault(base, 'n3'));
  t.notOk(rankerByDefault({ ...base, rankers: ['n1'] }, 'n3'), 'not every node is a ranker: the new one is not either');
  t.same(withoutNode(added, 'n3'), { ...base, rankers: ['n1', 'n2'] }, 'undoing a registration restores the map');
  t.throws(() => withoutNode(base, 'n1'), /drain it instead/);
});

t.test('CLI flag checks name the flag', async (t) => {
  t.throws(() => nodeFlag(parseFlags(['--node', 'n 3']), 'node'), /--node must match/);
  t.throws(() => nodeFlag(parseFlags(['--node', 'a.b']), 'node'), /--node must match \[A-Za-z0-9_-\]\{1,64\}, got "a\.b"/);
  t.throws(() => nodeFlag(parseFlags([]), 'node'), /--node is required/);
  t.equal(nodeFlag(parseFlags(['--node', 'n3']), 'node'), 'n3');
  t.throws(() => timeoutFlag('soon'), /--timeout-ms must be a positive integer/);
  t.throws(() => timeoutFlag('0'), /--timeout-ms/);
  t.equal(timeoutFlag('2500'), 2500);
  t.equal(timeoutFlag(undefined), undefined);
  t.match(formatAddNodeStep('n3', { action: 'move', kind: 'user', index: 2, from: 'n1', version: 9, ms: 40 }), 'partition 2: moved n1 → n3 in 40 ms (v9)');
  t.match(formatAddNodeStep('n3', { action: 'replicate', kind: 'item', index: 1, version: 7, ms: 900 }), /item shard 1: n3 serves a copy/);
});
