// The scene's public API: place models, find and frame their blocks, pick the cell under a point.
import * as THREE from "three";
import { buildModel, pick, slabGeometry } from "./blocks";
import { HALO, regionRects } from "./highlight";
import { allBox, uncovered, wholeBox, withLayerTitles, withTitles, type Placed, type Rect, type Screen } from "./framing";
import { hideTooltip, showExplanation, unpin } from "./hover";
import { THREE_QUARTER } from "./view";
import { sceneLabels, titleNameWidth } from "./scenelabels";
import type { BlockInfo, SceneData } from "./scenedata";
import type { Explanation, Region } from "./tooltip";
import { app, type CellRef } from "./state";

export function clearScene() {
  for (const p of app.placed) {
    app.view!.scene.remove(p.built.group);
    p.built.dispose();
  }
  app.placed = [];
  app.selected = null;
  unpin();
}

export function place(datas: SceneData[]) {
  clearScene();
  // Side by side, each model 0.3 of the tallest one's height from the next, so that at full height they
  // stand apart and each one's title, at its top-left corner, has room before the next one's.
  const tallest = Math.max(...datas.map((d) => d.info.bounds[1] - d.info.bounds[3]));
  let x = 0;
  for (const data of datas) {
    const [bx0, , bx1] = data.info.bounds;
    const p = { data, built: buildModel(data, x - bx0), offsetX: x - bx0 };
    app.view!.scene.add(p.built.group);
    app.placed.push(p);
    x += bx1 - bx0 + Math.max(40, (bx1 - bx0) * 0.25, datas.length > 1 ? tallest * 0.3 : 0);
  }
  app.labels!.set(app.placed.flatMap((p) => sceneLabels(p.data, p.offsetX, app.placed.length > 1)));
}


export function screen(): Screen {
  return { aspect: app.view!.camera.aspect, height: app.view!.canvas.clientHeight };
}

/** The bounds of every placed model. */
export function modelsBox(): THREE.Box3 {
  return allBox(app.placed);
}

/** Every placed model whole, with room for the titles (several models: the last one's name runs right of it). */
export function everything(): THREE.Box3 {
  const last = app.placed[app.placed.length - 1];
  return withTitles(allBox(app.placed), screen(), app.placed.length > 1 ? titleNameWidth(last.data.info.model.name) + 12 : 0);
}

export function findBlock(tensor: string): { placed: Placed; block: number } | null {
  for (const p of app.placed) {
    const i = p.data.info.blocks.findIndex((b) => b.tensor === tensor);
    if (i >= 0) return { placed: p, block: i };
  }
  return null;
}

export function pickAt(clientX: number, clientY: number): (CellRef & { distance: number }) | null {
  const ray = app.view!.rayAt(clientX, clientY);
  let best: (CellRef & { distance: number }) | null = null;
  for (const p of app.placed) {
    const hit = pick(p.built, p.data, ray, p.offsetX);
    if (hit && (!best || hit.distance < best.distance)) best = { placed: p, ...hit };
  }
  return best;
}

/** Where a displayed cell is on screen, in client pixels (null: behind the camera). */
export function cellScreenPoint(c: CellRef): { x: number; y: number } | null {
  const b = c.placed.data.info.blocks[c.block];
  const grid = b.slabs?.[c.slab] ? [b.slabs[c.slab][2], b.slabs[c.slab][3]] : [b.cols, b.rows];
  const g = slabGeometry(b, c.slab);
  const s = app.view!.project(new THREE.Vector3(g.x + c.placed.offsetX + (c.col + 0.5) * b.cols / grid[0],
    b.y - (c.row + 0.5) * b.rows / grid[1], g.z));
  const r = app.view!.canvas.getBoundingClientRect();
  return s ? { x: s.x + r.left, y: s.y + r.top } : null;
}

// ---- What the walkthrough (and any caller) drives: frame, highlight, reveal, where a cell is ----

/** The camera pose that frames these tensors' blocks (null: none of them is drawn). */
export function framingOf(tensors: string[], margin = 1.3, regions: Region[] = [], close = false): [THREE.Vector3, THREE.Vector3] | null {
  const box = new THREE.Box3(), lit = new THREE.Box3();
  for (const t of tensors) {
    const hit = findBlock(t);
    if (hit) box.union(hit.placed.built.boxes[hit.block]);
  }
  for (const r of regions) {  // and the cells lit on other blocks (a weight's one column, say), not those blocks whole
    const hit = drawnBlock(r.tensor);
    for (const rect of hit ? regionRects(hit.block, r) : []) {
      lit.expandByPoint(new THREE.Vector3(rect.x + hit!.offsetX - HALO, rect.y + HALO, rect.z));
      lit.expandByPoint(new THREE.Vector3(rect.x + hit!.offsetX + rect.w + HALO, rect.y - rect.h - HALO, rect.z - 1));
    }
  }
  // close: the lit cells are what matters (a dot product's row, column and result); when the blocks around them are
  // far bigger (a 192-long MLP row), frame the lit cells and leave the rest of the blocks to run off the view.
  const area = (b: THREE.Box3) => (b.max.x - b.min.x) * (b.max.y - b.min.y);
  const all = close && !lit.isEmpty() && area(box.clone().union(lit)) > 4 * area(lit) ? lit : box.union(lit);
  return all.isEmpty() ? null : app.view!.framing(all, margin, undefined, freeRect());
}

/** The part of the canvas (its own pixels) that nothing laid over it hides: the toolbar, the legend, the scale
 * view's table, the map, the embedding map and the edits panel while they are open, and the walkthrough's panel or sheet wherever
 * it sits over the view. */
export function freeRect(also: string[] = []): Rect {
  const c = app.view!.canvas.getBoundingClientRect();
  const covers = ["#toolbar", "#legend", "#walk", "#scalebars", "#map", "#embmap", "#edits", "#digitpad", "#neuronplot", ...also].map((s) => document.querySelector<HTMLElement>(s))
    .filter((e): e is HTMLElement => !!e && !e.hidden && e.offsetParent !== null).map((e) => e.getBoundingClientRect())
    .map((r) => ({ left: r.left - c.left, top: r.top - c.top - 4, right: r.right - c.left, bottom: r.bottom - c.top + 4 }));
  return uncovered({ left: 0, top: 0, right: c.width, bottom: c.height }, covers);
}

/** The tensors whose block labels win every contest for a place on screen (the walkthrough's subjects; null: none). */
export function labelSubjects(tensors: string[] | null) {
  app.labels?.focus(tensors);
}

/** Draw these tensors' blocks on one colour scale (the largest of theirs) in the activations' palette (a scene
 * coloured by the loss's gradients: in theirs), so the same number has the same colour in each (null: each block its
 * own scale and palette). */
export function shareScale(tensors: string[] | null) {
  for (const p of app.placed) {
    const blocks = (tensors ?? []).map((t) => p.data.info.blocks.findIndex((b) => b.tensor === t)).filter((i) => i >= 0);
    const grads = p.data.info.loss != null, info = p.data.info.blocks;
    const scale = Math.max(0, ...blocks.map((i) => (grads ? info[i].grad ?? 0 : info[i].scale)));
    const kind = grads ? "gradient" as const : "activation" as const;
    p.built.restyle(blocks.length > 1 ? new Map(blocks.map((i) => [i, { kind, scale }])) : null);
  }
  app.view!.requestRender();
}

/** Draw the flow pulse's front through every placed model: 0 (its input) to 1 (its output); −1: none. */
export function pulseAt(front: number) {
  for (const p of app.placed) p.built.material.uniforms.uPulse.value = front;
  app.view!.requestRender();
}

/** Put the camera here at once. */
export function setCamera(position: THREE.Vector3, target: THREE.Vector3) {
  app.view!.flyTo(position, target, 0);
}

function drawnBlock(tensor: string): { block: BlockInfo; offsetX: number } | null {
  const hit = findBlock(tensor);
  return hit ? { block: hit.placed.data.info.blocks[hit.block], offsetX: hit.placed.offsetX } : null;
}

/** Light these regions (a target is outlined) and fade every block they are not on; null or [] clears. */
export function highlight(regions: Region[] | null) {
  if (!regions?.length) {
    app.highlights.clear();
    for (const p of app.placed) p.built.focus(null);
  } else {
    app.highlights.set(regions, drawnBlock);
    for (const p of app.placed) {
      const keep = new Set(regions.map((r) => p.data.info.blocks.findIndex((b) => b.tensor === r.tensor)).filter((i) => i >= 0));
      p.built.focus(keep);
    }
  }
  app.view!.requestRender();
}

/** Show a block's cells up to `fraction`, in rows or columns, or its mask up to that row (tensor null: every
 * block whole). */
export function reveal(tensor: string | null, along: "rows" | "cols" | "mask" = "rows", fraction = 1) {
  for (const p of app.placed) p.built.reveal(null);
  const hit = tensor ? findBlock(tensor) : null;
  if (hit) hit.placed.built.reveal(hit.block, along, fraction);
  app.view!.requestRender();
}

/** The middle of a region on screen, in client pixels (null: not drawn, or behind the camera). */
export function regionScreenPoint(r: Region): { x: number; y: number } | null {
  const hit = drawnBlock(r.tensor);
  const rect = hit ? regionRects(hit.block, r)[0] : undefined;
  if (!hit || !rect) return null;
  const s = app.view!.project(new THREE.Vector3(rect.x + hit.offsetX + rect.w / 2, rect.y - rect.h / 2, rect.z));
  const c = app.view!.canvas.getBoundingClientRect();
  return s ? { x: s.x + c.left, y: s.y + c.top } : null;
}

/** Open the tooltip of an explained cell beside it (false: the cell is not on screen). */
export function openTooltip(e: Explanation, cell: Region): boolean {
  const p = regionScreenPoint(cell);
  if (p) showExplanation(e, p.x, p.y);
  return p !== null;
}

export function closeTooltip() {
  hideTooltip();
}

/** Fly the camera to a region of a tensor (a head of a block, say), and select the block. */
export function flyToRegion(r: Region, margin = 1.4) {
  const hit = findBlock(r.tensor);
  if (!hit) return;
  const box = new THREE.Box3();
  for (const rect of regionRects(hit.placed.data.info.blocks[hit.block], r)) {
    box.expandByPoint(new THREE.Vector3(rect.x + hit.placed.offsetX, rect.y, rect.z));
    box.expandByPoint(new THREE.Vector3(rect.x + hit.placed.offsetX + rect.w, rect.y - rect.h, rect.z - 1));
  }
  // (clear of the panels, the Across-layers panel included: its "click: fly to the head" shows the head beside it)
  app.view!.flyTo(...app.view!.framing(box, margin, undefined, freeRect(["#insights"])));
}

/** The camera on every placed model whole, as a solid: the three-quarter view, clear of the panels. */
export function wholeFraming(): [THREE.Vector3, THREE.Vector3] {
  const box = app.placed.length === 1 ? withLayerTitles(everything(), screen()) : everything();  // (and its layers' titles)
  return app.view!.framing(box, 1.02, undefined, freeRect(), THREE_QUARTER);
}

/** The camera framing one placed model whole with its title above it (a scale view's model, by name or index), in
 * the part of the view that the panels (the table, the toolbar, the walkthrough) leave free; null: not shown. */
export function framingOfModel(which: string | number, margin = 1.05): [THREE.Vector3, THREE.Vector3] | null {
  const p = typeof which === "number" ? app.placed[which] : app.placed.find((x) => x.data.info.model.name === which);
  if (!p) return null;
  const free = freeRect(), h = Math.max(free.bottom - free.top, 1);  // the title's room: in the part left free
  return app.view!.framing(withTitles(wholeBox(p), { aspect: (free.right - free.left) / h, height: h }), margin, undefined, free);
}
