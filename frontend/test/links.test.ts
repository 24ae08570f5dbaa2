// What a link names that the view lacks (a block, a cell), the section a camera looks at (Stack heads keeps it),
// and an export's refusal of other generation settings: pure logic, checked without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { linkProblems, type LinkedBlock } from "../src/urlstate";
import { sectionAt } from "../src/framing";
import { settingsRefusal } from "../src/exported";
import type { Section } from "../src/scenedata";

const blocks: Record<string, LinkedBlock> = {
  "blocks.0.attn.hook_q": { slabs: 3, grid: () => [16, 6] },
  probs: { slabs: 1, grid: () => [3, 6] },
};
const find = (t: string) => blocks[t] ?? null;

test("a link's block or cell the view has: no problem", () => {
  assert.deepEqual(linkProblems({ block: "probs", cell: { tensor: "blocks.0.attn.hook_q", slab: 2, col: 15, row: 5 } }, find, "nano-gpt"), {});
  assert.deepEqual(linkProblems({}, find, "nano-gpt"), {});
});

test("a link's unknown block is named, with the model", () => {
  assert.deepEqual(linkProblems({ block: "blocks.9.attn.hook_q" }, find, "nano-gpt"),
    { block: "No block named blocks.9.attn.hook_q in nano-gpt" });
});

test("a link's cell of an unknown tensor, or out of its block, is named with the block's range", () => {
  assert.equal(linkProblems({ cell: { tensor: "nope", slab: 0, col: 0, row: 0 } }, find, "gpt2").cell,
    "No block named nope in gpt2: the link's cell is not pinned");
  assert.equal(linkProblems({ cell: { tensor: "blocks.0.attn.hook_q", slab: 3, col: 1, row: 1 } }, find, "nano-gpt").cell,
    "No cell 3,1,1 in blocks.0.attn.hook_q: it has heads 0–2, columns 0–15, rows 0–5; the link's cell is not pinned");
  assert.match(linkProblems({ cell: { tensor: "probs", slab: 0, col: 3, row: 0 } }, find, "nano-gpt").cell!,
    /^No cell 0,3,0 in probs: it has slab 0 only, columns 0–2, rows 0–5/);
  assert.match(linkProblems({ cell: { tensor: "probs", slab: 0, col: 0, row: 6 } }, find, "nano-gpt").cell!, /rows 0–5/);
});

const sections: Section[] = [
  { key: "layer1", title: "Layer 1", parent: null, x0: 0, x1: 100, y0: -100, y1: -300 },
  { key: "layer1.attn", title: "Attention", parent: "layer1", x0: 0, x1: 100, y0: -110, y1: -200 },
  { key: "layer1.mlp", title: "MLP", parent: "layer1", x0: 0, x1: 100, y0: -210, y1: -290 },
];

test("the section looked at: the smallest around the target that fills a good part of the view", () => {
  assert.equal(sectionAt(sections, 0, 50, -150, 120, 100), "layer1.attn");  // framed on the attention
  assert.equal(sectionAt(sections, 0, 50, -150, 600, 450), "layer1");  // the whole layer in view
  assert.equal(sectionAt(sections, 0, 50, -150, 6000, 4500), null);  // the whole model: no one section
  assert.equal(sectionAt(sections, 0, 500, -150, 120, 100), null);  // beside every section
  assert.equal(sectionAt(sections, 1000, 1050, -250, 120, 100), "layer1.mlp");  // a model placed to the right
});

const stored = [{ model: "nano-gpt", text: "CBABBC", temperature: 0, seed: 0 }, { model: "nano-gpt", text: "AABCCB", temperature: 0, seed: 0 }];

test("an export refuses other generation settings by naming them, whatever the text", () => {
  assert.equal(settingsRefusal(stored, { model: "nano-gpt", text: "CBABBCA", temperature: 0, seed: 0 }), null);
  const r = settingsRefusal(stored, { model: "nano-gpt", text: "CBABBCA", temperature: 1, seed: 0 })!;
  assert.equal(r, "This page holds generation with the panel's first settings only (greedy: temperature 0, seed 0), " +
    "not temperature 1. Other settings need llmviz serve: run it on a computer to sample with them, or set the panel back.");
  assert.match(settingsRefusal(stored, { model: "nano-gpt", text: "CBABBC", temperature: 0, seed: 0, top_k: 2 })!, /, not top-k 2\./);
  assert.equal(settingsRefusal([], { temperature: 1 }), null);
});
