import { test } from "node:test";
import assert from "node:assert/strict";
import { answersHtml, chartSvg, comparisonHtml, sharedScales, type Comparison } from "../src/compare";
import { readoutHtml } from "../src/readout";
import type { BlockInfo, SceneInfo } from "../src/scenedata";

const top = (token: string, prob: number, percent: string) => ({ position: 5, top: [{ id: 0, token, prob, percent }], answer: null });

const comparison: Comparison = {
  model: "m", tokens: [0, 1, 2], token_strs: ["a", "b", "c"],
  reference: { model: "m", format: "f32", bits: 32, prediction: top("s", 0.096, "9.6 %"), predicted: ["h", "e", "s"] },
  other: { model: "m:q4_0", format: "q4_0", bits: 4, prediction: top("w", 0.094, "9.4 %"), predicted: ["h", "e", "w"] },
  layers: [
    { tensor: "blocks.0.hook_resid_pre", layer: null, label: "embedding", last: 0.076, mean: 0.068 },
    { tensor: "blocks.0.hook_resid_post", layer: 0, label: "layer 0", last: 0.088, mean: 0.073 },
    { tensor: "blocks.1.hook_resid_post", layer: 1, label: "layer 1", last: 0.055, mean: 0.1 },
  ],
  same_answer: false, changed_positions: [2], probs_tv: 0.061,
};

function block(tensor: string, kind: BlockInfo["kind"], change: number): BlockInfo {
  return { tensor, short: "", title: "", kind, op: null, group: "", layer: 0, axes: [null, null, null], cols: 1, rows: 1,
    depth: 1, merged: false, residual: false, x: 0, y: 0, z: 0, z_step: 0, x_step: 0, causal: false, dims: [], tile: [1, 1],
    scale: 1, slabs: null, change };
}

test("both answers with their formats and probabilities, and whether the next token changed", () => {
  const html = answersHtml(comparison);
  assert.match(html, /f32:<\/span> <code data-token="s">s<\/code> <span data-percent="0.096">9.6 %<\/span>/);
  assert.match(html, /q4_0:<\/span> <code data-token="w">w<\/code> <span data-percent="0.094">9.4 %<\/span>/);
  assert.match(html, /the next token changed/);
  assert.match(html, /differs at 1 of 3 positions/);
  assert.match(answersHtml({ ...comparison, same_answer: true }), /the same next token/);
});

test("the chart has a dot per layer, each with the server's number", () => {
  const svg = chartSvg(comparison);
  const dots = [...svg.matchAll(/data-layer="([^"]+)" data-last="([^"]+)"/g)].map((m) => [m[1], Number(m[2])]);
  assert.deepEqual(dots, [["embed", 0.076], ["0", 0.088], ["1", 0.055]]);
  assert.match(svg, /8\.80 %/);  // the largest, on the axis
});

test("one colour scale for the activations and one for the weights; the panel says both", () => {
  const info = { blocks: [block("tokens", "input", 0), block("W", "weight", 0.03), block("W2", "weight", 0.01),
    block("x", "activation", 0.5), block("y", "aggregate", 2.0)] } as unknown as SceneInfo;
  const scales = sharedScales(info);
  assert.equal(scales.has(0), false);
  assert.deepEqual([1, 2, 3, 4].map((i) => scales.get(i)!.scale), [0.03, 0.03, 2.0, 2.0]);
  assert.deepEqual([1, 3, 4].map((i) => scales.get(i)!.kind), ["weight", "activation", "aggregate"]);
  assert.match(comparisonHtml(comparison, info), /full colour at ±2\.00 for every activation, ±0\.0300 for every weight/);
});

test("the readout of a comparison: f32's answer → q4_0's, each with its format", () => {
  const config = { n_layer: 1, n_head: 1, n_embd: 4, d_head: 4, vocab_size: 3, n_ctx: 8 };
  const info = { model: { name: "m:q4_0", n_params: 1, param_parts: {}, has_weights: true, description: "", config }, n_pos: 3,
    past: 0, axes: {}, ops: {}, blocks: [], links: [], sections: [], bounds: [0, 0, 1, 1], bands: [], max_display: { weight: 1, computed: 1 },
    tokens: [0, 1, 2], token_strs: ["a", "b", "c"], prediction: comparison.other.prediction, predicted: ["h", "e", "w"],
    clean_prediction: comparison.reference.prediction, clean_predicted: ["h", "e", "s"], compare: comparison } as unknown as SceneInfo;
  const html = readoutHtml(info);
  assert.match(html, /f32 → q4_0/);
  assert.doesNotMatch(html, /clean → edited/);
  assert.match(html, /f32:<\/span> <span class="ro-token" data-clean-token="s">s<\/span>/);
  assert.match(html, /q4_0:<\/span> <span class="ro-token" data-token="w">w<\/span>/);
  assert.match(html, /changed at 1 of 3 positions: after position 2, s → w/);
});
