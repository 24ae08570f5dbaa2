import { test } from "node:test";
import assert from "node:assert/strict";
import { argmaxRow, at, formatCount, parseTrace } from "../src/trace";

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
  assert.equal(at(s, 0, 1), -Infinity);
  assert.equal(at(s, 1, 1), -2.25);
  assert.deepEqual(argmaxRow(s, 1), { index: 0, value: 1.5 });
  assert.equal(at(t.tensors.get("tokens")!, 0), 2);
});

test("parseTrace refuses truncated bytes with a message", () => {
  const bytes = safetensors({ x: { dtype: "F32", shape: [4], values: [1, 2, 3, 4] } });
  assert.throws(() => parseTrace(bytes.slice(0, bytes.byteLength - 4)), /truncated inside tensor x/);
  assert.throws(() => parseTrace(bytes.slice(0, 4)), /truncated/);
});

test("at checks its indices", () => {
  const t = { dtype: "F32" as const, shape: [2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) };
  assert.equal(at(t, 1, 2), 5);
  assert.throws(() => at(t, 2, 0), /out of range/);
  assert.throws(() => at(t, 1), /need 2 indices/);
});

test("formatCount", () => {
  assert.equal(formatCount(85728), "85.7 k");
  assert.equal(formatCount(124439808), "124.4 M");
  assert.equal(formatCount(174604259328), "174.6 B");
});
