/** Public surface of the popular/trending actor and the coordinator-side cache (DESIGN §2, §6). */
export { startPopular, popularIndexFromWorld, MAX_POPULAR_N } from './popular.js';
export type { PopularHandle, PopularOptions, PopularStats } from './popular.js';
export { PopularIndex, GLOBAL_KEY, listKey, resolvePopularIndexOptions } from './popular-index.js';
export type { PopularIndexOptions, RankedList } from './popular-index.js';
export { PopularCache } from './popular-cache.js';
export type { PopularCacheOptions } from './popular-cache.js';
