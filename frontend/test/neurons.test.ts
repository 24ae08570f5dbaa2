import { test } from "node:test";
import assert from "node:assert/strict";
import { modelChoiceHtml } from "../src/intro";
import { contextHtml, type Neuron, neuronHtml, signed } from "../src/neurons";

const text = (html: string) => html.replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim();

test("effects keep two significant digits below 1, with their sign", () => {
  assert.deepEqual([signed(0.01234), signed(-0.5), signed(2), signed(-12.345)], ["+0.012", "-0.50", "+2.00", "-12.35"]);
});

test("a context marks the character the neuron fired on, and shows newlines", () => {
  assert.equal(contextHtml("a\nb<c", 2), "a↵<mark>b</mark>&lt;c");
  assert.equal(contextHtml("xy", 1), "x<mark>y</mark>");
});

test("the panel lists the contexts and the tokens pushed up and down, with bars scaled to the largest effect", () => {
  const n: Neuron = {
    model: "m", layer: 1, index: 42, tensor: "blocks.1.mlp.hook_post",
    contexts: [{ text: "the king", mark: 4, activation: 2.5 }], contexts_note: "where it fired most",
    boosted: [{ id: 1, token: "k", effect: 2 }, { id: 2, token: "q", effect: 1 }],
    suppressed: [{ id: 3, token: "␣", effect: -4 }], effect_note: "direct effect",
  };
  const html = neuronHtml(n);
  assert.match(text(html), /What does neuron 1\.42 do\?/);
  assert.match(html, /the <mark>k<\/mark>ing/);
  assert.match(text(html), /2\.50/);
  assert.match(html, /width:50\.0%/);  // k: 2 of the largest |effect|, 4
  assert.match(html, /width:100\.0%/);
  assert.match(text(html), /Next tokens it pushes up k \+2\.00 q \+1\.00 …and down ␣ -4\.00/);
  const none = neuronHtml({ ...n, contexts: null, contexts_note: "m has no stored contexts" });
  assert.doesNotMatch(none, /nr-contexts/);
  assert.match(text(none), /m has no stored contexts/);
});

test("the intro offers every served model with weights, each with what it does, the shown one pressed", () => {
  const config = (task: string) => ({ n_layer: 1, n_head: 1, n_embd: 1, vocab_size: 1, n_ctx: 1, d_head: 1, task });
  const models = [
    { name: "nano-gpt", has_weights: true, description: "", config: config("sorts letters") },
    { name: "shakespeare-char", has_weights: true, description: "", config: config("writes English-like text") },
    { name: "gpt2", has_weights: false, description: "GPT-2", config: config("") },
  ];
  const html = modelChoiceHtml("nano-gpt", models);
  assert.match(text(html), /Try a model: nano-gpt sorts letters shakespeare-char writes English-like text$/);
  assert.match(html, /data-model="nano-gpt" aria-pressed="true"/);
  assert.match(html, /data-model="shakespeare-char" aria-pressed="false"/);
  assert.equal(modelChoiceHtml("nano-gpt", models.slice(0, 1)), "");  // one model: nothing to choose
});
