// What the camera frames: a model's first view, all of it, one section, several models side by side. Pure
// functions of the placed scenes and the screen's shape; the view flies to what they return.
import * as THREE from "three";
import { blockWidth, type BuiltModel } from "./blocks";
import { framePad, type SceneData, type Section } from "./scenedata";
import { TITLE } from "./scenelabels";

export interface Placed { data: SceneData; built: BuiltModel; offsetX: number }

/** The screen the box is for: its aspect (width / height) and its height in pixels. */
export interface Screen { aspect: number; height: number }

/** The first view of one model: its first section (the input and its embeddings; a weight matrix far wider
 * than the token path, GPT-2's 50,257-wide W_E, is left out) and the top of what follows, with room above for
 * the model's title. */
export function homeBox(p: Placed, screen: Screen): THREE.Box3 {
  const info = p.data.info;
  const first = info.sections.find((s) => !s.parent);
  if (!first || info.blocks.length <= WHOLE_AT_HOME) return wholeBox(p);
  if (!info.model.has_weights) return stackBox(p, first, screen);
  const inside = info.blocks.map((b, i) => ({ b, i })).filter(({ b }) => b.y <= first.y0 && b.y >= first.y1);
  const path = Math.max(...inside.filter(({ b }) => b.kind !== "weight").map(({ b }) => blockWidth(b)), 1);
  const box = new THREE.Box3();
  for (const { b, i } of inside) if (b.kind !== "weight" || b.cols <= 4 * path) box.union(p.built.boxes[i]);
  const h = first.y0 - first.y1;
  box.min.y = first.y1 - 0.2 * h;  // a glimpse of the first layer, below
  const next = info.sections.find((s) => !s.parent && s.y0 < first.y1);
  if (next && inside.some(({ b }) => b.wrap)) {  // an image (square, where tokens are a strip): with the top of the layer
    box.min.y = Math.min(box.min.y, next.y0 - 0.25 * (next.y0 - next.y1));  // it feeds below, and the titles above
    box.max.y = first.y0 + framePad(info.sections, first);
    return withTitles(withLayerTitles(box, screen), screen);
  }
  box.max.y = first.y0 + 0.3 * h;  // the section's and the model's titles, above, clear of the toolbar
  box.min.x -= 0.08 * (box.max.x - box.min.x);  // and the section's title, which starts left of its frame
  return box;
}

/** A model of at most this many blocks (a neuron's five) is shown whole at first. */
const WHOLE_AT_HOME = 8;

/** A model without numbers: its stack of layers and the token path into it (without the vocabulary-wide
 * embedding and unembedding matrices), with its title. */
function stackBox(p: Placed, first: { y0: number }, screen: Screen): THREE.Box3 {
  const sections = p.data.info.sections;
  const layers = sections.filter((s) => sections.some((k) => k.parent === s.key));  // a layer holds its attention and MLP
  const x0 = Math.min(...layers.map((s) => s.x0)), x1 = Math.max(...layers.map((s) => s.x1));
  // The stack from the top, at most four screen-widths tall: GPT-2's twelve layers whole, GPT-3's first ones.
  const y1 = Math.max(Math.min(...layers.map((s) => s.y1)), first.y0 - 4 * (x1 - x0) / screen.aspect);
  const box = withTitles(new THREE.Box3(new THREE.Vector3(x0 + p.offsetX - 6, y1, -4), new THREE.Vector3(x1 + p.offsetX + 6, first.y0, 1)), screen);
  return withLayerTitles(box, screen);
}

/** A box with room on its left for the layers' titles beside their frames ("Layer 10", 15px bold), on a phone too. */
export function withLayerTitles(box: THREE.Box3, screen: Screen): THREE.Box3 {
  const px = LAYER_TITLE / Math.max(screen.aspect * screen.height, 1);
  if (px < 0.5) box.min.x -= (px / (1 - px)) * (box.max.x - box.min.x);
  return box;
}

/** Pixels a layer's title takes beside its frame. */
const LAYER_TITLE = 80;

/** All of one model, its title included. */
export function wholeBox(p: Placed): THREE.Box3 {
  const [x0, y0, x1, y1] = p.data.info.bounds;
  const h = y0 - y1;
  return new THREE.Box3(new THREE.Vector3(x0 + p.offsetX - 6, y1 - 6, -4), new THREE.Vector3(x1 + p.offsetX + 6, y0 + 0.04 * h + 12, 1));
}

/** A box with room above it for its models' titles (see TITLE), plus a margin, as a share of the view's height;
 * and `right` px on its right (for the name of the last of several models side by side, a thin one: its title runs
 * right from its top-left corner). */
export function withTitles(box: THREE.Box3, screen: Screen, right = 0): THREE.Box3 {
  const px = TITLE.offset + TITLE.height + 16;
  const f = Math.min(0.5, px / Math.max(screen.height, 1));
  box.max.y += (f / (1 - f)) * (box.max.y - box.min.y);
  const fx = Math.min(0.5, right / Math.max(screen.aspect * screen.height, 1));
  box.max.x += (fx / (1 - fx)) * (box.max.x - box.min.x);
  return box;
}

/** Every placed model whole. */
export function allBox(placed: Placed[]): THREE.Box3 {
  return placed.map(wholeBox).reduce((a, b) => a.union(b));
}

/** One section with its title, and as deep as its blocks (stacked heads stand in front of it). */
export function sectionBox(p: Placed, key: string): THREE.Box3 | null {
  const s = p.data.info.sections.find((x) => x.key === key);
  if (!s) return null;
  const box = new THREE.Box3(new THREE.Vector3(s.x0 + p.offsetX - 6, s.y1 - 6, -4), new THREE.Vector3(s.x1 + p.offsetX + 6, s.y0 + 8, 1));
  p.data.info.blocks.forEach((b, i) => {
    const x = b.x + p.offsetX;
    if (x >= box.min.x && x <= box.max.x && b.y <= box.max.y && b.y >= box.min.y && p.built.boxes[i]) {
      box.min.z = Math.min(box.min.z, p.built.boxes[i].min.z);
      box.max.z = Math.max(box.max.z, p.built.boxes[i].max.z);
    }
  });
  return box;
}

/** How far the camera may zoom out: this many times the distance that frames every placed model whole. Beyond
 * it, the model would shrink to a speck while its labels stayed their size. */
export const ZOOM_OUT = 1.6;

/** The section a camera looks at, for a view `viewW` × `viewH` world units wide and high around the point looked
 * at (x, y): the smallest section around that point that fills at least a quarter of the view across or down;
 * null when none does (the view shows more than one section: the whole model, say). */
export function sectionAt(sections: Section[], offsetX: number, x: number, y: number, viewW: number, viewH: number): string | null {
  const around = sections.filter((s) => x >= s.x0 + offsetX && x <= s.x1 + offsetX && y <= s.y0 && y >= s.y1)
    .filter((s) => Math.max((s.x1 - s.x0) / viewW, (s.y0 - s.y1) / viewH) >= 0.25);
  around.sort((a, b) => (a.x1 - a.x0) * (a.y0 - a.y1) - (b.x1 - b.x0) * (b.y0 - b.y1));
  return around[0]?.key ?? null;
}

/** A rectangle on screen, in pixels. */
export interface Rect { left: number; top: number; right: number; bottom: number }

/** The part of `view` that none of `covers` hides (panels, a toolbar laid over it): each cover that overlaps it cuts
 * away the side it sits on, whichever cut keeps the most of the view. */
export function uncovered(view: Rect, covers: Rect[]): Rect {
  let r = { ...view };
  for (const c of covers) {
    if (c.right <= r.left || c.left >= r.right || c.bottom <= r.top || c.top >= r.bottom) continue;
    const cuts: Rect[] = [
      { ...r, top: Math.max(r.top, c.bottom) }, { ...r, bottom: Math.min(r.bottom, c.top) },
      { ...r, left: Math.max(r.left, c.right) }, { ...r, right: Math.min(r.right, c.left) },
    ];
    const area = (x: Rect) => Math.max(0, x.right - x.left) * Math.max(0, x.bottom - x.top);
    r = cuts.reduce((a, b) => (area(b) > area(a) ? b : a));
  }
  return r;
}
