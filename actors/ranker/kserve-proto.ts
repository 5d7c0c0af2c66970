/**
 * The KServe v2 (Open Inference Protocol) gRPC service, loaded from protos/inference/grpc_service.proto
 * with @grpc/proto-loader, and TypeScript shapes of the messages as the loader delivers them
 * (keepCase: snake_case field names as in the .proto; int64 as numbers; bytes as Buffers; absent
 * fields as proto3 defaults). Shared by the replica's server and the coordinator's client.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_DIR } from '../../protos/codec.js';

/** KServe v2 datatype strings used here. */
export type KServeDatatype = 'FP32' | 'FP64' | 'INT64' | 'INT32' | 'BOOL' | 'BYTES' | string;

export interface TensorMetadata {
  name: string;
  datatype: KServeDatatype;
  shape: number[];
}

export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: number[];
  uint_contents?: number[];
  uint64_contents?: number[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface InferInputTensor {
  name: string;
  datatype: KServeDatatype;
  shape: number[];
  contents?: InferTensorContents | null;
}

export interface InferRequestedOutputTensor {
  name: string;
}

export interface ModelInferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  inputs: InferInputTensor[];
  outputs?: InferRequestedOutputTensor[];
  raw_input_contents?: Buffer[];
}

export interface InferOutputTensor {
  name: string;
  datatype: KServeDatatype;
  shape: number[];
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: InferOutputTensor[];
  raw_output_contents: Buffer[];
}

export interface ModelRef {
  name: string;
  version?: string;
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** Server-side handlers of GRPCInferenceService. */
export interface InferenceServiceHandlers extends grpc.UntypedServiceImplementation {
  ServerLive: Unary<Record<string, never>, { live: boolean }>;
  ServerReady: Unary<Record<string, never>, { ready: boolean }>;
  ModelReady: Unary<ModelRef, { ready: boolean }>;
  ModelMetadata: Unary<ModelRef, ModelMetadataResponse>;
  ModelInfer: Unary<ModelInferRequest, ModelInferResponse>;
}

type ClientUnary<Req, Res> = (
  request: Req,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

/** Client stub of GRPCInferenceService. */
export interface InferenceServiceClient extends grpc.Client {
  ServerLive: ClientUnary<Record<string, never>, { live: boolean }>;
  ServerReady: ClientUnary<Record<string, never>, { ready: boolean }>;
  ModelReady: ClientUnary<ModelRef, { ready: boolean }>;
  ModelMetadata: ClientUnary<ModelRef, ModelMetadataResponse>;
  ModelInfer: ClientUnary<ModelInferRequest, ModelInferResponse>;
}

export type InferenceServiceClientConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => InferenceServiceClient;

interface LoadedService {
  readonly service: grpc.ServiceDefinition;
  readonly Client: InferenceServiceClientConstructor;
}

let loaded: LoadedService | undefined;

/** Loads the service once per process (pure parsing; no I/O beyond reading the .proto). */
export function inferenceService(): LoadedService {
  if (loaded !== undefined) return loaded;
  const def = protoLoader.loadSync(path.join(PROTO_DIR, 'inference', 'grpc_service.proto'), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    inference: { GRPCInferenceService: grpc.ServiceClientConstructor };
  };
  const ctor = pkg.inference.GRPCInferenceService;
  loaded = { service: ctor.service, Client: ctor as unknown as InferenceServiceClientConstructor };
  return loaded;
}
