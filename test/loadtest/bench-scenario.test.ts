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
