import { test } from "node:test";
import assert from "node:assert/strict";
import { PAUSE, SLOT, duration, framedAt, indexOf, missingStep, places, progress, softmaxPhase, termsShown, visualAt, type Walk } from "../src/walkstate";

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
  assert.equal(visualAt(all, 0, duration(all[0].s)).regions[0].role, "subject");  // a halo: values stay readable
  const mid = visualAt(all, 1, PAUSE + 0.25 * SLOT);
  assert.deepEqual(mid.reveal, { tensor: "x", along: "rows", fraction: 0.25 });
  const add0 = visualAt(all, 2, PAUSE + SLOT + 0.2 * SLOT), add1 = visualAt(all, 2, duration(all[2].s));
  assert.deepEqual(add0.regions.map((r) => r.tensor), ["x", "z"]);  // the two inputs, then the sum
  assert.deepEqual(add1.regions.map((r) => [r.tensor, r.role]), [["x", "input"], ["z", "input"], ["y", "subject"]]);
  assert.deepEqual(visualAt(all, 2, 0, true), add1);
  assert.deepEqual(visualAt(all, 2, 1.3), visualAt(all, 2, 1.3));
});

test("a dot product shows its largest terms one by one; a softmax goes max, exp, sum, divide", () => {
  assert.deepEqual([0, 0.2, 0.5, 0.99, 1].map((p) => termsShown(4, p)), [0, 1, 2, 4, 4]);
  assert.deepEqual([0, 0.3, 0.6, 0.9].map(softmaxPhase), [0, 1, 2, 3]);
});

test("a guess gives nothing away until the learner picks: its row covered, no answer cell; then lit and outlined", () => {
  const row = { tensor: "probs", ranges: { pos: [5, 5] as [number, number] }, role: "input" };
  const guess: Walk = { ...walk, chapters: [{ number: 1, title: "G", stage: "S", file: "g.md", steps: [
    { title: "g", html: "", tensors: [], actions: [{ type: "guess", row, hides: [], answer: 2, axis: "vocab",
      choices: [{ i: 0, name: "A" }, { i: 1, name: "B" }, { i: 2, name: "C" }] }] },
  ] }] };
  const g = places(guess);
  for (const t of [0, PAUSE / 2, duration(g[0].s)]) {  // from the first frame, before the action's slot starts too
    const open = visualAt(g, 0, t);
    assert.equal(open.guessing, true);
    assert.deepEqual(open.regions.map((r) => [r.tensor, r.role, r.ranges]), [["probs", "cover", { pos: [5, 5] }]]);
    assert.ok(!open.regions.some((r) => r.ranges.vocab), "no cell of the row singled out");
  }
  const seen = visualAt(g, 0, duration(g[0].s), false, true);
  assert.equal(seen.guessing, false);
  assert.deepEqual(seen.regions.map((r) => [r.role, r.ranges]),
    [["input", { pos: [5, 5] }], ["subject", { pos: [5, 5], vocab: [2, 2] }]]);
  assert.equal(visualAt(all, 0, 0).guessing, false);  // a step without a guess hides nothing
});

test("a link to a step that is not there says what was not found and what is shown instead", () => {
  assert.equal(missingStep(all, 1, 2), "");
  assert.equal(missingStep(all, 1, 99), "There is no step 1.99: chapter 1 has 2 steps. Showing 1.1.");
  assert.equal(missingStep(all, 3, 2), "There is no step 3.2: chapter 3 has 1 step. Showing 3.1.");
  assert.equal(missingStep(all, 2, 1), "There is no chapter 2: this walkthrough has chapters 1 and 3. Showing 3.1.");
  assert.equal(missingStep(all, 99, 99), "There is no chapter 99: this walkthrough has chapters 1 and 3. Showing 1.1.");
  const whole = places({ ...walk, chapters: [1, 2, 3].map((n) => ({ ...walk.chapters[0], number: n })) });
  assert.equal(missingStep(whole, 12, 1), "There is no chapter 12: this walkthrough has chapters 1 to 3. Showing 1.1.");
  const gap = places({ ...walk, chapters: [1, 2, 3, 7].map((n) => ({ ...walk.chapters[0], number: n })) });
  assert.equal(missingStep(gap, 5, 1), "There is no chapter 5: this walkthrough has chapters 1 to 3 and 7. Showing 7.1.");
});
