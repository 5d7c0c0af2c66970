/**
 * The coordinator's client of ranker replicas over KServe v2 gRPC (ours, or Triton serving the same
 * ranker.onnx). Replica addresses come from a function, so the client follows shard-map changes;
 * each replica gets several channels (one HTTP/2 connection stalls near 4.6k req/s, see
 * ENVIRONMENT.md); requests are balanced by power of two choices on outstanding requests
 * (balancer.ts). A replica that answers UNAVAILABLE is skipped for `ejectMs`, and the request is
 * retried once on another replica when the deadline leaves at least `minRetryMs`.
 */
import * as grpc from '@grpc/grpc-js';
import { SeededRng, systemClock } from '../../core/clock.js';
import type { Clock, Rng } from '../../core/clock.js';
import type { Deadline } from '../../core/deadline.js';
import { RANKER_MODEL_NAME, TENSORS } from '../../core/model/contract.js';
import { StatusCode, UpnextError, invalidArgument } from '../../core/status.js';
import { pickReplica } from './balancer.js';
import type { InferenceServiceClient, ModelInferRequest, ModelInferResponse } from './kserve-proto.js';
import { inferenceService } from './kserve-proto.js';

export interface RankerClientOptions {
  /** Current replica addresses (host:port), e.g. `() => rankerAddresses(shardMap.current())`. Required. */
  readonly addresses: () => readonly string[];
  /** gRPC channels (TCP connections) per replica. Default 2. */
  readonly channelsPerReplica?: number;
  /** How long a replica that answered UNAVAILABLE is skipped, ms. Default 1000. */
  readonly ejectMs?: number;
  /** Retry on another replica only when at least this much of the deadline is left, ms. Default 2. */
  readonly minRetryMs?: number;
  /** Model name to call. Default RANKER_MODEL_NAME ('ranker'). */
  readonly modelName?: string;
  /**
   * Default insecure. With the config's `tls` section set, the node passes mutual-TLS credentials
   * (cluster/tls.ts `grpcChannelCredentials`): replicas' certificates must name the host of their
   * shard-map address (or `tls.serverName`), and this client presents the node's certificate.
   */
  readonly credentials?: grpc.ChannelCredentials;
  /** Default systemClock (epoch ms: ejection times). */
  readonly clock?: Clock;
  /** Default a SeededRng with a random seed. */
  readonly rng?: Rng;
}

/** One scored request. */
export interface RankerScores {
  /** Uncalibrated P(click) per row. */
  readonly pClick: Float32Array;
  /** Predicted log1p(watch seconds) per row. */
  readonly watchLog1p: Float32Array;
  /** Address of the replica that answered. */
  readonly replica: string;
}

export interface RankerClientReplicaStats {
  readonly address: string;
  readonly outstanding: number;
  readonly calls: number;
  readonly failures: number;
  readonly ejected: boolean;
}

export interface RankerClientStats {
  readonly replicas: readonly RankerClientReplicaStats[];
  /** Requests retried on a second replica. */
  readonly retries: number;
}

interface ReplicaState {
  readonly address: string;
  readonly channels: InferenceServiceClient[];
  nextChannel: number;
  outstanding: number;
  calls: number;
  failures: number;
  ejectedUntilMs: number;
  /** No longer in the address list: closed once its outstanding calls end. */
  retired: boolean;
}

const RETRYABLE = new Set<number>([StatusCode.UNAVAILABLE, StatusCode.RESOURCE_EXHAUSTED]);

/** Copies (or views, when aligned) little-endian FP32 bytes. */
function floats(bytes: Buffer | undefined, count: number, name: string): Float32Array {
  if (bytes === undefined || bytes.length !== count * 4) {
    throw new UpnextError(StatusCode.INTERNAL, `ranker answered ${bytes?.length ?? 0} bytes for ${name}, expected ${count * 4}`);
  }
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export class RankerClient {
  readonly #addresses: () => readonly string[];
  readonly #channelsPerReplica: number;
  readonly #ejectMs: number;
  readonly #minRetryMs: number;
  readonly #modelName: string;
  readonly #credentials: grpc.ChannelCredentials;
  readonly #clock: Clock;
  readonly #rng: Rng;
  #replicas: ReplicaState[] = [];
  #addressKey = '';
  #retries = 0;
  #closed = false;

  constructor(opts: RankerClientOptions) {
    if (typeof opts?.addresses !== 'function') throw new TypeError('options.addresses must be a function returning host:port strings');
    const channels = opts.channelsPerReplica ?? 2;
    if (!Number.isInteger(channels) || channels < 1) throw new TypeError(`options.channelsPerReplica must be a positive integer, got ${String(channels)}`);
    const ejectMs = opts.ejectMs ?? 1000;
    if (typeof ejectMs !== 'number' || !(ejectMs >= 0)) throw new TypeError(`options.ejectMs must be a non-negative number, got ${String(ejectMs)}`);
    const minRetryMs = opts.minRetryMs ?? 2;
    if (typeof minRetryMs !== 'number' || !(minRetryMs >= 0)) throw new TypeError(`options.minRetryMs must be a non-negative number, got ${String(minRetryMs)}`);
    const modelName = opts.modelName ?? RANKER_MODEL_NAME;
    if (typeof modelName !== 'string' || modelName.length === 0) throw new TypeError('options.modelName must be a non-empty string');
    this.#addresses = opts.addresses;
    this.#channelsPerReplica = channels;
    this.#ejectMs = ejectMs;
    this.#minRetryMs = minRetryMs;
    this.#modelName = modelName;
    this.#credentials = opts.credentials ?? grpc.credentials.createInsecure();
    this.#clock = opts.clock ?? systemClock;
    this.#rng = opts.rng ?? new SeededRng((Math.random() * 2 ** 32) >>> 0);
  }

  /**
   * Scores `nRows` rows (`rows.length / nRows` features each) on one replica, passing `deadline`
   * (epoch ms) to gRPC. Rejects with an UpnextError carrying the replica's status code (e.g.
   * RESOURCE_EXHAUSTED when every tried replica is full, UNAVAILABLE when none is reachable,
   * DEADLINE_EXCEEDED), or INVALID_ARGUMENT for a bad shape.
   */
  async score(rows: Float32Array, nRows: number, deadline: Deadline): Promise<RankerScores> {
    if (this.#closed) throw new UpnextError(StatusCode.UNAVAILABLE, 'ranker client is closed');
    if (!Number.isInteger(nRows) || nRows < 1 || rows.length % nRows !== 0) {
      throw invalidArgument('features', `${rows.length} values do not split into ${nRows} rows`);
    }
    const width = rows.length / nRows;
    this.#syncReplicas();
    const request: ModelInferRequest = {
      model_name: this.#modelName,
      model_version: '',
      id: '',
      inputs: [{ name: TENSORS.ranker.features, datatype: 'FP32', shape: [nRows, width] }],
      outputs: [{ name: TENSORS.ranker.pClick }, { name: TENSORS.ranker.watchLog1p }],
      raw_input_contents: [Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength)],
    };
    const tried = new Set<number>();
    let lastError: UpnextError | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (deadline.expired()) break;
      if (attempt > 0 && deadline.remainingMs() < this.#minRetryMs) break;
      const replicas = this.#replicas;
      const i = pickReplica(
        replicas.map((r) => ({ outstanding: r.outstanding, ejectedUntilMs: r.retired ? Number.POSITIVE_INFINITY : r.ejectedUntilMs })),
        this.#clock.nowMs(),
        this.#rng,
        tried,
      );
      const replica = replicas[i];
      if (replica === undefined) break;
      tried.add(i);
      if (attempt > 0) this.#retries++;
      try {
        const response = await this.#call(replica, request, deadline);
        return this.#decode(response, nRows, replica.address);
      } catch (err) {
        lastError = err instanceof UpnextError ? err : new UpnextError(StatusCode.INTERNAL, String(err));
        if (!RETRYABLE.has(lastError.code)) throw lastError;
      }
    }
    if (lastError !== undefined) throw lastError;
    if (deadline.expired()) throw new UpnextError(StatusCode.DEADLINE_EXCEEDED, 'ranking deadline passed before a replica answered');
    throw new UpnextError(StatusCode.UNAVAILABLE, 'no ranker replica in the shard map');
  }

  stats(): RankerClientStats {
    const now = this.#clock.nowMs();
    return {
      replicas: this.#replicas.map((r) => ({
        address: r.address,
        outstanding: r.outstanding,
        calls: r.calls,
        failures: r.failures,
        ejected: r.ejectedUntilMs > now,
      })),
      retries: this.#retries,
    };
  }

  /** Closes every channel (calls in flight are cancelled). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const r of this.#replicas) for (const c of r.channels) c.close();
    this.#replicas = [];
  }

  #call(replica: ReplicaState, request: ModelInferRequest, deadline: Deadline): Promise<ModelInferResponse> {
    const channel = replica.channels[replica.nextChannel] as InferenceServiceClient;
    replica.nextChannel = (replica.nextChannel + 1) % replica.channels.length;
    replica.outstanding++;
    replica.calls++;
    return new Promise<ModelInferResponse>((resolve, reject) => {
      channel.ModelInfer(request, { deadline: new Date(deadline.atMs) }, (err, response) => {
        replica.outstanding--;
        if (replica.retired && replica.outstanding === 0) for (const c of replica.channels) c.close();
        if (err || response === undefined) {
          replica.failures++;
          const code = (err?.code ?? StatusCode.INTERNAL) as number as StatusCode;
          if (code === StatusCode.UNAVAILABLE) replica.ejectedUntilMs = this.#clock.nowMs() + this.#ejectMs;
          reject(new UpnextError(code, `ranker ${replica.address}: ${err?.details ?? 'empty response'}`));
          return;
        }
        resolve(response);
      });
    });
  }

  #decode(response: ModelInferResponse, nRows: number, address: string): RankerScores {
    let pClick: Float32Array | undefined;
    let watchLog1p: Float32Array | undefined;
    response.outputs.forEach((out, k) => {
      const bytes = response.raw_output_contents[k];
      if (out.name === TENSORS.ranker.pClick) pClick = floats(bytes, nRows, out.name);
      else if (out.name === TENSORS.ranker.watchLog1p) watchLog1p = floats(bytes, nRows, out.name);
    });
    if (pClick === undefined || watchLog1p === undefined) {
      throw new UpnextError(StatusCode.INTERNAL, `ranker ${address} answered outputs [${response.outputs.map((o) => o.name).join(', ')}]`);
    }
    return { pClick, watchLog1p, replica: address };
  }

  /** Follows the address function: new addresses get channels, vanished ones retire. */
  #syncReplicas(): void {
    const addresses = [...new Set(this.#addresses())];
    const key = addresses.join(',');
    if (key === this.#addressKey) return;
    this.#addressKey = key;
    const byAddress = new Map(this.#replicas.map((r) => [r.address, r]));
    const next: ReplicaState[] = [];
    for (const address of addresses) {
      const existing = byAddress.get(address);
      if (existing !== undefined) {
        byAddress.delete(address);
        next.push(existing);
        continue;
      }
      const { Client } = inferenceService();
      const channels = Array.from(
        { length: this.#channelsPerReplica },
        // A local subchannel pool per client gives each channel its own connection; with the
        // global pool, channels to one address would share a single HTTP/2 connection.
        () => new Client(address, this.#credentials, { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 * 1024 * 1024 }),
      );
      next.push({ address, channels, nextChannel: 0, outstanding: 0, calls: 0, failures: 0, ejectedUntilMs: 0, retired: false });
    }
    for (const gone of byAddress.values()) {
      gone.retired = true;
      if (gone.outstanding === 0) for (const c of gone.channels) c.close();
    }
    this.#replicas = next;
  }
}
