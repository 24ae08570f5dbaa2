// Reading what the server sends: the binary trace (safetensors layout) and the JSON model list.

export interface TensorView {
  dtype: "F32" | "I32" | "F16";
  shape: number[];
  data: Float32Array | Int32Array | Uint16Array; // F16 stays as its bits, for a half-float texture
}

export interface Trace {
  tensors: Map<string, TensorView>;
  metadata: Record<string, string>;
  tokens: number[];
  tokenStrs: string[];
}

/** Parse safetensors bytes: u64 little-endian header length, a JSON header, then one buffer. */
export function parseTrace(bytes: ArrayBuffer): Trace {
  const view = new DataView(bytes);
  if (bytes.byteLength < 8) throw new Error("trace is truncated: fewer than 8 bytes");
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.byteLength) throw new Error("trace is truncated: header runs past the end");
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(bytes, 8, headerLen)));
  const base = 8 + headerLen;
  const tensors = new Map<string, TensorView>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === "__metadata__") {
      metadata = info;
      continue;
    }
    const [start, end] = info.data_offsets as [number, number];
    if (base + end > bytes.byteLength) throw new Error(`trace is truncated inside tensor ${name}`);
    // Copy so the view is aligned whatever the header length was.
    const slice = bytes.slice(base + start, base + end);
    if (info.dtype === "F32") tensors.set(name, { dtype: "F32", shape: info.shape, data: new Float32Array(slice) });
    else if (info.dtype === "I32") tensors.set(name, { dtype: "I32", shape: info.shape, data: new Int32Array(slice) });
    else if (info.dtype === "F16") tensors.set(name, { dtype: "F16", shape: info.shape, data: new Uint16Array(slice) });
    else throw new Error(`tensor ${name} has unsupported dtype ${info.dtype}`);
  }
  return {
    tensors,
    metadata,
    tokens: JSON.parse(metadata.tokens ?? "[]"),
    tokenStrs: JSON.parse(metadata.token_strs ?? "[]"),
  };
}

/** The value at a multi-index of a row-major tensor. */
export function at(t: TensorView, ...index: number[]): number {
  if (index.length !== t.shape.length) throw new Error(`need ${t.shape.length} indices, got ${index.length}`);
  let flat = 0;
  index.forEach((i, d) => {
    if (i < 0 || i >= t.shape[d]) throw new Error(`index ${i} out of range for axis ${d} of size ${t.shape[d]}`);
    flat = flat * t.shape[d] + i;
  });
  return t.data[flat];
}

/** Index and value of the largest entry of row `row` of a 2-D tensor. */
export function argmaxRow(t: TensorView, row: number): { index: number; value: number } {
  const n = t.shape[1];
  let best = 0;
  for (let j = 1; j < n; j++) if (t.data[row * n + j] > t.data[row * n + best]) best = j;
  return { index: best, value: t.data[row * n + best] };
}

/** 124439808 -> "124.4 M"; 174604259328 -> "174.6 B". */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}
