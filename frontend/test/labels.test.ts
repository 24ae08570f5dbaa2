import { test } from "node:test";
import assert from "node:assert/strict";
import * as THREE from "three";
import { aroundPlaces, BLOCK_GAP, cellsOnScreen, meets, nearestPlaces, projector, RectGrid, screenRect, SPECK, type Rect } from "../src/labels";

/** A deterministic stream of numbers in [0, 1). */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

const grown = (r: Rect, by: number): Rect => [r[0] - by, r[1] - by, r[2] + by, r[3] + by];

test("two rectangles meet when they overlap both across and down, by more than the slack", () => {
  assert.equal(meets([0, 0, 10, 10], [5, 5, 15, 15]), true);
  assert.equal(meets([0, 0, 10, 10], [10, 0, 20, 10]), false);  // touching edges do not overlap
  assert.equal(meets([0, 0, 10, 10], [9, 9, 20, 20], 1), false);  // 1 × 1 px: within a slack of 1
  assert.equal(meets([0, 0, 10, 10], [8, 8, 20, 20], 1), true);
  assert.equal(meets([0, 0, 10, 10], [2, 20, 8, 30]), false);  // across, not down
});

test("a box's screen rectangle is around its eight corners; a corner behind the camera gives none", () => {
  const box = new THREE.Box3(new THREE.Vector3(1, -2, -1), new THREE.Vector3(3, 0, 0));
  // (an oblique projection: depth moves a point right and up, as seen from the upper right)
  const oblique = (p: THREE.Vector3) => ({ x: 10 * p.x - 4 * p.z, y: -10 * p.y + 3 * p.z });
  assert.deepEqual(screenRect(box, oblique), [10, -3, 34, 20]);
  assert.equal(screenRect(box, (p) => (p.z < 0 ? null : oblique(p))), null);
});

test("the projector lands where three.js projects a point, in canvas pixels, and drops what is behind the camera", () => {
  const cam = new THREE.PerspectiveCamera(45, 1280 / 800, 0.1, 1000);
  cam.position.set(30, 20, 80);
  cam.lookAt(5, -10, 0);
  cam.updateMatrixWorld();
  const project = projector(cam, 1280, 800);
  for (const p of [new THREE.Vector3(0, 0, 0), new THREE.Vector3(12, -40, -3), new THREE.Vector3(-20, 5, 10)]) {
    const ndc = p.clone().project(cam), q = project(p)!;
    assert.ok(Math.abs(q.x - (ndc.x + 1) / 2 * 1280) < 1e-6 && Math.abs(q.y - (1 - ndc.y) / 2 * 800) < 1e-6, `${p.toArray()}`);
  }
  assert.equal(project(new THREE.Vector3(60, 50, 200)), null);  // behind the camera
});

test("a block's cells on screen: clipped to the canvas; none when off it or a speck", () => {
  assert.deepEqual(cellsOnScreen([-10, 5, 50, 900], 400, 300), [0, 5, 50, 300]);
  assert.equal(cellsOnScreen([500, 5, 600, 50], 400, 300), null);  // right of the canvas
  assert.equal(cellsOnScreen([10, 10, 10 + SPECK - 0.5, 10 + SPECK - 0.5], 400, 300), null);  // a speck
  assert.deepEqual(cellsOnScreen([10, 10, 11, 60], 400, 300), [10, 10, 11, 60]);  // thin but long: a line of cells
  assert.equal(cellsOnScreen(null, 400, 300), null);
});

test("the grid finds what brute force finds, and forgets what it is told to", () => {
  const rnd = random(7), grid = new RectGrid(32), all: Rect[] = [];
  const rect = (size: number): Rect => {
    const x = rnd() * 1300 - 20, y = rnd() * 820 - 20;
    return [x, y, x + rnd() * size, y + rnd() * size];
  };
  for (let i = 0; i < 300; i++) {
    const r = rect(i % 10 === 0 ? 400 : 40);
    all.push(r);
    grid.add(r);
  }
  for (let i = 0; i < 2000; i++) {
    const q = rect(80);
    assert.equal(grid.hits(q), all.some((r) => meets(q, r)), `${q}`);
  }
  const big = all[0];
  const q: Rect = [(big[0] + big[2]) / 2, (big[1] + big[3]) / 2, (big[0] + big[2]) / 2 + 1, (big[1] + big[3]) / 2 + 1];
  const others = all.slice(1).some((r) => meets(q, r));
  assert.equal(grid.hits(q), true);
  assert.equal(grid.hits(q, big), others);  // all but this one
  grid.remove(big);
  assert.equal(grid.hits(q), others);
});

test("a block's name around it: above it at either end, beside its top, under it; each clear of the block", () => {
  const block: Rect = [100, 200, 160, 300], w = 40, h = 15;
  const places = aroundPlaces(block, w, h);
  assert.deepEqual(places.map((p) => p.side), ["above", "above", "left", "right", "under"]);
  assert.deepEqual(places[0], { left: 100, top: 200 - (BLOCK_GAP + 1) - 15, side: "above" });  // at its top-left
  assert.equal(places[1].left + w, 160);  // at its top-right, right-aligned
  const more = aroundPlaces(block, w, h, BLOCK_GAP + 1, true);
  assert.ok(more.length > places.length);
  for (const p of more) {
    const r: Rect = [p.left, p.top, p.left + w, p.top + h];
    assert.equal(meets(grown(r, BLOCK_GAP), block), false, `${p.side} ${r}`);
  }
});

test("the nearest places around a packed block come nearest first, all clear of it", () => {
  const block: Rect = [300, 300, 320, 306], w = 55, h = 15, gap = BLOCK_GAP + 1;
  const places = nearestPlaces(block, w, h, gap, 60, 5);
  assert.ok(places.length > 100);
  const dist = (p: { left: number; top: number }) => Math.hypot(Math.max(0, block[0] - (p.left + w), p.left - block[2]),
    Math.max(0, block[1] - (p.top + h), p.top - block[3]));
  for (let i = 0; i < places.length; i++) {
    const p = places[i], r: Rect = [p.left, p.top, p.left + w, p.top + h];
    assert.equal(meets(grown(r, BLOCK_GAP), block), false, `${r}`);
    assert.ok(dist(p) <= 60 + gap);
    if (i) assert.ok(dist(places[i - 1]) <= dist(p) + 1e-9);
  }
  assert.ok(dist(places[0]) < gap + 5);  // right beside it
  // Room left only far to the left of a crowd of blocks all around it: found there, the nearest such place.
  const crowd = new RectGrid();
  for (const r of [[240, 150, 460, 299], [240, 307, 460, 460], [321, 299, 460, 307], [240, 299, 299, 307]] as Rect[]) crowd.add(r);
  const far = nearestPlaces(block, w, h, gap, 120, 5);
  const free = far.find((p) => !crowd.hits(grown([p.left, p.top, p.left + w, p.top + h], BLOCK_GAP)));
  assert.ok(free && free.left + w + BLOCK_GAP <= 240 && free.left + w + BLOCK_GAP > 235, JSON.stringify(free));
});
