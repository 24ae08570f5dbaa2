import { test } from "node:test";
import assert from "node:assert/strict";
import { introHtml, modelSentence, readableInput } from "../src/intro";
import type { SceneInfo } from "../src/scenedata";

const text = (html: string) => html.replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim();

function info(name: string, description: string, token_strs: string[], extra: Partial<SceneInfo> = {}, task?: string): SceneInfo {
  return { model: { name, n_params: 1, has_weights: true, description, config: { n_layer: 2, n_head: 2, n_embd: 8, vocab_size: 9, n_ctx: 8, task } },
    n_pos: token_strs.length, axes: {}, ops: {}, blocks: [], links: [], sections: [], bounds: [0, 0, 1, 1],
    max_display: { weight: 1, computed: 1 }, tokens: token_strs.map((_, i) => i), token_strs, prediction: null, ...extra } as SceneInfo;
}

test("a Llama's intro card reads as sentences, its input with spaces, not token markers", () => {
  const card = text(introHtml(info("llama", "Hugging Face llama model llama", ["The", "␣quick", "␣brown", "␣fox"]), false));
  assert.match(card, /llama: a Hugging Face llama model\. Its input, “The quick brown fox”, enters at the top as 4 tokens, flows down/);
  assert.doesNotMatch(card, /␣/);
  assert.doesNotMatch(card, /model llama Its/);
});

test("the decoded text is preferred, long inputs end in …, and any description ends in a full stop", () => {
  assert.equal(readableInput({ text: "Hello, world", token_strs: ["Hello", ",", "␣world"] }), "Hello, world");
  assert.equal(readableInput({ token_strs: ["a", "↵", "b"] }), "a b");
  assert.equal(readableInput({ text: "x".repeat(100) }, 10), `${"x".repeat(9)}…`);
  assert.equal(modelSentence("gpt2", "GPT-2 small (OpenAI, 2019)"), "gpt2: GPT-2 small (OpenAI, 2019).");
  assert.equal(modelSentence("tiny", "Hugging Face GPT-2 model /tmp/tiny"), "tiny: a Hugging Face GPT-2 model.");
  assert.equal(modelSentence("x", ""), "");
  const nano = text(introHtml(info("nano-gpt", "", [..."CBABBC"], {}, "six letters from A, B, C; the model sorts them"), true));
  assert.match(nano, /It was trained on one task: six letters from A, B, C; the model sorts them\. Its input, “CBABBC”, enters/);
  assert.match(nano, /Tap any cell/);
});
