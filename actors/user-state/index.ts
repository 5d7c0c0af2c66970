/** Public surface of the user-state actor (DESIGN §2); see user-state.ts and partition.ts. */
export { startUserPartition, resolveUserPartitionOptions, USER_STATE_THREAD_MODES } from './user-state.js';
export type { UserPartitionHandle, UserPartitionOptions, UserPartitionStats, ResolvedUserPartitionOptions, UserStateThreadMode } from './user-state.js';
export { userStateWorkerCounts } from './worker-host.js';
export type { UserStateWorkerCounts } from './worker-host.js';
export { UserStatePartition } from './partition.js';
export type { ApplyResult, SequencedEvent, UserPartitionCounters } from './partition.js';
export { UserTower } from './user-tower.js';
export type { UserEmbedder } from './user-tower.js';
