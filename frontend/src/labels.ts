// Text over the 3D view: block names and shapes, section titles, tokens. HTML, positioned each frame;
// a label shows only when what it names is big enough on screen, so GPT-3 is not a wall of text, and only where it
// covers neither another label nor any block's cells (each block's 3D box projected to the screen).
import * as THREE from "three";
import type { View } from "./view";

export interface Label {
  anchor: THREE.Vector3;   // world point at the label's top-left (bottom-left with `above`)
  worldSize: number;       // width of what it names, in world units
  minPixels: number;       // shown when that width covers at least this many pixels
  html: string;
  cls: string;
  compact?: string;        // shown instead of `html` while what it names is smaller than `fullPixels`
  fullPixels?: number;
  above?: boolean;         // sits above the anchor rather than below it
  align?: "left" | "center" | "right";  // which side of the text the anchor is on (default left)
  priority?: number;       // placed before lower priorities when labels collide (default 0)
  charWidth?: number;      // pixels per character, for collisions (default: 12 px text)
  offsetY?: number;        // pixels up (negative) or down from the anchor, whatever the zoom
  offsetX?: number;        // pixels left (negative) or right of it, whatever the zoom
  height?: number;         // pixels tall, for collisions (default: one line)
  width?: number;          // pixels wide, for a label that wraps (CSS sets its width); it shows only whole on screen
  widths?: { full: number; compact: number };  // pixels wide of each form, for collisions (a model's title: two lines)
  namesFirst?: boolean;    // placed with the others of its priority that have it: all in their short forms, then
                           // each grows to its full form where there is room (the models' titles: every name first)
  box?: { dy: number; h: number };  // for collisions: where its CSS draws it, from the anchor down to its top, and how tall
  whole?: boolean;         // shown only whole on screen
  data?: Record<string, string>;
  group?: string;          // labels shown all together or not at all (one axis's names: half of them would mislead)
  also?: { size: number; min?: number; max?: number };  // and shown only while `size` world units cover from min
                                                        // up to (not including) max pixels
  alt?: { anchor: THREE.Vector3; align: "left" | "center" | "right"; offsetY?: number };  // where else it may go when its
                                                                                         // place is taken
  of?: THREE.Box3;         // the block it names (world box): its place taken, it may go around that block's rectangle on
                           // screen (above it, beside it, under it). Every block's box is also where no label goes.
}
// (charWidth, height, width, widths and box are estimates, for a label the page cannot measure: each label is measured
// as drawn, with its class, once per text.)

/** A label of what the walkthrough's step is about wins over every other (and shows however small its block). */
export const SUBJECT_PRIORITY = 20;

const SHIFT = { left: "0", center: "-50%", right: "-100%" };

/** A rectangle on the canvas, in its CSS pixels: left, top, right, bottom. */
export type Rect = [number, number, number, number];

/** Pixels kept between a label and any block's cells. */
export const BLOCK_GAP = 1;
/** A block smaller than this on screen in both directions has no cells to read: labels may cover it. */
export const SPECK = 2;

/** Whether two rectangles overlap (by more than `slack` pixels, both across and down). */
export function meets(a: Rect, b: Rect, slack = 0): boolean {
  return Math.min(a[2], b[2]) - Math.max(a[0], b[0]) > slack && Math.min(a[3], b[3]) - Math.max(a[1], b[1]) > slack;
}

/** Where a world box lands on the canvas: the rectangle around its eight corners projected; null if a corner is behind the
 * camera. */
export function screenRect(box: THREE.Box3, project: (p: THREE.Vector3) => { x: number; y: number } | null,
  tmp = new THREE.Vector3()): Rect | null {
  const r: Rect = [Infinity, Infinity, -Infinity, -Infinity];
  for (let k = 0; k < 8; k++) {
    const q = project(tmp.set(k & 1 ? box.max.x : box.min.x, k & 2 ? box.max.y : box.min.y, k & 4 ? box.max.z : box.min.z));
    if (!q) return null;
    r[0] = Math.min(r[0], q.x); r[1] = Math.min(r[1], q.y); r[2] = Math.max(r[2], q.x); r[3] = Math.max(r[3], q.y);
  }
  return r;
}

/** A camera's projection to canvas pixels (as View.project), for many points: its matrices composed once, and one point
 * object reused (read it before the next call). */
export function projector(cam: THREE.Camera, w: number, h: number): (p: THREE.Vector3) => { x: number; y: number } | null {
  const m = new THREE.Matrix4().multiplyMatrices(cam.projectionMatrix, cam.matrixWorldInverse).elements;
  const out = { x: 0, y: 0 };
  return (p) => {
    const iw = 1 / (m[3] * p.x + m[7] * p.y + m[11] * p.z + m[15]);
    const z = (m[2] * p.x + m[6] * p.y + m[10] * p.z + m[14]) * iw;
    if (z > 1 || z < -1) return null;  // behind the camera, or beyond its far plane
    out.x = ((m[0] * p.x + m[4] * p.y + m[8] * p.z + m[12]) * iw + 1) / 2 * w;
    out.y = (1 - (m[1] * p.x + m[5] * p.y + m[9] * p.z + m[13]) * iw) / 2 * h;
    return out;
  };
}

/** What of a block's rectangle shows on a w × h canvas and has cells to read: clipped to the canvas; null when off it
 * or a speck (under SPECK pixels both across and down). */
export function cellsOnScreen(r: Rect | null, w: number, h: number): Rect | null {
  if (!r || (r[2] - r[0] < SPECK && r[3] - r[1] < SPECK)) return null;
  const c: Rect = [Math.max(r[0], 0), Math.max(r[1], 0), Math.min(r[2], w), Math.min(r[3], h)];
  return c[2] > c[0] && c[3] > c[1] ? c : null;
}

/** Rectangles on a canvas, filed by the square cells of a grid that they touch (what is left of or above the canvas, by its
 * first column or row), so that asking whether a rectangle meets any of them reads only its own neighbourhood. */
export class RectGrid {
  private cells = new Map<number, Rect[]>();
  constructor(private cell = 64) {}

  private span(r: Rect): [number, number, number, number] {
    const c = this.cell;
    return [Math.max(0, Math.floor(r[0] / c)), Math.max(0, Math.floor(r[1] / c)), Math.max(0, Math.floor(r[2] / c)),
      Math.max(0, Math.floor(r[3] / c))];
  }

  add(r: Rect): void {
    const [i0, j0, i1, j1] = this.span(r);
    for (let j = j0; j <= j1; j++) {
      for (let i = i0; i <= i1; i++) {
        const k = j * 65536 + i, list = this.cells.get(k);
        if (list) list.push(r);
        else this.cells.set(k, [r]);
      }
    }
  }

  /** Takes back a rectangle filed (this very one). */
  remove(r: Rect): void {
    const [i0, j0, i1, j1] = this.span(r);
    for (let j = j0; j <= j1; j++) {
      for (let i = i0; i <= i1; i++) {
        const list = this.cells.get(j * 65536 + i), k = list ? list.indexOf(r) : -1;
        if (k >= 0) list!.splice(k, 1);
      }
    }
  }

  /** Whether `r` overlaps any rectangle filed (but `except`). */
  hits(r: Rect, except?: Rect): boolean {
    const [i0, j0, i1, j1] = this.span(r);
    for (let j = j0; j <= j1; j++) {
      for (let i = i0; i <= i1; i++) {
        const list = this.cells.get(j * 65536 + i);
        if (list?.some((b) => b !== except && meets(r, b))) return true;
      }
    }
    return false;
  }
}

/** Which side of its block a label goes: above it, beside it (left, right) or under it. */
export type Side = "above" | "left" | "right" | "under";

/** The places (top-left corners) where a w × h label of a block may go, clear of the block's rectangle by `gap`: above it
 * at its left end, then at its right end, left of its top, right of its top, under it; with `more` (a label that must
 * show), then a line higher, beside its middle, and under its right end. */
export function aroundPlaces(block: Rect, w: number, h: number, gap = BLOCK_GAP + 1, more = false):
  { left: number; top: number; side: Side }[] {
  const [l, t, r, b] = block, mid = (t + b) / 2 - h / 2;
  const out: { left: number; top: number; side: Side }[] = [
    { left: l, top: t - gap - h, side: "above" }, { left: r - w, top: t - gap - h, side: "above" },
    { left: l - gap - w, top: t, side: "left" }, { left: r + gap, top: t, side: "right" }, { left: l, top: b + gap, side: "under" },
  ];
  if (more) {
    out.push({ left: l, top: t - gap - 2 * h, side: "above" }, { left: l - gap - w, top: mid, side: "left" },
      { left: r + gap, top: mid, side: "right" }, { left: r - w, top: b + gap, side: "under" });
  }
  return out;
}

/** Every place (top-left corner, on a grid of `step` pixels) where a w × h label clears a block's rectangle by `gap`, up to
 * `reach` pixels from it, nearest first (at equal distances: above it, then beside it, then under it): where a label that
 * must show looks for room when its block is packed among others. */
export function nearestPlaces(block: Rect, w: number, h: number, gap = BLOCK_GAP + 1, reach = 150, step = 5): { left: number; top: number }[] {
  const [l, t, r, b] = block, out: { left: number; top: number; d: number; side: number }[] = [];
  for (let top = t - gap - h - reach; top <= b + gap + reach; top += step) {
    for (let left = l - gap - w - reach; left <= r + gap + reach; left += step) {
      const dx = Math.max(0, l - (left + w), left - r), dy = Math.max(0, t - (top + h), top - b);
      if (dx < gap && dy < gap) continue;  // on the block, or too close
      const d = Math.hypot(dx, dy);
      if (d <= reach + gap) out.push({ left, top, d, side: top + h <= t ? 0 : top >= b ? 2 : 1 });
    }
  }
  return out.sort((p, q) => p.d - q.d || p.side - q.side).map(({ left, top }) => ({ left, top }));
}

/** A label's rectangle as drawn, measured at its anchor (0, 0), left-aligned: where it and everything in it reach (a
 * model's title draws its text above its own box), and its own box's width (what translateX(-50%) moves by). */
interface Extent { left: number; top: number; right: number; bottom: number; width: number }

type Align = "left" | "center" | "right";

export class LabelLayer {
  private labels: Label[] = [];
  private nodes: HTMLDivElement[] = [];
  private tmp = new THREE.Vector3();
  private subjects: Set<string> | null = null;
  private extents = new Map<string, Extent>();  // by class and text
  private sized = new WeakMap<Label, Map<string, Extent>>();  // the same, by label and text
  private blocks: THREE.Box3[] = [];  // every block's box (the blocks the labels name), which no label covers
  /** covers: the boxes (canvas pixels: left, top, right, bottom) that controls laid over the view take, where no
   * label goes (it would be hidden under them). */
  constructor(private root: HTMLElement, private view: View, private maxVisible = 250, private covers: () => number[][] = () => []) {}

  set(labels: Label[]): void {
    this.labels = labels;
    this.blocks = [...new Set(labels.flatMap((l) => (l.of ? [l.of] : [])))];
    this.update();
  }

  /** The tensors whose labels win every contest while a step is shown (null: none). */
  focus(tensors: Iterable<string> | null): void {
    const next = tensors ? new Set(tensors) : null;
    const same = next?.size === this.subjects?.size && [...(next ?? [])].every((t) => this.subjects?.has(t));
    if (same) return;
    this.subjects = next;
    this.update();
  }

  private subject(l: Label): boolean {
    return !!l.data?.tensor && !!this.subjects?.has(l.data.tensor) && l.cls.startsWith("block");
  }

  private static className(l: Label): string {
    return `label ${l.cls}${l.above ? " above" : ""}`;
  }

  /** Each of these labels' texts measured as drawn (once per class and text; all at once: one layout). */
  private measure(todo: [Label, string][]): void {
    const fresh = new Map<string, { cls: string; html: string; waiting: [Label, string][] }>();
    for (const [l, html] of todo) {
      let mine = this.sized.get(l);
      if (mine?.has(html)) continue;
      const cls = LabelLayer.className(l), key = `${cls}\n${html}`, known = this.extents.get(key);
      if (known) {
        if (!mine) {
          mine = new Map();
          this.sized.set(l, mine);
        }
        mine.set(html, known);
        continue;
      }
      const f = fresh.get(key);
      if (f) f.waiting.push([l, html]);
      else fresh.set(key, { cls, html, waiting: [[l, html]] });
    }
    if (!fresh.size) return;
    if (this.extents.size > 20000) this.extents.clear();
    const list = [...fresh.entries()];
    const nodes = list.map(([, { cls, html }]) => {
      const d = document.createElement("div");
      d.className = cls;
      d.innerHTML = html;
      d.style.visibility = "hidden";
      this.root.appendChild(d);
      return d;
    });
    const o = this.root.getBoundingClientRect();
    list.forEach(([key, { waiting }], i) => {
      const d = nodes[i], own = d.getBoundingClientRect();
      let u: Rect | null = null;
      for (const e of [d, ...d.querySelectorAll("*")]) {
        const b = e.getBoundingClientRect();
        if (b.width <= 0 && b.height <= 0) continue;
        u = u ? [Math.min(u[0], b.left), Math.min(u[1], b.top), Math.max(u[2], b.right), Math.max(u[3], b.bottom)]
          : [b.left, b.top, b.right, b.bottom];
      }
      // (nothing drawn, as while the page is hidden: left to the estimates, and measured again later)
      if (!u) return;
      const e = { left: u[0] - o.left, top: u[1] - o.top, right: u[2] - o.left, bottom: u[3] - o.top, width: own.width };
      this.extents.set(key, e);
      for (const [l, html] of waiting) {
        let mine = this.sized.get(l);
        if (!mine) {
          mine = new Map();
          this.sized.set(l, mine);
        }
        mine.set(html, e);
      }
    });
    for (const d of nodes) d.remove();
  }

  update(): void {
    const cam = this.view.camera;
    const h = this.view.canvas.clientHeight, w = this.view.canvas.clientWidth, cw = w, ch = h;
    const perUnit = h / (2 * Math.tan(THREE.MathUtils.degToRad(cam.fov) / 2));
    type Shown = { l: Label; x: number; y: number; px: number; align: Align; rank: number; alt?: { x: number; y: number } };
    const shown: Shown[] = [];
    for (const l of this.labels) {
      const dist = this.tmp.copy(l.anchor).sub(cam.position).length();
      const px = (l.worldSize * perUnit) / Math.max(dist, 1e-9);
      const subject = this.subject(l);
      if (px < l.minPixels && !subject) continue;
      if (l.also) {
        const q = (l.also.size * perUnit) / Math.max(dist, 1e-9);
        if (q < (l.also.min ?? -Infinity) || q >= (l.also.max ?? Infinity)) continue;
      }
      const p = this.view.project(l.anchor, this.tmp);
      if (!p || p.x < -200 || p.x > w + 50 || p.y < -50 || p.y > h + 50) continue;
      const q = l.alt && this.view.project(l.alt.anchor, new THREE.Vector3());
      const dx = l.offsetX ?? 0;
      shown.push({ l, x: p.x + dx, y: p.y + (l.offsetY ?? 0), px, align: l.align ?? "left", rank: subject ? SUBJECT_PRIORITY : l.priority ?? 0,
        alt: q ? { x: q.x + dx, y: q.y + (l.alt!.offsetY ?? l.offsetY ?? 0) } : undefined });
    }
    shown.sort((a, b) => b.rank - a.rank || b.px - a.px);
    const todo: [Label, string][] = [];
    for (const { l } of shown) {
      todo.push([l, l.html]);
      if (l.compact !== undefined) todo.push([l, l.compact]);
    }
    this.measure(todo);

    // Every block's cells on screen, where no label goes (a block far smaller than a pixel or two is not even projected).
    const blocks = new RectGrid(), rects = new Map<THREE.Box3, Rect | null>();
    const project = projector(cam, w, h);
    const size = new THREE.Vector3(), corner = new THREE.Vector3();
    for (const b of this.blocks) {
      if (b.isEmpty()) continue;
      b.getSize(size);
      const near = Math.max(b.distanceToPoint(cam.position), 1e-9);
      if ((Math.max(size.x, size.y, size.z) * perUnit) / near < SPECK / 2) continue;
      const r = screenRect(b, project, corner);
      rects.set(b, r);
      const c = cellsOnScreen(r, w, h);
      if (c) blocks.add(c);
    }
    const rectOf = (b: THREE.Box3) => (rects.has(b) ? rects.get(b)! : screenRect(b, project, corner));

    // Largest first; a label that would cover one already placed, or a block's cells, falls back to its short form, else
    // to its other places, else hides.
    const taken = new RectGrid();  // the labels placed so far (each with a little air), and the controls over the view
    for (const c of this.covers()) taken.add([c[0], c[1], c[2], c[3]]);
    const text = (h: string) => h.replace(/<[^>]+>/g, "");
    const extent = (l: Label, html: string) => this.sized.get(l)?.get(html);
    const box = (l: Label, x: number, y: number, html: string, align: Align = l.align ?? "left", onScreen = l.width !== undefined): Rect | null => {
      const e = extent(l, html);
      let r: Rect;
      if (e) {  // as drawn: at the rounded anchor, moved left by its share of its own width
        const X = Math.round(x), Y = Math.round(y), shift = align === "right" ? e.width : align === "center" ? e.width / 2 : 0;
        r = [X - shift + e.left, Y + e.top, X - shift + e.right, Y + e.bottom];
      } else {  // (not measured: estimated)
        const t = text(html);
        const measured = l.widths && (l.compact !== undefined && html === l.compact ? l.widths.compact : l.widths.full);
        const w = l.width ?? measured ?? t.length * (l.charWidth ?? 6.6) + 6, h = l.box?.h ?? l.height ?? 15;
        const top = l.box ? y + l.box.dy : l.above ? y - h - 1 : y;
        const left = align === "right" ? x - w : align === "center" ? x - w / 2 : x - 2;
        r = [left, top, left + w, top + h];
      }
      if (onScreen && (r[0] < 0 || r[2] > cw || r[1] < 0 || r[3] > ch)) return null;  // never cut off
      return r;
    };
    const airy = (r: Rect): Rect => [r[0] - 2, r[1], r[2] + 4, r[3]];  // a little air between neighbours
    const clear = (r: Rect): Rect => [r[0] - BLOCK_GAP, r[1] - BLOCK_GAP, r[2] + BLOCK_GAP, r[3] + BLOCK_GAP];
    const free = (r: Rect | null, except?: Rect) => !!r && !taken.hits(airy(r), except) && !blocks.hits(clear(r));
    // (a label moved to its other place goes there only to be seen: whole on screen)
    let last: Rect = [0, 0, 0, 0];  // the place the last label that fitted took
    const fits = (l: Label, x: number, y: number, html: string, align: Align = l.align ?? "left", moved = false) => {
      const r = box(l, x, y, html, align, moved || l.width !== undefined || !!l.whole);
      if (!free(r)) return false;
      last = airy(r!);
      taken.add(last);
      return true;
    };
    const kept: Shown[] = [];
    const further = (s: Shown) => ({ x: s.x, y: s.y + (s.l.above ? -16 : 16) });  // one line out from what it names
    // Where else a label may go, in its short form, when its own place is taken: its other place (`alt`); one line
    // further out (a subject's, an activation's: pos emb beside W_E and W_pos); around the block it names.
    const elsewhere = function* (s: Shown, subject: boolean): Generator<{ x: number; y: number; align: Align }> {
      if (s.alt && s.l.alt) yield { ...s.alt, align: s.l.alt.align };
      if (subject || s.l.cls.includes("kind-activation")) yield { ...further(s), align: s.align };
      const r = s.l.of && rectOf(s.l.of), e = extent(s.l, s.l.compact ?? s.l.html);
      if (!r || !e) return;
      const lw = e.right - e.left, lh = e.bottom - e.top;
      for (const p of aroundPlaces(r, lw, lh, BLOCK_GAP + 1, subject)) {
        // (beside a block less tall than itself, a name would read as its neighbour's: only a subject's goes there)
        if (!subject && (p.side === "left" || p.side === "right") && r[3] - r[1] < lh) continue;
        yield { x: p.left - e.left, y: p.top - e.top, align: "left" };
      }
      if (!subject) return;
      // (a subject among packed blocks: the nearest room around its block)
      for (const p of nearestPlaces(r, lw, lh)) yield { x: p.left - e.left, y: p.top - e.top, align: "left" };
    };
    const shortOf = (s: Shown) => ({ ...s, px: Math.min(s.px, (s.l.fullPixels ?? Infinity) - 1) });
    // A block's name's own places, in a form (`html`): where it was put, just above the block's top-left corner (the
    // input's: under it); and just above (under) the block as drawn: its rectangle on screen (seen from above, a slab's
    // top face rises over that corner).
    const own = (s: Shown, html: string): { x: number; y: number; align: Align }[] => {
      const out = [{ x: s.x, y: s.y, align: s.align }];
      const r = s.l.of ? rectOf(s.l.of) : null, e = r && extent(s.l, html);
      if (r && e) {
        const p = aroundPlaces(r, e.right - e.left, e.bottom - e.top).find((q) => q.side === (s.l.above ? "above" : "under"))!;
        out.push({ x: p.left - e.left, y: p.top - e.top, align: "left" });
      }
      return out;
    };
    // A label at its own place in its full form, else in its short form, else (short) elsewhere; false: nowhere.
    const place = (s: Shown, subject: boolean, full: boolean): boolean => {
      const forms = full && s.l.compact !== undefined ? [s.l.html, s.l.compact] : [full ? s.l.html : s.l.compact ?? s.l.html];
      for (const html of forms) {
        for (const p of own(s, html)) {
          if (fits(s.l, p.x, p.y, html, p.align, subject)) {  // (a subject's: whole on screen)
            kept.push({ ...(html === s.l.html && full ? s : shortOf(s)), ...p });
            return true;
          }
        }
      }
      const html = s.l.compact ?? s.l.html;
      for (const p of elsewhere(s, subject)) {
        if (fits(s.l, p.x, p.y, html, p.align, true)) {
          kept.push({ ...shortOf(s), ...p });
          return true;
        }
      }
      return false;
    };
    // A batch of labels each in its short form first (so that a big one's long form cannot crowd out a small
    // neighbour's name); then each grows to its full form where that covers nothing.
    const shortThenGrow = (batch: Shown[]) => {
      const at: { k: number; p: Rect; s: Shown }[] = [];
      for (const s of batch) {
        const subject = s.rank === SUBJECT_PRIORITY;
        if (!place(s, subject, false)) {
          if (!subject) continue;
          // (a subject shows, whatever: at its own place, when no place near its block is free)
          last = airy(box(s.l, s.x, s.y, s.l.compact ?? s.l.html) ?? [s.x, s.y, s.x, s.y]);
          taken.add(last);
          kept.push(shortOf(s));
        }
        at.push({ k: kept.length - 1, p: last, s });
      }
      for (const { k, p, s } of at) {
        const was = kept[k];
        // (whole on screen, as where it was put: a subject's, one moved to another place)
        const whole = s.l.width !== undefined || !!s.l.whole || s.rank === SUBJECT_PRIORITY || was.x !== s.x || was.y !== s.y;
        const grown = s.l.compact !== undefined && s.px >= (s.l.fullPixels ?? Infinity)
          ? box(s.l, was.x, was.y, s.l.html, was.align, whole) : null;
        if (grown && free(grown, p)) {
          taken.remove(p);
          taken.add(airy(grown));
          kept[k] = { ...was, px: s.px };
        }
      }
    };
    // The step's subjects first; then the rest by priority, a batch of `namesFirst` labels (the models' titles)
    // together.
    shortThenGrow(shown.filter((s) => s.rank === SUBJECT_PRIORITY));
    const batched = new Set<number>();
    for (const s of shown) {
      if (s.rank === SUBJECT_PRIORITY) continue;
      if (kept.length >= this.maxVisible) break;
      if (s.l.namesFirst) {
        if (!batched.has(s.rank)) shortThenGrow(shown.filter((x) => x.l.namesFirst && x.rank === s.rank));
        batched.add(s.rank);
        continue;
      }
      place(s, false, s.l.compact === undefined || s.px >= (s.l.fullPixels ?? Infinity));
    }
    // A group (an axis's names) shows whole or not at all: every other token would read as half as many.
    const count = (list: typeof shown) => list.reduce((m, s) => (s.l.group ? m.set(s.l.group, (m.get(s.l.group) ?? 0) + 1) : m),
      new Map<string, number>());
    const all = count(shown), fitted = count(kept);
    shown.length = 0;
    shown.push(...kept.filter((s) => !s.l.group || fitted.get(s.l.group) === all.get(s.l.group)));
    while (this.nodes.length < shown.length) {
      const d = document.createElement("div");
      this.root.appendChild(d);
      this.nodes.push(d);
    }
    this.nodes.forEach((node, i) => {
      const s = shown[i];
      if (!s) {
        node.style.display = "none";
        node.dataset.tensor = "";  // a hidden label names nothing
        return;
      }
      const html = s.l.compact !== undefined && s.px < (s.l.fullPixels ?? Infinity) ? s.l.compact : s.l.html;
      if (node.dataset.html !== html) {
        node.innerHTML = html;
        node.dataset.html = html;
      }
      node.className = LabelLayer.className(s.l);
      node.dataset.tensor = s.l.data?.tensor ?? "";
      node.dataset.axis = s.l.data?.axis ?? "";
      node.dataset.position = s.l.data?.position ?? "";
      node.style.display = "";
      node.style.transform = `translate(${Math.round(s.x)}px, ${Math.round(s.y)}px) translateX(${SHIFT[s.align]})`;
    });
  }
}
