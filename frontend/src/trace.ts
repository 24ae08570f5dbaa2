// Reading what the server sends: safetensors bytes (the scene's atlas, or a trace), and number formatting.

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
  // The header's entries: { dtype, shape, data_offsets } per tensor, and the string metadata.
  for (const [name, info] of Object.entries<{ dtype: string; shape: number[]; data_offsets: [number, number] } & Record<string, string>>(header)) {
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

/** 124439808 -> "124.4 M"; 174604259328 -> "174.6 B". */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}
