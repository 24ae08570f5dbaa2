// Issue #20's chapters that operate the real features, as pure logic: the temperature card's bars at each stop,
// the scale view's flight from model to model, the Across-layers tab a step opens, and a view change that the
// camera does not fly across.
import { test } from "node:test";
import assert from "node:assert/strict";
import { framedAt, places, sameView, visualAt, type TemperatureAction, type Walk, type WalkStep } from "../src/walkstate";
import { temperatureBars, temperatureCard, temperatureSays } from "../src/walkcards";

const row = { tensor: "probs", ranges: { pos: [5, 5] as [number, number] }, role: "target" };
const temp: TemperatureAction = {
  type: "temperature", row, of: "logits", n: 5, temperatures: [0, 1, 2], start: 1,
  entries: [{ i: 0, name: "A", x: 2, p: [1, 0.7, 0.5], percent: ["100.00 %", "70.00 %", "50.00 %"] },
    { i: 3, name: "B", x: 1, p: [0, 0.2, 0.3], percent: ["0 %", "20.00 %", "30.00 %"] }],
  rest: { p: [0, 0.1, 0.2], percent: ["0 %", "10.00 %", "20.00 %"] },
};

test("the temperature bars are the server's probabilities at the slider's stop, the largest marked", () => {
  const at2 = temperatureBars(temp, 2);
  assert.match(at2, /width:50\.00%/);
  assert.match(at2, /width:30\.00%/);
  assert.match(at2, /3 others<\/code>.*width:20\.00%.*20\.00 %/s);  // the other 3 tokens of the 5
  assert.equal((at2.match(/ch-row chosen/g) ?? []).length, 1);
  assert.match(temperatureBars(temp, 1), /70\.00 %/);
  assert.match(temperatureBars(temp, 1, 0.5), /width:35\.00%/);  // growing in: half way
  const card = temperatureCard(temp, 1);
  assert.match(card, /type="range" min="0" max="2" step="1" value="1"/);
  assert.match(card, /temperature 1: the model's own probabilities/);
  assert.equal(temperatureSays(0), "0: greedy, all on the most probable token");
  assert.equal(temperatureSays(2), "2: flatter than the model's own");
  assert.equal(temperatureSays(0.5), "0.5: sharper than the model's own");
});

const step = (title: string, actions: WalkStep["actions"], view: WalkStep["view"] = null): WalkStep =>
  ({ title, html: "", tensors: [], actions, view });
const generated = { kind: "generated" as const, input: "AB", text: "ABA", past: 2 };
const walk: Walk = { model: "m", input: "AB", tokens: [0, 1], note: "", chapters: [{ number: 1, title: "c", stage: "S", file: "c.md", steps: [
  step("pass", [{ type: "frame", tensors: ["probs"] }, temp]),
  step("lens", [{ type: "open", tab: "lens" }]),
  step("generated", [{ type: "generate", token: "A" }, { type: "frame", tensors: ["blocks.0.attn.cache_k"] }], generated),
  step("scale", [{ type: "model", name: "nano-gpt" }, { type: "model", name: "gpt2" }, { type: "model", name: "gpt3" }], { kind: "scale" }),
  step("table", [{ type: "model", name: "gpt2" }, { type: "table", models: ["nano-gpt", "gpt2", "gpt3"] }], { kind: "scale" }),
] }] };
const all = places(walk);

test("a temperature step lights the logits it reads and the row it redraws, and shows its card", () => {
  const v = visualAt(all, 0, 99);
  assert.deepEqual(v.regions.map((r) => [r.tensor, r.role]), [["logits", "input"], ["probs", "subject"]]);
  assert.deepEqual(v.cards.map((c) => c.kind), ["temperature"]);
});

test("a step opens its Across-layers tab; the next step, without one, closes it", () => {
  assert.equal(visualAt(all, 1, 99).open, "lens");
  assert.equal(visualAt(all, 0, 99).open, null);
  assert.equal(visualAt(all, 2, 99).open, null);
});

test("the camera does not fly across a change of view, nor frame another view's blocks", () => {
  assert.deepEqual(framedAt(all, 1), ["probs"]);  // the same view: the last frame holds
  const g = visualAt(all, 2, 99);
  assert.equal(g.camera.from, null);
  assert.deepEqual(g.camera.to, ["blocks.0.attn.cache_k"]);
  assert.equal(framedAt(all, 3), null);  // the scale view: no tensor framing, a flight between models instead
  assert.ok(sameView(null, undefined) && sameView(generated, { ...generated }) && !sameView(generated, { ...generated, text: "ABB" }));
  assert.ok(!sameView({ kind: "scale" }, null));
});

test("the scale view's flight: model to model, one per second, each row lit as the camera arrives", () => {
  // Before the first flight: the camera where the step before left it (here another view: from the first model).
  assert.deepEqual(visualAt(all, 3, 0).fly, { from: null, to: "nano-gpt", p: 0 });
  assert.deepEqual(visualAt(all, 3, 0).table, null);
  const start = visualAt(all, 3, 0.6 + 0.5);  // half way through the first flight
  assert.equal(start.fly!.from, null);
  assert.equal(start.fly!.to, "nano-gpt");
  assert.ok(Math.abs(start.fly!.p - 0.5) < 1e-9);
  assert.deepEqual(start.table, ["nano-gpt"]);
  const mid = visualAt(all, 3, 0.6 + 1.25);
  assert.equal(mid.fly!.from, "nano-gpt");
  assert.equal(mid.fly!.to, "gpt2");
  assert.ok(mid.fly!.p > 0 && mid.fly!.p < 0.5);
  const end = visualAt(all, 3, 99);
  assert.deepEqual(end.fly, { from: "gpt2", to: "gpt3", p: 1 });
  assert.deepEqual(end.table, ["nano-gpt", "gpt2", "gpt3"]);
  assert.deepEqual(visualAt(all, 4, 99).table, ["nano-gpt", "gpt2", "gpt3"]);
  // the next step on the scale view starts where this one ended (at GPT-3), whatever happened in between
  assert.deepEqual(visualAt(all, 4, 0).fly, { from: "gpt3", to: "gpt2", p: 0 });
  assert.deepEqual(visualAt(all, 4, 99).fly, { from: "gpt3", to: "gpt2", p: 1 });
});
