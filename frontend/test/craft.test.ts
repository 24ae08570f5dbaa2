// Issue #20's pure logic: every animation done by its step's end, the timeline keeping real time, a step's subjects,
// the part of the view panels leave uncovered, and the code card for a newcomer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { advance, duration, framedRegionsAt, places, softmaxPhase, subjectsOf, termsShown, visualAt, type Walk, type WalkAction } from "../src/walkstate";
import { uncovered } from "../src/framing";
import { codeCard } from "../src/codecard";

const region = (tensor: string, ranges: Record<string, [number, number]> = {}) => ({ tensor, ranges, role: "target" });
const explain = { title: "t", target: region("y"), sources: [region("x"), region("w")], formula: { text: "y = x·w",
  terms: { shown: [{ x: 1, w: 2, product: 2 }, { x: 3, w: 1, product: 3 }], count: 5, rest: 0.5 } } } as never;
const every: WalkAction[] = [
  { type: "frame", tensors: ["x"] },
  { type: "highlight", regions: [region("x", { pos: [0, 0] })] },
  { type: "reveal", tensor: "x", along: "rows" },
  { type: "dot", cell: region("y"), index: [0], explain },
  { type: "tooltip", cell: region("y"), index: [0], explain },
  { type: "softmax", row: region("p", { pos: [5, 5] }), of: "s", n: 3, max: 1, sum: 2,
    entries: [{ i: 0, name: "A", x: 1, exp: 1, p: 0.5 }, { i: 1, name: "B", x: 1, exp: 1, p: 0.5 }] },
  { type: "mask", tensor: "s" },
  { type: "add", tensor: "r", inputs: ["a", "b"] },
  { type: "travel", token: "A", from: region("p"), to: region("tokens") },
  { type: "code", op: "gelu", plain: null, source: "def gelu(x): ...", file: "ops/rows.py" },
];
// Each action alone in a step after a frame (the softmax step's shape), and all of them in one step.
const walk: Walk = { model: "m", input: "AB", tokens: [0, 1], note: "", chapters: [{ number: 1, title: "c", stage: "S", file: "c.md",
  steps: [...every.slice(1).map((a) => ({ title: a.type, html: "", tensors: [], actions: [every[0], a] })),
    { title: "all", html: "", tensors: [], actions: every }] }] };
const all = places(walk);

test("at a step's end every element of every action is shown: the camera landed, every term, phase and cell", () => {
  all.forEach((_, i) => {
    const v = visualAt(all, i, duration(all[i].s));
    assert.equal(v.camera.p, 1);
    for (const c of v.cards) assert.equal(c.p, 1, `${all[i].s.title}: ${c.kind}`);
    const sm = v.cards.find((c) => c.kind === "softmax");
    if (sm) assert.equal(softmaxPhase(sm.p), 3);  // the p column (÷ sum) is filled
    const dot = v.cards.find((c) => c.kind === "dot");
    if (dot) assert.equal(termsShown(2, dot.p), 2);
    if (v.reveal) assert.equal(v.reveal.fraction, 1);
    if (v.travel) assert.equal(v.travel.p, 1);
    if (all[i].s.actions.some((a) => a.type === "tooltip")) assert.ok(v.tooltip);
  });
});

test("the softmax's last phase (p) starts well inside its slot, so a learner sees the full table before the step ends", () => {
  const i = all.findIndex((p) => p.s.title === "softmax");
  const end = duration(all[i].s);
  const sm = visualAt(all, i, end - 0.2).cards.find((c) => c.kind === "softmax")!;
  assert.equal(softmaxPhase(sm.p), 3);
});

test("the timeline keeps real time: a slow frame moves it by the frame's length, a long absence by a second at most", () => {
  assert.ok(Math.abs(advance(1000, 1250, 1) - 0.25) < 1e-9);  // a software GPU's quarter-second frame
  assert.ok(Math.abs(advance(1000, 1250, 2) - 0.5) < 1e-9);
  assert.equal(advance(1000, 60_000, 1), 1);
  assert.equal(advance(1000, 900, 1), 0);
});

test("a step's subjects: what it frames, lights, reveals and explains; the camera keeps their lit cells in view", () => {
  const i = all.findIndex((p) => p.s.title === "all");
  assert.deepEqual(new Set(subjectsOf(visualAt(all, i, duration(all[i].s)))), new Set(["x", "w", "y", "p", "s", "a", "b", "r"]));
  const dot = all.findIndex((p) => p.s.title === "dot");
  assert.deepEqual(framedRegionsAt(all, dot).map((r) => r.tensor).sort(), ["w", "x", "y"]);
});

test("the uncovered part of the view: a side panel, a bottom sheet and a toolbar each cut their own side", () => {
  const view = { left: 0, top: 0, right: 1280, bottom: 760 };
  assert.deepEqual(uncovered(view, [{ left: 900, top: -40, right: 1280, bottom: 760 }]), { ...view, right: 900 });
  assert.deepEqual(uncovered({ ...view, right: 390, bottom: 812 }, [{ left: 0, top: 430, right: 390, bottom: 812 }]),
    { left: 0, top: 0, right: 390, bottom: 430 });
  assert.deepEqual(uncovered(view, [{ left: 10, top: 8, right: 660, bottom: 33 }, { left: 0, top: 2000, right: 5, bottom: 2010 }]),
    { ...view, top: 33 });
});

test("the code card: plain code under 'the code', the real source folded; no plain version, the source as today", () => {
  const plain = codeCard({ plain: "y = x * 2", source: "def f(x):\n    return x<<1", file: "ops/a.py" });
  assert.match(plain, /<b>the code<\/b><pre class="plain"><code>y = x \* 2<\/code>/);
  assert.match(plain, /<details class="real"><summary>how it is really computed \(llmviz\/ops\/a\.py\)<\/summary><pre><code>def f\(x\):\n {4}return x&lt;&lt;1/);
  const real = codeCard({ plain: null, source: "def f(x): pass", file: "ops/a.py" });
  assert.ok(!real.includes("<details"));
  assert.match(real, /<b>the code<\/b> \(llmviz\/ops\/a\.py\)<pre><code>def f\(x\): pass/);
  assert.equal(codeCard({ source: "s", file: "ops/a.py" }), real.replace("def f(x): pass", "s"));
});
