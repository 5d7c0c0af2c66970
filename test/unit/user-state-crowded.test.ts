/** The once-per-thread warning when a user-state thread holds more users than GC lets it serve. */
import t from 'tap';
import { CROWDED_THREAD_USERS, crowdedThreadWarning } from '../../actors/user-state/worker-host.js';

t.test('silent up to the limit, then names the remedy for the thread kind', async (t) => {
  t.equal(crowdedThreadWarning('shared', CROWDED_THREAD_USERS, 16), undefined, 'at the limit: fine');
  t.equal(crowdedThreadWarning('shared', 0, 0), undefined);
  const shared = crowdedThreadWarning('shared', CROWDED_THREAD_USERS + 1, 16);
  t.match(shared, { event: 'user_state_thread_crowded', kind: 'shared', users: CROWDED_THREAD_USERS + 1, partitions: 16, limit: CROWDED_THREAD_USERS });
  t.match(String(shared?.['advice']), /userState\.thread = "worker"/, 'a shared thread: one thread per partition');
  const dedicated = crowdedThreadWarning('dedicated', 2 * CROWDED_THREAD_USERS, 1);
  t.match(String(dedicated?.['advice']), /cluster\.userPartitions/, 'a partition alone: more partitions');
});
