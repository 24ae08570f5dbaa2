import { test } from "node:test";
import assert from "node:assert/strict";
import { formulaText, fromPlot, halfPlane, isLearnerName, learnerName, lineSegment, parsePoint, pointText, scoreText,
  sparkPoints, toPlot, trainStops, weightArrow } from "../src/neuronplot";

const close = (a: number[], b: number[], eps = 1e-9) => a.every((v, i) => Math.abs(v - b[i]) < eps);

test("a learner's neuron is named as Python names it: each number to 4 significant digits", () => {
  assert.equal(learnerName("neuron", [1.5, -0.8], 0.2), "neuron~1.5,-0.8,0.2");
  assert.equal(learnerName("neuron", [1.23456, -2], 0.5), "neuron~1.235,-2,0.5");  // views/decision.weights_name's example
  assert.equal(learnerName("neuron", [-0, 19.99], -20), "neuron~0,19.99,-20");  // (no "-0")
  assert.equal(learnerName("neuron", [0.01, 3.7999999523], 1.00600004), "neuron~0.01,3.8,1.006");  // float32 weights
  assert.ok(isLearnerName("neuron~1,2,3") && !isLearnerName("neuron") && !isLearnerName(undefined));
});

test("plot coordinates: x₁ rightwards, x₂ upwards, ±extent at the edges, and back", () => {
  assert.deepEqual(toPlot([-3, 3], 3, 320), [0, 0]);
  assert.deepEqual(toPlot([3, -3], 3, 320), [320, 320]);
  assert.deepEqual(toPlot([0, 0], 3, 320), [160, 160]);
  assert.deepEqual(toPlot([1.5, 0], 3, 320), [240, 160]);
  for (const p of [[1.2, 0.5], [-2.9, 2.2], [0, -3]] as [number, number][]) {
    assert.ok(close(fromPlot(toPlot(p, 3, 320), 3, 320), p));
  }
});

test("a clicked point is the input text rounded to 2 decimals, and an input text is its point", () => {
  assert.equal(pointText([1.23456, -0.5]), "1.23 -0.5");
  assert.equal(pointText([-0.001, 2.999]), "0 3");
  assert.deepEqual(parsePoint("1.2 0.5"), [1.2, 0.5]);
  assert.deepEqual(parsePoint(" -1, 2 "), [-1, 2]);
  assert.equal(parsePoint("1 2 3"), null);
  assert.equal(parsePoint("a b"), null);
  assert.equal(parsePoint(undefined), null);
});

test("the decision line is clipped to the plot's square", () => {
  assert.deepEqual(lineSegment([1, 0], -1, 3), [[1, -3], [1, 3]]);  // x₁ = 1: a vertical line
  assert.deepEqual(lineSegment([0, 2], 0, 3), [[3, 0], [-3, 0]]);  // x₂ = 0
  const diag = lineSegment([1, 1], 0, 3)!;  // x₁ + x₂ = 0: through two corners
  assert.ok(diag.every(([x, y]) => Math.abs(x + y) < 1e-12 && Math.abs(x) === 3));
  const [p, q] = lineSegment([3.8, 1.84], 1.01, 3)!;  // any line: both ends on the line and on the square's edge
  for (const [x, y] of [p, q]) {
    assert.ok(Math.abs(3.8 * x + 1.84 * y + 1.01) < 1e-9);
    assert.ok(Math.abs(Math.max(Math.abs(x), Math.abs(y)) - 3) < 1e-9);
  }
  assert.equal(lineSegment([1, 0], -5, 3), null);  // outside the plot
  assert.equal(lineSegment([0, 0], 1, 3), null);  // W = 0: no line
});

test("the half-planes: each side of the line, the two making the square", () => {
  const area = (ps: number[][]) => Math.abs(ps.reduce((s, p, i) => {
    const q = ps[(i + 1) % ps.length];
    return s + p[0] * q[1] - q[0] * p[1];
  }, 0)) / 2;
  const pos = halfPlane([1, 0], -1, 3, 1), neg = halfPlane([1, 0], -1, 3, -1);
  assert.equal(area(pos), 2 * 6);  // x₁ ≥ 1: 2 wide, 6 high
  assert.equal(area(neg), 4 * 6);
  assert.ok(pos.every(([x]) => x >= 1 - 1e-12) && neg.every(([x]) => x <= 1 + 1e-12));
  assert.equal(halfPlane([1, 0], -5, 3, 1).length, 0);  // the line beyond the square: all on one side
  assert.equal(area(halfPlane([1, 0], -5, 3, -1)), 36);
});

test("W's arrow starts on the line and points toward class 1's side", () => {
  const [from, to] = weightArrow([3.8, 1.84], 1.01, 3)!;
  assert.ok(Math.abs(3.8 * from[0] + 1.84 * from[1] + 1.01) < 1e-9);
  assert.ok(3.8 * to[0] + 1.84 * to[1] + 1.01 > 0);
  const dir = [to[0] - from[0], to[1] - from[1]];
  assert.ok(Math.abs(dir[0] * 1.84 - dir[1] * 3.8) < 1e-9);  // parallel to W: across the line
  assert.equal(weightArrow([0, 0], 1, 3), null);
});

test("the panel's texts: the score, the formula, when Train stops, the sparkline", () => {
  assert.equal(scoreText({ loss: 0.2134, accuracy: 57 / 60, points: Array(60).fill([0, 0]) }), "loss 0.213 · 57 of 60 points on their side");
  assert.equal(formulaText([3.8, -1.84], 1.01), "z = 3.8·x₁ − 1.84·x₂ + 1.01");
  assert.equal(formulaText([-1, 0], -0.5), "z = −1·x₁ + 0·x₂ − 0.5");
  assert.equal(trainStops(0.5, 0.4, 3), "");
  assert.match(trainStops(0.5, 0.49995, 3), /fell by less than 0.0001/);
  assert.match(trainStops(0.5, 0.6, 3), /fell by less than/);  // (a step that raises the loss stops too)
  assert.equal(trainStops(0.5, 0.4, 200), "200 steps");
  assert.equal(sparkPoints([1], 100, 28), "");
  assert.equal(sparkPoints([1, 0.5, 0], 100, 28), "0.0,2.0 50.0,14.0 100.0,26.0");
});
