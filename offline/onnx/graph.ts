/**
 * A small ONNX graph builder over the `onnx-proto` schema: declare inputs and outputs, add
 * initializers (raw little-endian bytes) and nodes, encode a ModelProto. Opset 13, IR version 7,
 * which onnxruntime 1.x and Triton's ONNX backend both load.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

/** Opset of every exported model. */
export const ONNX_OPSET = 13;
/** IR version matching opset 13 (ONNX 1.8). */
export const ONNX_IR_VERSION = 7;

export type ElemType = 'float32' | 'int64';

/** A dimension: a fixed size, or a symbolic name such as 'B' for the dynamic batch. */
export type Dim = number | string;

/** Attribute values a node can carry. */
export type AttrValue = number | readonly number[] | { readonly float: number };

function elemTypeCode(t: ElemType): number {
  return t === 'float32' ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64;
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: elemTypeCode(type),
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): IAttributeProto {
  if (typeof v === 'number') return { name, type: onnx.AttributeProto.AttributeType.INT, i: v };
  if (Array.isArray(v)) return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...(v as number[])] };
  return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: (v as { float: number }).float };
}

function bytesOf(a: Float32Array | BigInt64Array): Uint8Array {
  // ONNX raw_data is little-endian; every platform Node runs on here is little-endian.
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  readonly #name: string;
  readonly #nodes: INodeProto[] = [];
  readonly #inits: ITensorProto[] = [];
  readonly #inputs: IValueInfoProto[] = [];
  readonly #outputs: IValueInfoProto[] = [];
  #counter = 0;

  constructor(name: string) {
    this.#name = name;
  }

  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.#inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: readonly Dim[]): void {
    this.#outputs.push(valueInfo(name, type, dims));
  }

  /** A float32 initializer (weights); returns its name. */
  floats(name: string, data: Float32Array, dims: readonly number[]): string {
    this.#inits.push({ name, dataType: onnx.TensorProto.DataType.FLOAT, dims: [...dims], rawData: bytesOf(data) });
    return name;
  }

  /** An int64 initializer (axes, shapes); returns its name. Declared once per name. */
  int64s(name: string, data: readonly number[]): string {
    if (this.#inits.some((t) => t.name === name)) return name;
    const a = BigInt64Array.from(data.map((x) => BigInt(x)));
    this.#inits.push({ name, dataType: onnx.TensorProto.DataType.INT64, dims: [data.length], rawData: bytesOf(a) });
    return name;
  }

  /** Adds a node; returns its (first) output name, generated from `hint` unless `outputs` is given. */
  node(op: string, inputs: readonly string[], hint: string, attrs: Readonly<Record<string, AttrValue>> = {}, outputs?: readonly string[]): string {
    const outs = outputs ?? [`${hint}_${this.#counter++}`];
    this.#nodes.push({
      opType: op,
      name: `${op}_${this.#nodes.length}`,
      input: [...inputs],
      output: [...outs],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs[0]!;
  }

  /** Serialised ModelProto. */
  encode(docString: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      producerName: 'upnext',
      producerVersion: '0.1.0',
      docString,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      graph: {
        name: this.#name,
        node: this.#nodes,
        initializer: this.#inits,
        input: this.#inputs,
        output: this.#outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
