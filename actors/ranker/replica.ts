/**
 * A ranker replica: the in-process scorer (worker pool + dynamic batcher) behind a KServe v2 gRPC
 * server. Stateless; the node process starts one when the shard map lists it under `rankers` and
 * advertises `address` as its NodeInfo.rankerAddress.
 */
import type * as grpc from '@grpc/grpc-js';
import type { KServeServerStats } from './kserve-server.js';
import type { LocalRanker } from './local-first.js';
import { startKServeServer } from './kserve-server.js';
import type { ExecutionProviderName, RankerOptions } from './options.js';
import { resolveRankerOptions } from './options.js';
import type { RankerScorerInternals, RankerScorerStats } from './scorer.js';
import { openRankerScorer } from './scorer.js';

export interface RankerReplicaStats extends RankerScorerStats {
  readonly server: KServeServerStats;
  /** process.memoryUsage() of the hosting process, bytes. */
  readonly memory: { readonly rss: number; readonly heapUsed: number; readonly external: number; readonly arrayBuffers: number };
}

export interface RankerHandle {
  /** host:port of the KServe v2 server. */
  readonly address: string;
  /** The provider the workers actually run on. */
  readonly executionProvider: ExecutionProviderName;
  /** Version of the model now serving (changes after reload). */
  readonly modelVersion: string;
  /**
   * The same batcher and workers without the gRPC edge, for a coordinator in this process
   * (actors/ranker/local-first.ts). After stop() its calls fail UNAVAILABLE with the rows intact.
   */
  readonly local: LocalRanker;
  /** Hot-swaps the model; see RankerScorer.reload. */
  reload(modelDir: string): Promise<void>;
  stats(): RankerReplicaStats;
  /** Stops the server (in-flight calls get shutdownGraceMs), then the batcher and workers. Idempotent. */
  stop(): Promise<void>;
}

/** {@link RankerOptions} plus the KServe port's transport security (not a knob: built by the node from `tls`). */
export interface RankerReplicaOptions extends RankerOptions {
  /** Default insecure; mutual-TLS credentials (cluster/tls.ts) when the config's `tls` is set. */
  readonly serverCredentials?: grpc.ServerCredentials;
}

/** Starts a ranker replica. Throws TypeError naming a bad option, UpnextError if the model is refused. */
export async function startRanker(options: RankerReplicaOptions, internals: RankerScorerInternals = {}): Promise<RankerHandle> {
  const opts = resolveRankerOptions(options);
  const scorer = await openRankerScorer(opts, internals);
  let server;
  try {
    server = await startKServeServer(scorer, {
      host: opts.host,
      port: opts.port,
      ...(options.serverCredentials !== undefined ? { credentials: options.serverCredentials } : {}),
    });
  } catch (err) {
    await scorer.close();
    throw err;
  }
  const srv = server;
  let stopping: Promise<void> | undefined;
  const local: LocalRanker = {
    address: srv.address,
    scoreOwned: (rows, nRows, deadline) => scorer.scoreOwned(rows, nRows, deadline),
    load: () => scorer.load(),
  };
  return {
    address: srv.address,
    local,
    get executionProvider() {
      return scorer.executionProvider;
    },
    get modelVersion() {
      return scorer.model.version;
    },
    reload: (modelDir) => scorer.reload(modelDir),
    stats: () => {
      const m = process.memoryUsage();
      return {
        ...scorer.stats(),
        server: srv.stats(),
        memory: { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers },
      };
    },
    stop: () => {
      stopping ??= (async () => {
        await srv.stop(opts.shutdownGraceMs);
        await scorer.close();
      })();
      return stopping;
    },
  };
}
