import { test } from "node:test";
import assert from "node:assert/strict";
import { PAUSE, SLOT, duration, framedAt, indexOf, places, progress, softmaxPhase, termsShown, visualAt, type Walk } from "../src/walkstate";

const region = (tensor: string) => ({ tensor, ranges: {}, role: "target" });
const walk: Walk = {
  model: "m", input: "AB", tokens: [0, 1], note: "",
  chapters: [
    { number: 1, title: "One", stage: "S", file: "01.md", steps: [
      { title: "a", html: "<p>a</p>", tensors: [], actions: [{ type: "frame", tensors: ["x"] }, { type: "highlight", regions: [region("x")] }] },
      { title: "b", html: "<p>b</p>", tensors: [], actions: [{ type: "reveal", tensor: "x", along: "rows" }] },
    ] },
    { number: 3, title: "Three", stage: "T", file: "03.md", steps: [
      { title: "c", html: "<p>c</p>", tensors: [], actions: [{ type: "frame", tensors: ["y"] }, { type: "add", tensor: "y", inputs: ["x", "z"] }] },
    ] },
  ],
};
const all = places(walk);

test("steps in reading order, found by chapter.step; a missing step falls back to its chapter's first", () => {
  assert.deepEqual(all.map((p) => `${p.chapter}.${p.step}`), ["1.1", "1.2", "3.1"]);
  assert.equal(indexOf(all, 1, 2), 1);
  assert.equal(indexOf(all, 2, 1), 2);  // no chapter 2: the next one
  assert.equal(indexOf(all, 3, 9), 2);
});

test("a step's time: a pause, then one slot per action", () => {
  assert.equal(duration(all[0].s), PAUSE + 2 * SLOT);
  assert.equal(progress(0, 0), 0);
  assert.ok(Math.abs(progress(PAUSE + SLOT / 2, 0) - 0.5) < 1e-9);
  assert.equal(progress(PAUSE + SLOT / 2, 1), 0);
  assert.equal(progress(99, 1), 1);
});

test("the camera flies from the last framed tensors to this step's, and stays put when a step frames nothing", () => {
  assert.deepEqual(framedAt(all, 1), ["x"]);
  const start = visualAt(all, 2, 0), end = visualAt(all, 2, duration(all[2].s));
  assert.deepEqual([start.camera.from, start.camera.to, start.camera.p], [["x"], ["y"], 0]);
  assert.equal(end.camera.p, 1);
  const still = visualAt(all, 1, 0);
  assert.deepEqual([still.camera.from, still.camera.to], [["x"], ["x"]]);
});

test("the state is a function of step and time: actions appear in order, and reduced motion is the end state", () => {
  assert.equal(visualAt(all, 0, 0).regions.length, 0);
  assert.equal(visualAt(all, 0, duration(all[0].s)).regions[0].role, "target");  // outlined: values stay readable
  const mid = visualAt(all, 1, PAUSE + 0.25 * SLOT);
  assert.deepEqual(mid.reveal, { tensor: "x", along: "rows", fraction: 0.25 });
  const add0 = visualAt(all, 2, PAUSE + SLOT + 0.2 * SLOT), add1 = visualAt(all, 2, duration(all[2].s));
  assert.deepEqual(add0.regions.map((r) => r.tensor), ["x", "z"]);  // the two inputs, then the sum
  assert.deepEqual(add1.regions.map((r) => [r.tensor, r.role]), [["x", "input"], ["z", "input"], ["y", "target"]]);
  assert.deepEqual(visualAt(all, 2, 0, true), add1);
  assert.deepEqual(visualAt(all, 2, 1.3), visualAt(all, 2, 1.3));
});

test("a dot product shows its largest terms one by one; a softmax goes max, exp, sum, divide", () => {
  assert.deepEqual([0, 0.2, 0.5, 0.99, 1].map((p) => termsShown(4, p)), [0, 1, 2, 4, 4]);
  assert.deepEqual([0, 0.3, 0.6, 0.9].map(softmaxPhase), [0, 1, 2, 3]);
});
