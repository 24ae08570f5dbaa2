import { test } from "node:test";
import assert from "node:assert/strict";
import { headsHtml, lossSvg, metricSvg, metricText, snapshotAt, snapshotText, statusText, type TrainingState } from "../src/training";

const snap = (step: number, loss: number | null, accuracy: number) =>
  ({ step, name: `nano-gpt@${step}`, loss, lr: loss === null ? null : 5e-4, metrics: { accuracy } });

function state(over: Partial<TrainingState> = {}): TrainingState {
  return { version: 7, status: "running", message: null, model: "nano-gpt", seed: 3407, steps: 3000, steps_done: 4, every: 2,
    speed: null, settings: [{ label: "optimiser", value: "AdamW" }], probe: "CBABBC", loss_steps: [1, 2, 3, 4],
    losses: [1.1, 0.9, 0.7, 0.61111], snapshots: [snap(0, null, 0), snap(2, 0.9, 0.1), snap(4, 0.61111, 0.3401920438957476)],
    fractions: ["accuracy"], formation: [
      { layer: 0, head: 0, label: "L0H0", step: 0, pattern: "blocks.0.attn.hook_pattern" },
      { layer: 0, head: 1, label: "L0H1", step: 2, pattern: "blocks.0.attn.hook_pattern" },
      { layer: 1, head: 0, label: "L1H0", step: 2, pattern: "blocks.1.attn.hook_pattern" },
      { layer: 1, head: 1, label: "L1H1", step: null, pattern: "blocks.1.attn.hook_pattern" }],
    formation_rule: "the first snapshot from which …", trainable: [], ...over };
}

test("the status line and a snapshot read as a learner reads them, a share in %", () => {
  assert.equal(statusText(state()), "nano-gpt: running · step 4 of 3,000 · loss 0.6111 · accuracy 34.0 % · full speed");
  assert.equal(statusText(state({ status: "paused", speed: 20 })), "nano-gpt: paused · step 4 of 3,000 · loss 0.6111 · accuracy 34.0 %");
  assert.match(statusText(state({ status: "idle" })), /No run yet/);
  assert.equal(snapshotText(snap(0, null, 0), ["accuracy"]), "step 0 · initial weights · accuracy 0.0 %");
  assert.equal(metricText("validation loss", 1.23456, ["accuracy"]), "1.235");
});

test("the loss curve has a point per loss and says the last; the metric a dot per snapshot", () => {
  const loss = lossSvg(state(), 2);
  assert.match(loss, /<polyline class="tr-loss" data-n="4"/);
  assert.match(loss, /data-loss="0.61111" data-step="4">loss 0.6111 at step 4</);
  assert.match(loss, /class="tr-selected"/);
  // The marks: one line per step with heads formed after the start, naming them; none at step 0.
  assert.equal((loss.match(/class="tr-mark"/g) ?? []).length, 1);
  assert.match(loss, /data-step="2">.*L0H1 L1H0<\/text>/);
  assert.match(lossSvg(state({ losses: [], loss_steps: [] }), null), /starts at the first step/);
  // Marks close together: their names in two rows above the plot, a third without room named by its tooltip only.
  const close = state({ formation: [30, 60, 90].map((step, head) => ({ layer: 1, head, label: `L1H${head}`, step, pattern: "p" })) });
  const marks = lossSvg(close, null).match(/<g class="tr-mark".*?<\/g>/g) ?? [];
  assert.equal(marks.length, 3);
  assert.deepEqual(marks.map((m) => /<text [^>]*y="(\d+)"/.exec(m)?.[1] ?? null), ["8", "17", null]);
  assert.match(marks[2], /<title>L1H2: pattern formed at step 90<\/title>/);
  assert.doesNotMatch(metricSvg(close, "accuracy", null), /<text[^>]*>L1H0/);  // (the lines only, under the loss's names)
  const acc = metricSvg(state(), "accuracy", null);
  assert.equal((acc.match(/class="tr-dot"/g) ?? []).length, 3);
  assert.match(acc, /accuracy 34\.0 % at step 4</);
  assert.match(acc, />100 %</);  // a share: drawn from 0 to 100 %
});

test("each head says when its pattern formed, a button to its snapshot", () => {
  const html = headsHtml(state());
  assert.match(html, /grid-template-columns: repeat\(2, 1fr\)/);  // a row per layer
  assert.match(html, /data-formed="0"[^>]*><b>L0H0<\/b> from the start/);
  assert.match(html, /data-formed="2"[^>]*><b>L0H1<\/b> step 2/);
  assert.match(html, /<b>L1H1<\/b> still changing/);
  assert.match(html, /formed \(so far\)/);
  assert.doesNotMatch(headsHtml(state({ status: "done" })), /so far/);
  assert.equal(snapshotAt(state().snapshots, 3), 1);
  assert.equal(snapshotAt(state().snapshots, 4), 2);
});

test("a model without attention (digits-mlp): its held-out accuracy drawn as a share, no heads section at all", () => {
  const digits = (step: number, loss: number | null, acc: number) =>
    ({ step, name: `digits-mlp@${step}`, loss, lr: null, metrics: { "test accuracy": acc } });
  const st = state({ model: "digits-mlp", status: "done", steps: 300, steps_done: 300, probe: "", formation: [],
    fractions: ["test accuracy"], snapshots: [digits(0, null, 0.1556), digits(300, 0.17, 0.90556)] });
  assert.equal(headsHtml(st), "");
  assert.match(statusText(st), /digits-mlp: done · step 300 of 300 · loss 0\.6111 · test accuracy 90\.6 %$/);
  const svg = metricSvg(st, "test accuracy", null);
  assert.match(svg, />test accuracy 90\.6 % at step 300</);
  assert.match(svg, />100 %</);
  assert.match(svg, />test accuracy at each snapshot</);
  // A loss (bigram-char's validation loss) is not a share: its own range, four significant digits.
  assert.equal(metricText("validation loss", 2.49213, []), "2.492");
});
