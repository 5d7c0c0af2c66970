/**
 * make bench's load scenario: the flags a capacity planner passes reach the generator (a 16-core
 * machine needs several generator processes, or the generator, not the cluster, sets the figure).
 */
import t from 'tap';
import { benchScenario } from '../../loadtest/bench/end-to-end.js';

t.test('one generator process unless asked for more', async (t) => {
  t.equal(benchScenario().generator.processes, 1);
  t.equal(benchScenario({ generatorProcesses: 4 }).generator.processes, 4);
});

t.test('the ramp carries the rates and step length it was given', async (t) => {
  const sc = benchScenario({ startRate: 150, stepRate: 75, maxRate: 900, stepS: 8 });
  t.equal(sc.load.kind, 'ramp');
  if (sc.load.kind !== 'ramp') return;
  t.equal(sc.load.startRate, 150);
  t.equal(sc.load.stepRate, 75);
  t.equal(sc.load.maxRate, 900);
  t.equal(sc.load.stepDurationS, 8);
});

t.test('a generator count the scenario parser refuses is refused here too', async (t) => {
  t.throws(() => benchScenario({ generatorProcesses: 0 }), /processes/);
  t.throws(() => benchScenario({ generatorProcesses: 1.5 }), /processes/);
});

t.test('stall lines of a node log are read; other lines are not', async (t) => {
  const { parseNodeStall } = await import('../../loadtest/bench/end-to-end.js');
  t.same(parseNodeStall('n2', '{"event":"gc_pause","node":"n2","kind":"major","ms":123.4}', 7), { node: 'n2', what: 'gc major', ms: 123.4, atEpochMs: 7 });
  t.same(parseNodeStall('n2', '{"event":"gc_pause","node":"n2","kind":"major","ms":60,"atMs":1234}', 7), { node: 'n2', what: 'gc major', ms: 60, atEpochMs: 1234 }, 'the stall\'s own start time wins over the arrival time');
  t.same(parseNodeStall('n1', '{"event":"event_loop_stall","node":"n1","maxMs":88}', 9), { node: 'n1', what: 'event loop', ms: 88, atEpochMs: 9 });
  t.equal(parseNodeStall('n1', '{"event":"actor_started","node":"n1","ms":5}', 1), undefined);
  t.equal(parseNodeStall('n1', 'not json but "gc_pause"', 1), undefined);
  t.equal(parseNodeStall('n1', '{"event":"gc_pause","kind":"minor"}', 1), undefined, 'no duration');
});
