// The page's explanations read a pass through a HeldPass: the numbers it holds, NaN (and a note of what is wanted)
// for the rest, so that one request fetches all that a cell's explanation reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { float32s } from "../src/cells";
import { explainCells, HeldPass, type GraphJson, type PassSource, subSlice } from "../src/explain";

// x [pos 2, d 3] -> y = x·W [pos 2, o 2]
const graph: GraphJson = {
  past: 0,
  axes: { pos: { label: "T", color: "#111", named_by: "input" }, d: { label: "C", color: "#222", size: 3 },
    o: { label: "O", color: "#333", size: 2 } },
  ops: { linear: { formula: "y = x·W", description: "a matrix product" } },
  tensors: [
    { name: "x", title: "X", kind: "input", axes: ["pos", "d"], op: null, inputs: [], attrs: {}, shape: [null, 3] },
    { name: "W", title: "Weight", kind: "weight", axes: ["d", "o"], op: null, inputs: [], attrs: {}, shape: [3, 2] },
    { name: "y", title: "Y", kind: "activation", axes: ["pos", "o"], op: "linear", inputs: ["x", "W"], attrs: { contract: ["d"] } },
  ],
};
const whole: Record<string, { axes: string[]; shape: number[]; values: number[] }> = {
  x: { axes: ["pos", "d"], shape: [2, 3], values: [1, 2, 3, 4, 5, 6] },
  W: { axes: ["d", "o"], shape: [3, 2], values: [1, 0, 0, 1, 1, 1] },
  y: { axes: ["pos", "o"], shape: [2, 2], values: [4, 5, 10, 11] },
};

function fresh(): { p: HeldPass; src: PassSource; asked: string[][] } {
  const p = new HeldPass("m", graph, [7, 8], ["a", "b"], new Map(Object.entries(whole).map(([n, t]) => [n, t.shape])));
  const asked: string[][] = [];
  const src: PassSource = {
    pass: async () => p,
    fetch: async (q) => {
      asked.push(q.wanted.map((w) => `${w.tensor}${JSON.stringify(w.at)}`));
      for (const w of q.wanted) q.hold(w.tensor, w.at, subSlice(whole[w.tensor], w.at));
      for (const id of q.wantedNames) q.names.set(id, `t${id}`);
    },
  };
  return { p, src, asked };
}

test("a cell's explanation fetches what it reads in one request, and the next cell of the row none", async () => {
  const { src, asked } = fresh();
  const [e] = await explainCells(src, [{ tensor: "y", index: [1, 0] }]);
  assert.equal(e.value, 10);
  assert.equal(e.formula!.result, 10);
  assert.equal(e.formula!.text, "Σ C x·W (3 terms) = 10");
  assert.deepEqual(asked, [['y{"pos":1,"o":0}', 'x{"pos":1}', 'W{"o":0}']]);
  assert.deepEqual(e.index.map((i) => i.name), ["t8", null]);  // the position's token, named as fetched
  const [f] = await explainCells(src, [{ tensor: "x", index: [1, 2] }]);  // held already: the row of x
  assert.equal(f.value, 6);
  assert.equal(asked.length, 1);
});

test("a region: its numbers first, then its cell of largest magnitude's", async () => {
  const { src, asked } = fresh();
  const [e] = await explainCells(src, [{ tensor: "y", region: { pos: [0, 1], o: [0, 1] } }]);
  assert.deepEqual(e.index.map((i) => i.i), [1, 1]);
  assert.equal(asked.length, 2);
  const [one] = await explainCells(fresh().src, [{ tensor: "y", region: { pos: [0, 0], o: [1, 1] } }]);
  assert.deepEqual(one.index.map((i) => i.i), [0, 1]);  // a one-cell region is that cell
});

test("a held slice answers any slice inside it; anything else is NaN and wanted", () => {
  const { p } = fresh();
  p.hold("x", {}, whole.x);
  assert.deepEqual(Array.from(p.select("x", { d: 1 }).values), [2, 5]);
  const missing = p.select("W", { o: 1 });
  assert.deepEqual(missing.shape, [3]);
  assert.ok(Array.from(missing.values).every(Number.isNaN));
  assert.deepEqual(p.wanted, [{ tensor: "W", at: { o: 1 } }]);
});

test("float32 numbers from base64, as /api/cells sends them", () => {
  const b64 = Buffer.from(new Float32Array([1.5, -2, Number.NEGATIVE_INFINITY]).buffer).toString("base64");
  assert.deepEqual([...float32s(b64)], [1.5, -2, Number.NEGATIVE_INFINITY]);
});

test("an add of three tensors (a parallel block) and a channel past a partial rotary's", async () => {
  const g: GraphJson = {
    past: 0,
    axes: { pos: { label: "T", color: "#1" }, d_head: { label: "A", color: "#2", size: 4 } },
    ops: { add: { formula: "a + b", description: "add" }, rotary: { formula: "rot", description: "turn" } },
    tensors: [
      ...["s", "f", "m"].map((name) => ({ name, title: name.toUpperCase(), kind: "input" as const, axes: ["pos", "d_head"], op: null,
        inputs: [], attrs: {} })),
      { name: "r", title: "R", kind: "activation", axes: ["pos", "d_head"], op: "add", inputs: ["s", "f", "m"], attrs: {} },
      { name: "q", title: "Q", kind: "activation", axes: ["pos", "d_head"], op: "rotary", inputs: ["s"],
        attrs: { inv_freq: [1], offset: 0, rotary_dims: 2 } },
    ],
  };
  const n = { s: [1, 2, 3, 4], f: [10, 20, 30, 40], m: [100, 200, 300, 400], r: [111, 222, 333, 444], q: [1, 2, 3, 4] };
  const p = new HeldPass("m", g, [0], ["a"], new Map(Object.keys(n).map((k) => [k, [1, 4]])));
  for (const [k, v] of Object.entries(n)) p.hold(k, {}, { axes: ["pos", "d_head"], shape: [1, 4], values: v });
  const src: PassSource = { pass: async () => p, fetch: async () => assert.fail("all held") };
  const [add, still] = await explainCells(src, [{ tensor: "r", index: [0, 2] }, { tensor: "q", index: [0, 3] }]);
  assert.equal(add.formula!.text, "a + b + c = 3 + 30 + 300 = 333");
  assert.equal(add.formula!.template, "a + b + c");  // the op reads a + b; this use of it adds three
  assert.deepEqual(add.sources.map((x) => x.tensor), ["s", "f", "m"]);
  assert.equal(still.formula!.text, "channel 3 does not turn (only the first 2 do): 4");
});
