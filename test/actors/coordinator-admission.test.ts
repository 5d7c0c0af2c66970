import t from 'tap';
import { AdmissionController } from '../../actors/coordinator/admission.js';
import type { AdmissionPermit } from '../../actors/coordinator/admission.js';

t.test('admits up to the limit, queues up to the bound, sheds the rest at once', async (t) => {
  const ac = new AdmissionController({ maxConcurrent: 2, maxQueue: 1, maxQueueWaitMs: 10_000 });
  const a = await ac.acquire();
  const b = await ac.acquire();
  t.ok(a.admitted && b.admitted);
  const queued = ac.acquire();
  const shed = await ac.acquire();
  t.equal(shed.admitted, false, 'beyond limit + queue: shed');
  t.match(shed, { reason: /shed: overload/ });
  t.match(ac.stats(), { inFlight: 2, queued: 1, shedOverload: 1 });
  (a as AdmissionPermit).release();
  (a as AdmissionPermit).release(); // idempotent
  const c = await queued;
  t.equal(c.admitted, true, 'the queued request gets the released slot');
  t.match(ac.stats(), { inFlight: 2, queued: 0, admitted: 3 });
  (b as AdmissionPermit).release();
  (c as AdmissionPermit).release();
  t.equal(ac.stats().inFlight, 0);
});

t.test('a queued request is shed when its wait runs out', async (t) => {
  const ac = new AdmissionController({ maxConcurrent: 1, maxQueue: 4, maxQueueWaitMs: 5 });
  const a = await ac.acquire();
  const waited = await ac.acquire();
  t.equal(waited.admitted, false);
  t.match(waited, { reason: /queue wait/ });
  t.equal(ac.stats().shedQueueTimeout, 1);
  t.equal(ac.stats().queued, 0, 'no waiter left behind');
  (a as AdmissionPermit).release();
  t.equal((await ac.acquire()).admitted, true);
});

t.test('no queue: shed immediately; drainQueue refuses waiters', async (t) => {
  const ac = new AdmissionController({ maxConcurrent: 1, maxQueue: 0, maxQueueWaitMs: 50 });
  await ac.acquire();
  t.equal((await ac.acquire()).admitted, false);
  const ac2 = new AdmissionController({ maxConcurrent: 1, maxQueue: 2, maxQueueWaitMs: 60_000 });
  await ac2.acquire();
  const p = ac2.acquire();
  ac2.drainQueue();
  t.equal((await p).admitted, false);
});
