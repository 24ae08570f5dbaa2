import { test } from "node:test";
import assert from "node:assert/strict";
import { inEdit, makeEdit, parseEdits, preferredScope, scopes, type Edit } from "../src/edits";
import { formatState, parseState } from "../src/urlstate";
import type { BlockInfo } from "../src/scenedata";

const WORDS = { pos: "token position", head: "attention head", d_mlp: "MLP hidden unit" };

function block(tensor: string, dims: [string, number][], tile: [number, number] = [1, 1]): BlockInfo {
  return { tensor, short: "", title: "", kind: "activation", op: null, group: "", layer: 0, axes: [null, null, null],
    cols: 1, rows: 1, depth: 1, merged: false, residual: false, x: 0, y: 0, z: 0, z_step: 0, x_step: 0, causal: false,
    dims, tile, scale: 1, slabs: null };
}

test("a cell of a head's tensor can be edited as the cell, its position, its head or the whole tensor", () => {
  const z = block("blocks.0.attn.hook_z", [["pos", 6], ["head", 3], ["d_head", 16]]);
  const list = scopes(z, { pos: [2, 2], head: [1, 1], d_head: [5, 5] }, WORDS);
  assert.deepEqual(list.map((s) => s.label), ["this cell (pos 2, head 1, d_head 5)", "token position 2", "attention head 1",
    "all of blocks.0.attn.hook_z"]);
  assert.equal(preferredScope(list).key, "head");
  assert.deepEqual(makeEdit(z.tensor, list[2], "zero"), { tensor: z.tensor, where: { head: 1 }, set: "zero" });
  assert.deepEqual(makeEdit(z.tensor, list[0], { from_text: "AACBCA" }),
    { tensor: z.tensor, where: { pos: 2, head: 1, d_head: 5 }, set: { from_text: "AACBCA" } });
  assert.deepEqual(makeEdit(z.tensor, list[3], "mean"), { tensor: z.tensor, where: {}, set: "mean" });
});

test("an MLP cell offers its neuron first; a downsampled cell stands for its tile", () => {
  const post = block("blocks.1.mlp.hook_post", [["pos", 6], ["d_mlp", 192]]);
  const list = scopes(post, { pos: [4, 4], d_mlp: [17, 17] }, WORDS);
  assert.equal(preferredScope(list).label, "MLP hidden unit 17");
  const big = block("blocks.0.hook_resid_post", [["pos", 1024], ["d_model", 768]], [2, 2]);
  const tile = scopes(big, { pos: [10, 11], d_model: [0, 1] }, WORDS);
  assert.equal(tile[0].label, "these cells (pos 10–11, d_model 0–1)");
  assert.deepEqual(makeEdit(big.tensor, tile[0], "zero").where, { pos: [10, 11], d_model: [0, 1] });
  assert.ok(!tile.some((s) => s.key === "pos"));  // a tile spans two positions: no single position to offer
});

test("a tensor of one axis offers the cell and the whole, once each", () => {
  const scale = block("blocks.0.ln1.hook_scale", [["pos", 6]]);
  assert.deepEqual(scopes(scale, { pos: [3, 3] }, WORDS).map((s) => s.key), ["cell", "all"]);
});

test("whether a cell is among an edit's cells", () => {
  const e = { where: { pos: [0, 5] as [number, number], head: [1, 1] as [number, number] } };
  assert.ok(inEdit(e, { pos: 3, head: 1, d_head: 7 }));
  assert.ok(!inEdit(e, { pos: 3, head: 2, d_head: 7 }));
});

test("edits survive a round trip through the URL, and a bad edits parameter is no edits", () => {
  const edits: Edit[] = [{ tensor: "blocks.0.attn.hook_z", where: { head: 1 }, set: "zero" },
    { tensor: "blocks.1.hook_resid_post", where: { pos: [2, 4] }, set: { from_text: "A&B C" } }];
  assert.deepEqual(parseState(formatState({ model: "nano-gpt", edits, show: "values" })), { model: "nano-gpt", edits, show: "values" });
  assert.deepEqual(parseState(formatState({ edits })), { edits });
  assert.deepEqual(parseState("?edits=%5B1%2C2%5D"), {});
  assert.deepEqual(parseState("?edits=not-json&show=values"), {});
  assert.equal(parseEdits("[]"), undefined);
  assert.equal(formatState({ edits: [] }), "");
  assert.deepEqual(parseState(formatState({ model: "nano-gpt", show: "gradients" })), { model: "nano-gpt", show: "gradients" });
  assert.deepEqual(parseState("?show=gradients&edits=%5B%5D"), { show: "gradients" });  // (no edits: gradients)
  assert.equal(formatState({ show: "values" }), "");  // (values: only of an edited pass)
});
