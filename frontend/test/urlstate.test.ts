import { test } from "node:test";
import assert from "node:assert/strict";
import { formatState, parseState } from "../src/urlstate";
import { valueColor } from "../src/colors";

test("view state survives a round trip through the URL", () => {
  const s = { model: "gpt2", input: "A B&C", camera: [1.5, -2, 300, 0, -10.25, 0] as [number, number, number, number, number, number],
    block: "blocks.0.attn.hook_q", cell: { tensor: "blocks.0.attn.hook_q", slab: 2, col: 3, row: 7 }, heads: "stack" as const };
  assert.deepEqual(parseState(formatState(s)), s);
  assert.deepEqual(parseState(formatState({ view: "scale" })), { view: "scale" });
  assert.deepEqual(parseState(formatState({ model: "nano-gpt", step: [5, 2] })), { model: "nano-gpt", step: [5, 2] });
  assert.equal(formatState({ step: [12, 1] }), "?step=12.1");
  assert.deepEqual(parseState(formatState({ insights: "branches", branch: [0, 12, 3] })), { insights: "branches", branch: [0, 12, 3] });
});

test("bad URL values are ignored, not fatal", () => {
  assert.deepEqual(parseState("?cam=1,2,x&view=nope&cell=probs:1,x,2&heads=sideways"), {});
  assert.deepEqual(parseState("?cam=1,2,3"), {});
  assert.deepEqual(parseState("?step=0.1"), {});
  assert.deepEqual(parseState("?step=3"), {});
  assert.deepEqual(parseState("?insights=nope&branch=1.x"), {});
  assert.deepEqual(parseState(""), {});
});

test("camera numbers are rounded to 6 significant digits", () => {
  assert.equal(formatState({ camera: [1 / 3, 0, 0, 0, 0, 0] }), "?cam=0.333333%2C0%2C0%2C0%2C0%2C0");
});

test("value colours: white at zero, the family hue at full scale, grey when masked", () => {
  assert.deepEqual(valueColor("activation", 0, 2), [1, 1, 1]);
  const pos = valueColor("activation", 2, 2), neg = valueColor("activation", -5, 2);
  assert.ok(pos[2] > pos[0], "positive activations are blue");
  assert.ok(neg[0] > neg[2], "negative activations are orange-red");
  assert.deepEqual(valueColor("weight", -Infinity, 1), valueColor("aggregate", -Infinity, 3));
  assert.notDeepEqual(valueColor("weight", 1, 1), valueColor("activation", 1, 1));
});
