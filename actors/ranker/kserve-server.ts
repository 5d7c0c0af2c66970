/**
 * The ranker replica's network edge: the KServe v2 / Triton GRPCInferenceService subset in
 * protos/inference/grpc_service.proto, over @grpc/grpc-js, in front of a {@link RankerScorer}.
 *
 * Contract (what a Triton server loaded with the same ranker.onnx also answers, so it can stand in):
 * - model `ranker` (RANKER_MODEL_NAME), version '' (latest) or the manifest's version;
 * - input `features` FP32 [n, F], sent in `raw_input_contents[0]` (little-endian FP32 bytes) or in
 *   `contents.fp32_contents`;
 * - outputs `p_click` and `watch_log1p_s`, FP32 [n, 1], answered in `raw_output_contents` in the order
 *   requested (all outputs, in that order, when none are requested);
 * - unknown model or version → NOT_FOUND; a bad tensor name, datatype, shape or byte count →
 *   INVALID_ARGUMENT whose message starts with the tensor's name; a full queue → RESOURCE_EXHAUSTED.
 * ModelReady answers ready=false (not an error) for a model it does not serve, as Triton does.
 */
import * as grpc from '@grpc/grpc-js';
import { Deadline } from '../../core/deadline.js';
import { RANKER_MODEL_NAME, TENSORS } from '../../core/model/contract.js';
import { StatusCode, UpnextError, invalidArgument, toStatus } from '../../core/status.js';
import type { RankerOutputs } from './batcher.js';
import type { InferenceServiceHandlers, ModelInferRequest, ModelInferResponse, ModelMetadataResponse, ModelRef } from './kserve-proto.js';
import { inferenceService } from './kserve-proto.js';
import type { RankerScorer } from './scorer.js';

/** Triton's platform name for ONNX Runtime models. */
export const KSERVE_PLATFORM = 'onnxruntime_onnx';

const OUTPUT_NAMES = [TENSORS.ranker.pClick, TENSORS.ranker.watchLog1p] as const;
type OutputName = (typeof OUTPUT_NAMES)[number];

/** A parsed, validated ModelInfer request. */
export interface ParsedInferRequest {
  readonly rows: Float32Array;
  readonly nRows: number;
  /** Outputs to answer, in order. */
  readonly outputs: readonly OutputName[];
}

function notFound(message: string): UpnextError {
  return new UpnextError(StatusCode.NOT_FOUND, message);
}

/** Checks a model name/version against the one served; throws NOT_FOUND. */
export function checkModelRef(name: string, version: string | undefined, servedVersion: string): void {
  if (name !== RANKER_MODEL_NAME) throw notFound(`model '${name}' is not served here (this replica serves '${RANKER_MODEL_NAME}')`);
  if (version !== undefined && version !== '' && version !== servedVersion) {
    throw notFound(`model '${name}' version '${version}' is not served here (serving version '${servedVersion}')`);
  }
}

/** Little-endian FP32 bytes as a Float32Array: a view when aligned, else one copy. */
function floatsFromBytes(bytes: Buffer, count: number): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
  return out;
}

/** Validates a ModelInfer request against the served model (pure; exported for unit tests). */
export function parseInferRequest(req: ModelInferRequest, width: number, servedVersion: string): ParsedInferRequest {
  checkModelRef(req.model_name, req.model_version, servedVersion);
  const featuresName = TENSORS.ranker.features;
  const inputs = req.inputs ?? [];
  for (const input of inputs) {
    if (input.name !== featuresName) throw invalidArgument(input.name || '(unnamed input)', `unknown input tensor; model '${RANKER_MODEL_NAME}' takes only '${featuresName}'`);
  }
  const input = inputs[0];
  if (input === undefined || inputs.length !== 1) throw invalidArgument(featuresName, `expected exactly one input tensor '${featuresName}', got ${inputs.length}`);
  if (input.datatype !== 'FP32') throw invalidArgument(featuresName, `datatype must be FP32, got '${input.datatype}'`);
  const shape = input.shape ?? [];
  const n = shape[0];
  if (shape.length !== 2 || n === undefined || !Number.isInteger(n) || n < 0 || shape[1] !== width) {
    throw invalidArgument(featuresName, `shape must be [n, ${width}], got [${shape.join(', ')}]`);
  }
  const count = n * width;
  let rows: Float32Array;
  const raw = req.raw_input_contents ?? [];
  if (raw.length > 0) {
    if (raw.length !== inputs.length) throw invalidArgument(featuresName, `raw_input_contents has ${raw.length} entries for ${inputs.length} input(s)`);
    const bytes = raw[0] as Buffer;
    if (bytes.length !== count * 4) throw invalidArgument(featuresName, `expected ${count * 4} bytes of FP32 for shape [${n}, ${width}], got ${bytes.length}`);
    rows = floatsFromBytes(bytes, count);
  } else {
    const values = input.contents?.fp32_contents ?? [];
    if (values.length !== count) throw invalidArgument(featuresName, `expected ${count} fp32_contents for shape [${n}, ${width}], got ${values.length}`);
    rows = Float32Array.from(values);
  }
  const requested = req.outputs ?? [];
  const outputs: OutputName[] = [];
  for (const out of requested) {
    if (!(OUTPUT_NAMES as readonly string[]).includes(out.name)) {
      throw invalidArgument(out.name || '(unnamed output)', `unknown output tensor; model '${RANKER_MODEL_NAME}' has ${OUTPUT_NAMES.map((o) => `'${o}'`).join(', ')}`);
    }
    outputs.push(out.name as OutputName);
  }
  return { rows, nRows: n, outputs: outputs.length > 0 ? outputs : [...OUTPUT_NAMES] };
}

/** Encodes scores as a ModelInfer response (raw_output_contents, no copy of the floats). */
export function inferResponse(parsed: ParsedInferRequest, scores: RankerOutputs, version: string, id: string): ModelInferResponse {
  const values = (name: OutputName): Float32Array => (name === TENSORS.ranker.pClick ? scores.pClick : scores.watchLog1p);
  return {
    model_name: RANKER_MODEL_NAME,
    model_version: version,
    id,
    outputs: parsed.outputs.map((name) => ({ name, datatype: 'FP32', shape: [parsed.nRows, 1] })),
    raw_output_contents: parsed.outputs.map((name) => {
      const v = values(name);
      return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }),
  };
}

/** ModelMetadata for the served ranker. */
export function modelMetadata(width: number, version: string): ModelMetadataResponse {
  return {
    name: RANKER_MODEL_NAME,
    versions: [version],
    platform: KSERVE_PLATFORM,
    inputs: [{ name: TENSORS.ranker.features, datatype: 'FP32', shape: [-1, width] }],
    outputs: OUTPUT_NAMES.map((name) => ({ name, datatype: 'FP32', shape: [-1, 1] })),
  };
}

function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const status = toStatus(err);
  return { code: status.code as number as grpc.status, details: status.message };
}

function deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown>): Deadline | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? new Deadline(ms) : undefined;
}

export interface KServeServerOptions {
  /** Bind address. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /**
   * Transport security of the port. Default insecure (plaintext); the node passes mutual-TLS
   * credentials (cluster/tls.ts) when the config's `tls` section is set.
   */
  readonly credentials?: grpc.ServerCredentials;
}

/** Counters for /metrics. */
export interface KServeServerStats {
  readonly inferCalls: number;
  readonly inferRows: number;
  /** Failed ModelInfer calls by status code name. */
  readonly inferErrors: Readonly<Record<string, number>>;
}

export interface KServeServerHandle {
  /** host:port actually bound. */
  readonly address: string;
  readonly port: number;
  stats(): KServeServerStats;
  /** Stops accepting calls, lets running ones finish for up to `graceMs`, then cancels them. Idempotent. */
  stop(graceMs: number): Promise<void>;
}

/** Binds the KServe v2 service for `scorer`. */
export async function startKServeServer(scorer: RankerScorer, opts: KServeServerOptions): Promise<KServeServerHandle> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  let stopping = false;
  let inferCalls = 0;
  let inferRows = 0;
  const inferErrors: Record<string, number> = {};

  const handlers: InferenceServiceHandlers = {
    ServerLive: (_call, cb) => cb(null, { live: true }),
    ServerReady: (_call, cb) => cb(null, { ready: !stopping }),
    ModelReady: (call, cb) => {
      const ref: ModelRef = call.request;
      try {
        checkModelRef(ref.name, ref.version, scorer.model.version);
        cb(null, { ready: !stopping });
      } catch {
        cb(null, { ready: false });
      }
    },
    ModelMetadata: (call, cb) => {
      try {
        checkModelRef(call.request.name, call.request.version, scorer.model.version);
        cb(null, modelMetadata(scorer.width, scorer.model.version));
      } catch (err) {
        cb(toServiceError(err));
      }
    },
    ModelInfer: (call, cb) => {
      inferCalls++;
      const fail = (err: unknown): void => {
        const code = StatusCode[toStatus(err).code] ?? 'UNKNOWN';
        inferErrors[code] = (inferErrors[code] ?? 0) + 1;
        cb(toServiceError(err));
      };
      let parsed: ParsedInferRequest;
      const version = scorer.model.version;
      try {
        parsed = parseInferRequest(call.request, scorer.width, version);
      } catch (err) {
        fail(err);
        return;
      }
      inferRows += parsed.nRows;
      scorer.score(parsed.rows, parsed.nRows, deadlineOf(call)).then(
        (scores) => cb(null, inferResponse(parsed, scores, version, call.request.id ?? '')),
        fail,
      );
    },
  };
  server.addService(inferenceService().service, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.port}`, opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  let stopped: Promise<void> | undefined;
  return {
    address: `${host}:${port}`,
    port,
    stats: () => ({ inferCalls, inferRows, inferErrors: { ...inferErrors } }),
    stop(graceMs: number): Promise<void> {
      stopped ??= new Promise<void>((resolve) => {
        stopping = true;
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopped;
    },
  };
}
