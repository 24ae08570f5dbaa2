import { test } from "node:test";
import assert from "node:assert/strict";
import { nextHtml, nextStep, pathHtml, pathModel, readProgress, recordOpen, recordWalk, type PathStep } from "../src/learningpath";
import { introHtml, offerPath } from "../src/intro";
import type { SceneInfo } from "../src/scenedata";

const text = (html: string) => html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();

const step = (model: string, title: string, start: number[] | null, end: number[] | null, served = true): PathStep =>
  ({ model, title, learn: `what ${title} teaches`, picture: `path/${model}.webp`, served, start, end });

// As GET /api/learning-path answers a server without the neuron, and a digit classifier with no chapter yet.
const STEPS = [
  step("neuron", "A single neuron", null, null, false),
  step("digits-mlp", "A digit classifier", null, null),
  step("bigram-char", "A bigram table", [15, 1], [15, 5]),
  step("attention-toy", "One attention head", [16, 1], [16, 6]),
  step("nano-gpt", "A whole GPT", [1, 1], [14, 8]),
];
const none = { visited: [], done: [] };

test("the panel lists the steps in order, the model on screen marked, one not served as coming and not clickable", () => {
  const html = pathHtml(STEPS, "attention-toy", { visited: ["digits-mlp", "bigram-char"], done: ["bigram-char"] });
  const shown = text(html);
  assert.match(shown, /1\. A single neuron coming .*2\. A digit classifier visited .*3\. A bigram table ✓ done .*4\. One attention head you are here .*5\. A whole GPT/);
  assert.equal((html.match(/you are here/g) ?? []).length, 1);
  assert.match(html, /<li class="here"[^>]*aria-current="step">\s*<button type="button" data-path="attention-toy"/);
  assert.match(html, /data-path="neuron" title="neuron is not served here yet" disabled/);
  assert.doesNotMatch(html.replace(/data-path="neuron"[^>]*>/, ""), /disabled/);
  for (const s of STEPS) assert.match(html, new RegExp(`<img src="path/${s.model}\\.webp"`));
});

test("a model that is not a step says so, and the steps keep their marks", () => {
  const shown = text(pathHtml(STEPS, "shakespeare-char", { visited: ["nano-gpt"], done: [] }));
  assert.match(shown, /On screen now: shakespeare-char, which is not a step of the path\./);
  assert.doesNotMatch(shown, /you are here/);
  assert.match(shown, /5\. A whole GPT visited/);
  assert.doesNotMatch(text(pathHtml(STEPS, null, none)), /On screen now|you are here/);
});

test("walking a step's chapter marks it visited, its last step done; other chapters and other models change nothing", () => {
  let p = recordWalk(none, STEPS, "bigram-char", [15, 2]);
  assert.deepEqual(p, { visited: ["bigram-char"], done: [] });
  p = recordWalk(p, STEPS, "bigram-char", [15, 5]);
  assert.deepEqual(p, { visited: ["bigram-char"], done: ["bigram-char"] });
  assert.equal(recordWalk(p, STEPS, "bigram-char", [15, 5]), p);  // (nothing new: the same object, nothing to store)
  assert.equal(recordWalk(p, STEPS, "nano-gpt", null), p);  // the walkthrough closed
  assert.equal(recordWalk(p, STEPS, "shakespeare-char", [3, 1]), p);
  assert.equal(recordWalk(p, STEPS, "digits-mlp", [17, 1]), p);  // (no chapter of its own yet)
  const gpt = recordWalk(none, STEPS, "nano-gpt", [9, 2]);
  assert.deepEqual(gpt, { visited: ["nano-gpt"], done: [] });
  assert.deepEqual(recordWalk(gpt, STEPS, "nano-gpt", [14, 8]).done, ["nano-gpt"]);
  assert.deepEqual(recordWalk(none, STEPS, "nano-gpt", [15, 1]), none);  // beyond its part
});

test("opening a step with no chapter visits it; one with a chapter waits for its walkthrough", () => {
  assert.deepEqual(recordOpen(none, STEPS[1]), { visited: ["digits-mlp"], done: [] });
  assert.equal(recordOpen(none, STEPS[2]), none);
});

test("the next step is the next one this server has; the last step and models off the path have none", () => {
  assert.equal(nextStep(STEPS, "bigram-char")?.model, "attention-toy");
  assert.equal(nextStep(STEPS, "attention-toy")?.model, "nano-gpt");
  assert.equal(nextStep(STEPS, "nano-gpt"), null);
  assert.equal(nextStep(STEPS, "shakespeare-char"), null);
  const skip = STEPS.map((s) => (s.model === "digits-mlp" ? { ...s, served: false } : s));
  assert.equal(nextStep(skip, "neuron")?.model, "bigram-char");
  assert.equal(text(nextHtml(STEPS[3])), "Learning path: Next step: One attention head →");
  assert.match(nextHtml(STEPS[3]), /data-path="attention-toy"/);
});

test("stored progress is read back, and anything else stored is none", () => {
  assert.deepEqual(readProgress(JSON.stringify({ visited: ["a", 3], done: ["a"] })), { visited: ["a"], done: ["a"] });
  assert.deepEqual(readProgress(null), none);
  assert.deepEqual(readProgress("{not json"), none);
  assert.deepEqual(readProgress("[1]"), none);
});

test("the intro card offers the path on a served page only", () => {
  const info = { model: { name: "nano-gpt", n_params: 1, has_weights: true, description: "", config: { n_layer: 1, n_head: 1,
    n_embd: 4, vocab_size: 3, n_ctx: 6 } }, n_pos: 1, axes: {}, ops: {}, blocks: [], links: [], sections: [], bounds: [0, 0, 1, 1],
    max_display: { weight: 1, computed: 1 }, tokens: [0], token_strs: ["A"], prediction: null } as unknown as SceneInfo;
  assert.doesNotMatch(introHtml(info, false), /learning path/);
  offerPath(true);
  const card = introHtml(info, false);
  assert.match(text(card), /New to neural networks\? Start with the learning path/);
  assert.match(card, /data-intro="path"/);
  offerPath(false);
});

test("a snapshot of a step's model, or a neuron with the learner's weights, is on that step", () => {
  assert.equal(pathModel("nano-gpt@1200"), "nano-gpt");
  assert.equal(pathModel("neuron~1.5,-0.8,0.2"), "neuron");
  assert.equal(pathModel("bigram-char"), "bigram-char");
  assert.match(text(pathHtml(STEPS, "nano-gpt@1200", none)), /5\. A whole GPT you are here/);
  assert.deepEqual(recordWalk(none, STEPS, "attention-toy@300", [16, 6]), { visited: ["attention-toy"], done: ["attention-toy"] });
});
