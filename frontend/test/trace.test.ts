import { test } from "node:test";
import assert from "node:assert/strict";
import { formatCount, parseTrace } from "../src/trace";

/** Write safetensors bytes by hand, the way the format defines them. */
function safetensors(tensors: Record<string, { dtype: "F32" | "I32"; shape: number[]; values: number[] }>, meta = {}) {
  const header: Record<string, unknown> = { __metadata__: meta };
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const arr = t.dtype === "F32" ? new Float32Array(t.values) : new Int32Array(t.values);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + arr.byteLength] };
    parts.push(new Uint8Array(arr.buffer));
    offset += arr.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const part of parts) { out.set(part, p); p += part.length; }
  return out.buffer;
}

test("parseTrace reads shapes, values, tokens and -inf", () => {
  const bytes = safetensors({
    tokens: { dtype: "I32", shape: [2], values: [2, 0] },
    scores: { dtype: "F32", shape: [2, 2], values: [0.5, -Infinity, 1.5, -2.25] },
  }, { tokens: "[2, 0]", token_strs: '["C", "A"]' });
  const t = parseTrace(bytes);
  assert.deepEqual(t.tokens, [2, 0]);
  assert.deepEqual(t.tokenStrs, ["C", "A"]);
  const s = t.tensors.get("scores")!;
  assert.deepEqual(s.shape, [2, 2]);
  assert.deepEqual([...s.data], [0.5, -Infinity, 1.5, -2.25]);
  assert.equal(t.tensors.get("tokens")!.data[0], 2);
});

test("parseTrace refuses truncated bytes with a message", () => {
  const bytes = safetensors({ x: { dtype: "F32", shape: [4], values: [1, 2, 3, 4] } });
  assert.throws(() => parseTrace(bytes.slice(0, bytes.byteLength - 4)), /truncated inside tensor x/);
  assert.throws(() => parseTrace(bytes.slice(0, 4)), /truncated/);
});

test("float16 tensors keep their bits (for a half-float texture)", () => {
  const header = new TextEncoder().encode(JSON.stringify({ atlas: { dtype: "F16", shape: [1, 2], data_offsets: [0, 4] } }));
  const out = new Uint8Array(8 + header.length + 4);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(new Uint8Array(new Uint16Array([0x3c00, 0xfc00]).buffer), 8 + header.length); // 1.0 and −∞
  const a = parseTrace(out.buffer).tensors.get("atlas")!;
  assert.equal(a.dtype, "F16");
  assert.deepEqual([...a.data], [0x3c00, 0xfc00]);
});

test("formatCount", () => {
  assert.equal(formatCount(85728), "85.7 k");
  assert.equal(formatCount(124439808), "124.4 M");
  assert.equal(formatCount(174604259328), "174.6 B");
});
