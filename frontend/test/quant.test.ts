// A quantized weight in the page: its stored form in words (explain.ts's storedText), read through a HeldPass in the
// same request as its value, its block as the regions lit on hover; the precision selector's choices (precision.ts);
// the legend of the error colouring.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelInfo } from "../src/api";
import { explainCells, HeldPass, storedText, subSlice, type GraphJson, type PassSource, type StoredCell } from "../src/explain";
import { legendHtml } from "../src/legend";
import { isQuantized, precisionOf, precisionOptions } from "../src/precision";
import type { SceneInfo } from "../src/scenedata";

const cell = (over: Partial<StoredCell>): StoredCell => ({
  tensor: "W", index: [1, 0], precision: "q4_0", fmt: "q4_0", row: 64, inputs: ["d"], value: -0.0615, original: -0.06,
  error: -0.0015, code: 3, scale: 0.0123, block: 2, bits: null, regions: [{ d: [32, 63], o: [0, 0] }], min: null,
  from_file: false, ...over });

test("a q4_0 weight: the stored integer, its block's scale, the formula that reads it back, the original and the error", () => {
  const t = storedText(cell({}));
  assert.match(t.headline, /^stored as q4_0 \(4 bits\): the integer 3 \(0 … 15\), in block 2: 32 weights/);
  assert.deepEqual(t.rows, [["stored integer (code)", "3"], ["the block's scale d", "0.0123"], ["original (float32)", "−0.06"],
    ["error (stored − original)", "−0.0015 (2.5 % of it)"]]);
  assert.equal(t.formula, "read back: d × (code − 8) = 0.0123 × (3 − 8) = −0.0615");
  assert.match(t.note!, /largest-magnitude weight ÷ −8/);
});

test("q8_0 and int8 read back as scale × code; int8's scale is its output channel's", () => {
  const q8 = storedText(cell({ fmt: "q8_0", precision: "q8_0", code: -5, scale: 0.01, value: -0.05 }));
  assert.equal(q8.formula, "read back: d × code = 0.01 × −5 = −0.05");
  assert.match(q8.headline, /the integer −5 \(−127 … 127\), in block 2/);
  const i8 = storedText(cell({ fmt: "int8", precision: "int8", code: 100, scale: 0.001, value: 0.1, block: 7 }));
  assert.equal(i8.formula, "read back: scale × code = 0.001 × 100 = 0.1");
  assert.match(i8.headline, /output channel 7: its row of 64 weights shares one scale/);
  assert.equal(i8.rows[1][0], "the channel's scale");
});

test("a 16-bit weight shows its bits; a matrix blocks cannot cut says it fell back to f16 and why", () => {
  const half = storedText(cell({ fmt: "f16", precision: "f16", code: null, scale: null, block: null, bits: "0x2BE1", regions: [] }));
  assert.match(half.headline, /^stored as f16: the 16 bits 0x2BE1 \(1 sign, 5 exponent and 10 mantissa bits\)/);
  assert.deepEqual(half.rows[0], ["stored (f16)", "−0.0615"]);
  const fell = storedText(cell({ fmt: "f16", precision: "q4_0", row: 48, inputs: ["d_model"], code: null, scale: null, bits: "0x2BE1" }));
  assert.match(fell.note!, /^stored as f16, not q4_0: each of this matrix's rows holds 48 numbers \(along d_model\), and q4_0's blocks of 32 cannot cut 48/);
  const kept = storedText(cell({ fmt: "f32", code: null, scale: null, value: null, original: null, error: null }));
  assert.match(kept.headline, /not quantized: kept in float32 in q4_0/);
});

// y = x·W with W [d 64, o 2], in a q4_0 model
const graph: GraphJson = {
  past: 0,
  axes: { pos: { label: "T", color: "#111", named_by: "input" }, d: { label: "C", color: "#222", size: 64 }, o: { label: "O", color: "#333", size: 2 } },
  ops: {},
  tensors: [{ name: "W", title: "Weight", kind: "weight", axes: ["d", "o"], op: null, inputs: [], attrs: {}, shape: [64, 2] }],
};

test("a weight's stored form is fetched with its value, in one request, and its block is what the hover lights", async () => {
  const p = new HeldPass("m:q4_0", graph, [1], ["a"], new Map([["W", [64, 2]]]));
  p.storing = true;
  const asked: string[] = [];
  const src: PassSource = {
    pass: async () => p,
    fetch: async (q) => {
      asked.push(`${q.wanted.length} slices, ${q.wantedStored.length} stored`);
      for (const w of q.wanted) q.hold(w.tensor, w.at, subSlice({ axes: ["d", "o"], shape: [64, 2], values: new Float32Array(128).fill(-0.0615) }, w.at));
      for (const w of q.wantedStored) q.holdStored(cell({ tensor: w.tensor, index: w.index }));
    },
  };
  const [e] = await explainCells(src, [{ tensor: "W", index: [40, 0] }]);
  assert.deepEqual(asked, ["1 slices, 1 stored"]);
  assert.equal(e.stored?.cell.code, 3);
  assert.deepEqual(e.sources, [{ tensor: "W", ranges: { d: [32, 63], o: [0, 0] }, role: "block" }]);
  // a pass whose source cannot say (an export): no stored form, nothing wanted
  const plain = new HeldPass("m:q4_0", graph, [1], ["a"], new Map([["W", [64, 2]]]));
  plain.hold("W", {}, { axes: ["d", "o"], shape: [64, 2], values: new Float32Array(128) });
  const [f] = await explainCells({ pass: async () => plain, fetch: async () => assert.fail("nothing to fetch") }, [{ tensor: "W", index: [1, 1] }]);
  assert.equal(f.stored, undefined);
});

const info = (name: string, formats: string[]): ModelInfo => ({
  name, description: "", n_params: 1, param_parts: {}, has_weights: true, config: {} as ModelInfo["config"], source: "",
  precisions: formats.map((f, i) => ({ format: f, bits: [32, 4][i], model: f === "f32" ? name : `${name}:${f}` })) });

test("the precision selector's choices are the server's, for the model shown in any of its formats", () => {
  const models = [info("nano-gpt", ["f32", "q4_0"]), info("gpt3", [])];
  assert.equal(precisionOf(models, "nano-gpt:q4_0")?.model.name, "nano-gpt");
  assert.equal(precisionOf(models, "nano-gpt:q4_0")?.precision?.format, "q4_0");
  assert.equal(precisionOf(models, "nano-gpt")?.precision?.format, "f32");
  assert.equal(precisionOf(models, "gpt3")?.precision, null);
  assert.equal(precisionOf(models, "nano-gpt@100"), null);
  assert.equal(isQuantized(models, "nano-gpt:q4_0"), true);
  assert.equal(isQuantized(models, "nano-gpt"), false);
  assert.deepEqual(precisionOptions(models, "nano-gpt:q4_0"), [
    { value: "nano-gpt", text: "f32 · 32 bits", selected: false }, { value: "nano-gpt:q4_0", text: "q4_0 · 4 bits", selected: true }]);
  assert.deepEqual(precisionOptions(models, "gpt3"), []);
});

test("the legend of the error colouring says it is the quantization error, on one scale", () => {
  const scene = { model: { name: "nano-gpt:q4_0", has_weights: true }, axes: {}, quant_error: 0.032 } as unknown as SceneInfo;
  const html = legendHtml(scene);
  assert.match(html, /weights: quantization error \(stored − original\), what storing them in nano-gpt:q4_0 changed/);
  assert.match(html, /one scale for all the quantized weights: −0\.032 · 0 · \+0\.032/);
  assert.doesNotMatch(legendHtml({ ...scene, quant_error: null }), /quantization error/);
});

test("a small weight read back as 0 has lost all of it", () => {
  const t = storedText(cell({ code: 8, scale: 0.009163, value: 0, original: -0.0007863, error: 0.0007863 }));
  assert.deepEqual(t.rows[3], ["error (stored − original)", "+0.0007863 (100 % of it)"]);
  assert.equal(t.formula, "read back: d × (code − 8) = 0.009163 × (8 − 8) = 0");
});

test("a model as trained is asked once how its weights are stored, then never again", async () => {
  const p = new HeldPass("m", graph, [1], ["a"], new Map([["W", [64, 2]]]));
  p.storing = true;
  p.hold("W", {}, { axes: ["d", "o"], shape: [64, 2], values: new Float32Array(128) });
  let asked = 0;
  const src: PassSource = { pass: async () => p, fetch: async (q) => {
    asked++;
    for (const w of q.wantedStored) q.holdStored(cell({ ...w, precision: "f32", fmt: "f32", code: null, scale: null, regions: [] }));
  } };
  const [e] = await explainCells(src, [{ tensor: "W", index: [3, 1] }]);
  await explainCells(src, [{ tensor: "W", index: [4, 1] }]);
  assert.equal(asked, 1);
  assert.equal(e.stored, undefined);
  assert.deepEqual(e.sources, []);
});

test("a 16-bit weight's stored and original numbers have digits enough to differ", () => {
  const t = storedText(cell({ fmt: "bf16", precision: "bf16", code: null, scale: null, bits: "0x3CAE", value: 0.021240234375,
    original: 0.02118096, error: 0.00005927 }));
  assert.deepEqual(t.rows.slice(0, 2), [["stored (bf16)", "0.02124023"], ["original (float32)", "0.02118096"]]);
  assert.match(t.headline, /1 sign, 8 exponent and 7 mantissa bits/);
});

test("a GGUF file's weight: its stored integer and scale (q4_1: and minimum), no float original to compare", () => {
  const q41 = storedText(cell({ fmt: "q4_1", precision: "q4_1", code: 9, scale: 0.01, min: -0.08, value: 0.01,
    original: null, error: null, from_file: true }));
  assert.equal(q41.formula, "read back: d × code + m = 0.01 × 9 − 0.08 = 0.01");
  assert.deepEqual(q41.rows, [["stored integer (code)", "9"], ["the block's scale d", "0.01"], ["the block's minimum m", "−0.08"]]);
  assert.match(q41.headline, /^stored as q4_1 \(4 bits\): the integer 9 \(0 … 15\)/);
  assert.match(q41.note!, /^the model's file stores it so: there is no float original/);
  const q4 = storedText(cell({ original: null, error: null, from_file: true, precision: "q8_0" }));  // (a file of mixed types)
  assert.equal(q4.rows.length, 2);
  assert.doesNotMatch(q4.note!, /not q8_0/);
  const half = storedText(cell({ fmt: "f16", precision: "q4_0", code: null, scale: null, bits: "0x2BE1", original: null,
    error: null, from_file: true }));
  assert.deepEqual(half.rows, [["stored (f16)", "−0.0615"]]);
});
