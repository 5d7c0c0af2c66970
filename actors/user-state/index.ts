/** Public surface of the user-state actor (DESIGN §2); see user-state.ts and partition.ts. */
export { startUserPartition, resolveUserPartitionOptions } from './user-state.js';
export type { UserPartitionHandle, UserPartitionOptions, UserPartitionStats, ResolvedUserPartitionOptions } from './user-state.js';
export { UserStatePartition } from './partition.js';
export type { ApplyResult, SequencedEvent, UserPartitionCounters } from './partition.js';
export { UserTower } from './user-tower.js';
export type { UserEmbedder } from './user-tower.js';
