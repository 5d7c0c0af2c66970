/**
 * The ranker replica (DESIGN.md §2-3): ONNX Runtime sessions in a piscina pool, dynamic batching
 * across concurrent requests, a KServe v2 gRPC edge, and the coordinator's balancing client.
 * See README.md in this folder for the layout and how to put Triton in its place.
 */
export { startRanker } from './replica.js';
export type { RankerHandle, RankerReplicaStats } from './replica.js';
export { openRankerScorer } from './scorer.js';
export type { RankerScorer, RankerScorerInternals, RankerScorerStats } from './scorer.js';
export { RankerClient } from './client.js';
export { LocalFirstRankerScorer, localOverloaded } from './local-first.js';
export type { LocalFirstRankerOptions, LocalFirstRankerStats, LocalRanker, PathRankerScores, RankerPath, RemoteRanker } from './local-first.js';
export type { RankerClientOptions, RankerClientStats, RankerScores } from './client.js';
export { DEFAULT_BATCHING, resolveBatchingOptions, resolveRankerOptions, resolveRankerScorerOptions } from './options.js';
export type { BatchingOptions, ExecutionProviderChoice, RankerOptions, RankerScorerOptions } from './options.js';
export type { RankerOutputs, BatcherStats, OwnedScoreOutcome, RankerLoad } from './batcher.js';
export { readRankerModel } from './model-dir.js';
export type { RankerModel } from './model-dir.js';
export { KSERVE_PLATFORM } from './kserve-server.js';
