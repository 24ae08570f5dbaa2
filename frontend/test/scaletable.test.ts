import { test } from "node:test";
import assert from "node:assert/strict";
import { scaleRow, scaleTableHtml, type ScaleRow } from "../src/scaletable";

const text = (html: string) => html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();

// What the server says of GPT-2 small and nano-gpt (ModelConfig.param_parts, its n_params and config).
const gpt2: ScaleRow = { name: "gpt2", n_embd: 768, n_head: 12, d_head: 64, n_layer: 12, vocab_size: 50257, n_ctx: 1024,
  n_params: 124_439_808, parts: { embedding: 39_383_808, attention: 28_348_416, mlp: 56_669_184, other: 38_400 } };
const nano: ScaleRow = { name: "nano-gpt", n_embd: 48, n_head: 3, d_head: 16, n_layer: 3, vocab_size: 3, n_ctx: 11,
  n_params: 85_728, parts: { embedding: 816, attention: 28_224, mlp: 56_016, other: 672 } };

/** The rows of the table's body: each cell's text. */
function cells(html: string): string[][] {
  const body = html.slice(html.indexOf("<tbody>"), html.indexOf("</tbody>"));
  return body.split("</tr>").filter((r) => r.includes("<t")).map((r) =>
    r.split(/<\/t[hd]>/).filter((c) => c.includes("<t")).map(text));
}

test("a row per model: its shape and its parameters, in the order given", () => {
  const html = scaleTableHtml([nano, gpt2]);
  assert.deepEqual(cells(html), [
    ["nano-gpt", "48", "3", "16", "3", "3", "11", "85.7 k", "33% 65%"],
    ["gpt2", "768", "12", "64", "12", "50257", "1024", "124.4 M", "32% 23% 46%"],
  ]);
  assert.match(text(html), /^model C heads head size layers vocab context parameters where they live/);
});

test("each part's share: a segment as wide as its share, titled with its exact count and percent", () => {
  const html = scaleTableHtml([gpt2]);
  const segs = [...html.matchAll(/class="scale-part scale-part-(\w+)" style="flex-grow:([\d.]+)" title="([^"]+)"/g)]
    .map((m) => [m[1], Number(m[2]), m[3]] as const);
  assert.deepEqual(segs.map(([k]) => k), ["embedding", "attention", "mlp", "other"]);
  const total = 124_439_808;
  segs.forEach(([k, w]) => void assert.ok(Math.abs(w - (100 * gpt2.parts[k]) / total) < 1e-4, k));
  assert.equal(segs[0][2], "gpt2: embedding 39,383,808 parameters (32%): the token and position embeddings (and an unembedding of its own)");
  assert.equal(segs[3][2], "gpt2: norms 38,400 parameters (0.031%): the layer norms' gains and biases");
  assert.match(html, /aria-label="embedding 32%, attention 23%, MLP 46%, norms 0.031%"/);
  assert.match(html, /<td class="scale-params" title="124,439,808 parameters">/);
});

test("the legend names the three parts' colours and the norms; the log bars grow with the count", () => {
  const html = scaleTableHtml([nano, gpt2]);
  assert.equal(text(html.slice(html.indexOf('<div class="scale-legend">'))), "embedding attention MLP norms");
  const widths = [...html.matchAll(/scale-log-fill" style="width:([\d.]+)%/g)].map((m) => Number(m[1]));
  // log10 of 85,728 and 124,439,808 on a track from 10^3 to 10^9
  assert.deepEqual(widths, [((Math.log10(85_728) - 3) / 6) * 100, ((Math.log10(124_439_808) - 3) / 6) * 100].map((w) => Number(w.toFixed(1))));
});

test("with fly, each row and its name hold the model's index for the click that flies to it; without, none", () => {
  const html = scaleTableHtml([nano, gpt2], { fly: true });
  assert.deepEqual([...html.matchAll(/<tr class="scale-row" data-name="([^"]+)" data-model="(\d)">/g)].map((m) => [m[1], m[2]]),
    [["nano-gpt", "0"], ["gpt2", "1"]]);  // (the walkthrough lights a row by its model's name)
  assert.match(html, /<button type="button" class="scale-name" data-model="1" title="fly to gpt2">gpt2<\/button>/);
  assert.doesNotMatch(scaleTableHtml([nano, gpt2]), /data-model|<button/);
  assert.equal(scaleTableHtml([]), "");
});

test("names are escaped, and a row is made from what the server says of a model", () => {
  const row = scaleRow({ name: "<b>x</b>", n_params: 10, param_parts: { embedding: 4, mlp: 6 },
    config: { n_layer: 1, n_head: 2, n_embd: 8, vocab_size: 5, n_ctx: 4, d_head: 4 } });
  assert.deepEqual(row, { name: "<b>x</b>", n_embd: 8, n_head: 2, d_head: 4, n_layer: 1, vocab_size: 5, n_ctx: 4, n_params: 10,
    parts: { embedding: 4, mlp: 6 } });
  const html = scaleTableHtml([row]);
  assert.match(html, /&lt;b&gt;x&lt;\/b&gt;/);
  assert.doesNotMatch(html, /<b>x/);
});
