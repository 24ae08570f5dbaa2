import { test } from "node:test";
import assert from "node:assert/strict";
import { cellRegion, regionRects } from "../src/highlight";
import type { BlockInfo } from "../src/scenedata";

function block(over: Partial<BlockInfo>): BlockInfo {
  return { tensor: "t", short: "t", title: "t", kind: "activation", op: null, group: "", layer: null,
    axes: ["pos", "d_model", null], cols: 6, rows: 48, depth: 1, merged: false, residual: false, x: 10, y: -20, z: 0,
    z_step: 0, x_step: 0, causal: false, dims: [["pos", 6], ["d_model", 48]], tile: [1, 1], scale: 1,
    slabs: [[0, 0, 6, 48]], ...over };
}

test("a displayed cell is one tensor cell, or a whole tile when downsampled", () => {
  assert.deepEqual(cellRegion(block({}), 0, 2, 7), { pos: [2, 2], d_model: [7, 7] });
  const wide = block({ axes: ["vocab", "d_model", null], cols: 1500, rows: 16, dims: [["vocab", 1500], ["d_model", 16]],
    tile: [3, 1], slabs: [[0, 0, 500, 16]] });
  assert.deepEqual(cellRegion(wide, 0, 499, 2), { vocab: [1497, 1499], d_model: [2, 2] });
  const heads = block({ axes: ["pos", "d_head", "head"], depth: 3, z_step: 2, dims: [["pos", 6], ["head", 3], ["d_head", 16]] });
  assert.deepEqual(cellRegion(heads, 2, 1, 5), { pos: [1, 1], d_head: [5, 5], head: [2, 2] });
});

test("a region becomes one rectangle per slab, snapped to displayed cells", () => {
  const b = block({});
  // The row x[t = 3, :] of a pos × d_model block: one column of cells.
  assert.deepEqual(regionRects(b, { tensor: "t", role: "input", ranges: { pos: [3, 3], d_model: [0, 47] } }),
    [{ x: 13, y: -20, w: 1, h: 48, z: 0 }]);
  const heads = block({ axes: ["pos", "d_head", "head"], rows: 16, depth: 3, z_step: 2, slabs: null,
    dims: [["pos", 6], ["head", 3], ["d_head", 16]] });
  const rects = regionRects(heads, { tensor: "t", role: "input", ranges: { pos: [0, 5], head: [1, 2], d_head: [4, 4] } });
  assert.deepEqual(rects.map((r) => [r.y, r.h, r.z]), [[-24, 1, -2], [-24, 1, -4]]);
  const side = block({ axes: ["pos", "d_head", "head"], rows: 16, depth: 3, x_step: 7, slabs: null,
    dims: [["pos", 6], ["head", 3], ["d_head", 16]] });  // heads side by side: each slab 7 cells to the right
  const sideRects = regionRects(side, { tensor: "t", role: "input", ranges: { pos: [2, 2], head: [1, 2], d_head: [0, 15] } });
  assert.deepEqual(sideRects.map((r) => [r.x, r.z]), [[10 + 7 + 2, 0], [10 + 14 + 2, 0]]);
  const wide = block({ axes: ["vocab", "d_model", null], cols: 1500, rows: 16, tile: [3, 1], slabs: [[0, 0, 500, 16]] });
  const [r] = regionRects(wide, { tensor: "t", role: "weight", ranges: { vocab: [7, 7], d_model: [0, 15] } });
  assert.deepEqual([r.x, r.w], [10 + 2 * 3, 3]);  // vocab 7 lies in displayed column 2, 3 cells wide
});
