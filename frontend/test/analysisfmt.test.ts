import { test } from "node:test";
import assert from "node:assert/strict";
import { barExtents, cellSentence, cellText, headWhat, legendGradient, NO_RECOVERY, percent, recoveredColor, residWhat }
  from "../src/analysisfmt";

const close = (a: number, b: number, eps = 1e-12) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("signed bars fill the width from the most negative part to the most positive, each from the zero line", () => {
  const { zero, bars } = barExtents([2, -1, 0.5, 0]);
  close(zero, 1 / 3);  // the negative third on the left
  close(bars[0][0], 1 / 3); close(bars[0][1], 2 / 3);  // the largest reaches the right edge
  close(bars[1][0], 0); close(bars[1][1], 1 / 3);  // the most negative starts at the left edge, ends at zero
  close(bars[2][0], 1 / 3); close(bars[2][1], 1 / 6);
  assert.deepEqual(bars[3], [1 / 3, 0]);
  for (const [left, width] of bars) assert.ok(left >= 0 && left + width <= 1 + 1e-12);
  assert.equal(barExtents([1, 3]).zero, 0);  // all positive: zero on the left
  assert.equal(barExtents([-1, -3]).zero, 1);
  assert.deepEqual(barExtents([0, 0]).bars, [[0, 0], [0, 0]]);  // nothing to scale by: no NaN
});

test("the share recovered: white at 0, the activations' blue at 1 and orange at −1, grey when undefined", () => {
  assert.equal(recoveredColor(0), "rgb(255,255,255)");
  assert.equal(recoveredColor(1), "rgb(24,100,171)");  // #1864ab
  assert.equal(recoveredColor(-1), "rgb(217,72,15)");  // #d9480f
  assert.equal(recoveredColor(3), recoveredColor(1));  // beyond the clean probability: clamped
  assert.equal(recoveredColor(null), NO_RECOVERY);
  const g = legendGradient(5);
  assert.ok(g.startsWith("linear-gradient(to right, rgb(217,72,15)") && g.endsWith("rgb(24,100,171))"), g);
  assert.equal(g.match(/rgb\(/g)!.length, 5);
});

test("a cell's number and sentence", () => {
  assert.equal(cellText(0.913), "91");
  assert.equal(cellText(-0.04), "−4");
  assert.equal(cellText(null), "");
  assert.equal(percent(1), "100 %");
  const t = { token: "C", clean: 0.8, corrupted: 0.1, position: 7 };
  assert.equal(cellSentence(residWhat("resid_pre of layer 2", 5, "B"), 0.73123, 0.9017, t),
    "patch resid_pre of layer 2 at position 5 (B) from the clean run: P(C) = 0.7312, 90 % recovered");
  assert.equal(cellSentence(headWhat(1, 2), 0.1, -0.0001, t),
    "patch head 2 of layer 1 (its hook_z at every position) from the clean run: P(C) = 0.1, 0 % recovered");
  assert.match(cellSentence(residWhat("resid_pre of layer 0", 8, "A"), 0.1, 0, t, true),
    /P\(C\) = 0\.1, as corrupted: position 7 comes before it/);
  assert.match(cellSentence("x", 0.5, null, t), /the same probability, nothing to recover$/);
});

test("a link opens the Attribution or the Patching tab", async () => {
  const { parseState, formatState } = await import("../src/urlstate");
  for (const tab of ["attribution", "patching"] as const) {
    assert.equal(parseState(`?insights=${tab}`).insights, tab);
    assert.equal(formatState({ insights: tab }), `?insights=${tab}`);
  }
});
