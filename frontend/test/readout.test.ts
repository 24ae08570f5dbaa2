import { test } from "node:test";
import assert from "node:assert/strict";
import { lengthNote, readoutHtml, taskHint } from "../src/readout";
import { overviewHtml } from "../src/overview";
import type { SceneInfo } from "../src/scenedata";

const config = { n_layer: 3, n_head: 3, n_embd: 48, d_head: 16, vocab_size: 3, n_ctx: 11, task: "six letters from A, B, C; the model sorts them",
  task_tokens: 6, answer_tokens: 6 };

function info(tokens: string[]): SceneInfo {
  return { model: { name: "nano-gpt", n_params: 85728, param_parts: {}, has_weights: true, description: "", config }, n_pos: tokens.length,
    past: 0, axes: {}, ops: {}, blocks: [], links: [], sections: [], bounds: [0, 0, 1, 1], bands: [], max_display: { weight: 1, computed: 1 },
    tokens: tokens.map((t) => "ABC".indexOf(t)), token_strs: tokens,
    prediction: { position: tokens.length - 1, top: [{ id: 0, token: "A", prob: 0.99995303, percent: "99.99 %" },
      { id: 1, token: "B", prob: 4.5e-5, percent: "0.0045 %" }],
      answer: { ids: [0, 1, 1, 1, 2, 2], tokens: ["A", "B", "B", "B", "C", "C"], text: "ABBBCC", probs: [] } } };
}

test("the readout says the next token, its probability and the answer", () => {
  const html = readoutHtml(info([..."CBABBC"]));
  assert.match(html, /data-token="A">A</);
  assert.match(html, /99\.99 %/);
  assert.match(html, /data-answer="ABBBCC">ABBBCC</);
  assert.doesNotMatch(html, /trained on/);
  assert.equal(readoutHtml({ ...info([]), prediction: null }), "");
});

test("after an input and part of its answer, the answer says what is written and what comes", () => {
  const i = info([..."CBABBCAB"]);
  i.prediction!.answer!.written = 2;
  const html = readoutHtml(i);
  assert.match(html, /answer: 2 tokens written, 4 more fed back one by one/);
  assert.match(html, /data-answer="ABBBCC"><span class="ro-written">AB<\/span>BBCC</);
  assert.doesNotMatch(html, /trained on/);  // an input followed by part of its answer is the shape it learned
  assert.equal(lengthNote("nano-gpt", config, 12), "");
  assert.match(lengthNote("nano-gpt", config, 13), /this one has 13/);
});

test("the task is a hint, and another input length gets a note", () => {
  assert.equal(taskHint("nano-gpt", config), "nano-gpt: six letters from A, B, C; the model sorts them");
  assert.equal(lengthNote("nano-gpt", config, 6), "");
  assert.match(lengthNote("nano-gpt", config, 2), /trained on inputs of 6 tokens; this one has 2/);
  assert.match(readoutHtml(info(["A", "B"])), /trained on inputs of 6 tokens/);
  assert.equal(taskHint("gpt2", { ...config, task: "" }), "");
});

test("the map nests each layer's attention and MLP under it", () => {
  const s = (key: string, title: string, parent: string | null = null) => ({ key, title, parent, x0: 0, x1: 1, y0: 0, y1: 1 });
  const html = overviewHtml([s("embed", "Embedding"), s("blocks.0", "Layer 0"), s("blocks.0.attn", "Attention", "blocks.0"),
    s("blocks.0.mlp", "MLP", "blocks.0"), s("output", "Output")]);
  assert.match(html, /data-section="\*">Whole model/);
  assert.match(html, /<li><button[^>]*data-section="blocks.0">Layer 0<\/button><button[^>]*data-section="blocks.0.attn">Attention/);
  assert.equal((html.match(/<li>/g) ?? []).length, 3);
});

test("an edited pass's readout says clean → edited, and where the predictions changed", () => {
  const i = info([..."CBABBC"]);
  i.prediction!.top = [{ id: 2, token: "C", prob: 0.61, percent: "61 %" }];
  i.prediction!.answer = null;
  i.clean_prediction = { position: 5, top: [{ id: 0, token: "A", prob: 0.9999, percent: "99.99 %" }], answer: null };
  i.predicted = ["A", "B", "B", "B", "C", "C"];
  i.clean_predicted = ["A", "B", "B", "B", "C", "A"];
  const html = readoutHtml(i);
  assert.match(html, /clean → edited/);
  assert.match(html, /data-clean-token="A">A<\/span>\s*<span class="ro-prob">99\.99 %<\/span> →<\/span> <span class="ro-token" data-token="C">C<\/span>/);
  assert.match(html, /changed at 1 of 6 positions: after position 5, A → C/);
  assert.doesNotMatch(readoutHtml(info([..."CBABBC"])), /clean/);
});
