import { test } from "node:test";
import assert from "node:assert/strict";
import { CANCEL_REASON, elapsedText, isCancelled, newTask, progressFraction, progressText, shouldShow, SHOW_AFTER_MS,
  type TaskProgress } from "../src/progress";

const at = (done: number, total: number, what: string, waiting = false): TaskProgress => ({ done, total, what, waiting, seconds: 2 });

test("the box says which unit of how many the server is computing, in the server's own word", () => {
  assert.equal(progressText(at(3, 16, "layer")), "Computing layer 3 of 16…");
  assert.equal(progressText(at(5, 290, "weights")), "Computing weights 5 of 290…");
  assert.equal(progressText(at(16, 16, "layer")), "Finishing (layer 16 of 16 done)…");  // (what follows the last report)
  assert.equal(progressText(at(0, 0, "")), "Computing…");
  assert.equal(progressText(null), "Computing…");
  assert.equal(progressText(at(0, 0, "", true)), "Waiting for a free worker…");
});

test("the bar fills with the units done, and has no fill to show without a total", () => {
  assert.equal(progressFraction(at(4, 16, "layer")), 0.25);
  assert.equal(progressFraction(at(16, 16, "layer")), 1);
  assert.equal(progressFraction(at(20, 16, "layer")), 1);
  assert.equal(progressFraction(at(0, 0, "")), null);
  assert.equal(progressFraction(at(0, 16, "layer", true)), null);
  assert.equal(progressFraction(null), null);
});

test("the time so far reads in tenths, then seconds, then minutes", () => {
  assert.equal(elapsedText(1234), "1.2 s");
  assert.equal(elapsedText(-5), "0.0 s");
  assert.equal(elapsedText(42_900), "42 s");
  assert.equal(elapsedText(65_000), "1 min 05 s");
});

test("the box shows after a second, and only for a computation the server knows", () => {
  assert.equal(shouldShow(SHOW_AFTER_MS - 1, true), false);
  assert.equal(shouldShow(SHOW_AFTER_MS, true), true);
  assert.equal(shouldShow(5000, false), false);  // a long poll, or an answer that needs no computing
});

test("a cancelled request is told apart from a failure", () => {
  assert.equal(isCancelled(CANCEL_REASON), true);
  assert.equal(isCancelled(new DOMException("signal is aborted without reason", "AbortError")), true);
  assert.equal(isCancelled(new Error("unknown model 'x'")), false);
  assert.equal(isCancelled(null), false);
});

test("task names are random and in the characters the server keeps", () => {
  const a = newTask(), b = newTask();
  assert.match(a, /^[A-Za-z0-9_-]{1,64}$/);
  assert.notEqual(a, b);
});
