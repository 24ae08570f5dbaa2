import { test } from "node:test";
import assert from "node:assert/strict";
import { abs, between, fromCentre, geodesic, layout, scaleAt, toCentre, type C, type TreeNode } from "../src/poincare";

const close = (a: C, b: C, eps = 1e-9) => assert.ok(abs([a[0] - b[0], a[1] - b[1]]) < eps, `${a} != ${b}`);
// Hyperbolic distance between two points of the disk.
const dist = (a: C, b: C) => 2 * Math.atanh(abs(toCentre(b, a)));

test("a Möbius move puts any point at the centre, and its inverse brings it back", () => {
  const a: C = [0.3, -0.5], z: C = [-0.2, 0.6];
  close(toCentre(a, a), [0, 0]);
  close(fromCentre(toCentre(z, a), a), z);
  // An isometry: distances stay.
  const w: C = [0.1, 0.1];
  assert.ok(Math.abs(dist(z, w) - dist(toCentre(z, a), toCentre(w, a))) < 1e-9);
});

test("children sit one step from their parent, all inside the disk, none on top of another", () => {
  const leaf = (): TreeNode => ({ children: [] });
  const tree: TreeNode = { children: [0, 1, 2].map(() => ({ children: [leaf(), leaf(), leaf()] })) };
  const pos = layout(tree, 1.3);
  assert.equal(pos.size, 13);
  for (const [k, p] of pos) {
    assert.ok(abs(p) < 1, k);
    if (k) {
      const parent = pos.get(k.includes(".") ? k.slice(0, k.lastIndexOf(".")) : "")!;
      assert.ok(Math.abs(dist(parent, p) - 1.3) < 1e-9, k);
    }
  }
  const pts = [...pos.values()];
  for (let i = 0; i < pts.length; i++) for (let j = i + 1; j < pts.length; j++) assert.ok(dist(pts[i], pts[j]) > 0.3);
});

test("re-centring glides along the geodesic: the same distance covered in equal times", () => {
  const a: C = [0.1, 0.2], b: C = [-0.5, 0.4];
  close(between(a, b, 0), a);
  close(between(a, b, 1), b, 1e-9);
  const half = between(a, b, 0.5);
  assert.ok(Math.abs(dist(a, half) - dist(half, b)) < 1e-9);
});

test("things shrink toward the rim, and geodesics are arcs unless they pass through the centre", () => {
  assert.equal(scaleAt([0, 0]), 1);
  assert.ok(scaleAt([0.9, 0]) < 0.2);
  assert.match(geodesic([0.2, 0], [0.5, 0], 100, 0, 0), /^M.*L/);
  assert.match(geodesic([0.2, 0.1], [0.1, 0.5], 100, 0, 0), /^M.*A/);
});
