// Text over the 3D view: block names and shapes, section titles, tokens. HTML, positioned each frame;
// a label shows only when what it names is big enough on screen, so GPT-3 is not a wall of text.
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
  alt?: { anchor: THREE.Vector3; align: "left" | "center" | "right" };  // where else it may go when its place is taken
}

/** A label of what the walkthrough's step is about wins over every other (and shows however small its block). */
export const SUBJECT_PRIORITY = 20;

const SHIFT = { left: "0", center: "-50%", right: "-100%" };

export class LabelLayer {
  private labels: Label[] = [];
  private nodes: HTMLDivElement[] = [];
  private tmp = new THREE.Vector3();
  private subjects: Set<string> | null = null;
  /** covers: the boxes (canvas pixels: left, top, right, bottom) that controls laid over the view take, where no
   * label goes (it would be hidden under them). */
  constructor(private root: HTMLElement, private view: View, private maxVisible = 250, private covers: () => number[][] = () => []) {}

  set(labels: Label[]): void {
    this.labels = labels;
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

  update(): void {
    const cam = this.view.camera;
    const h = this.view.canvas.clientHeight, w = this.view.canvas.clientWidth, cw = w, ch = h;
    const perUnit = h / (2 * Math.tan(THREE.MathUtils.degToRad(cam.fov) / 2));
    type Shown = { l: Label; x: number; y: number; px: number; align: "left" | "center" | "right"; rank: number; alt?: { x: number; y: number } };
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
      shown.push({ l, x: p.x, y: p.y + (l.offsetY ?? 0), px, align: l.align ?? "left", rank: subject ? SUBJECT_PRIORITY : l.priority ?? 0,
        alt: q ? { x: q.x, y: q.y + (l.offsetY ?? 0) } : undefined });
    }
    shown.sort((a, b) => b.rank - a.rank || b.px - a.px);
    // Largest first; a label that would cover one already placed falls back to its short form, else hides.
    const placed: number[][] = this.covers();
    const text = (h: string) => h.replace(/<[^>]+>/g, "");
    const box = (l: Label, x: number, y: number, t: string, align = l.align, onScreen = l.width !== undefined): number[] | null => {
      const measured = l.widths && (l.compact !== undefined && t === text(l.compact) ? l.widths.compact : l.widths.full);
      const w = l.width ?? measured ?? t.length * (l.charWidth ?? 6.6) + 6, h = l.box?.h ?? l.height ?? 15;
      const top = l.box ? y + l.box.dy : l.above ? y - h - 1 : y;
      const left = align === "right" ? x - w : align === "center" ? x - w / 2 : x - 2;
      if (onScreen && (left < 0 || left + w > cw || top < 0 || top + h > ch)) return null;  // never cut off
      return [left - 2, top, left + w + 4, top + h];  // a little air between neighbours
    };
    const free = (r: number[] | null, except?: number[]) =>
      !!r && !placed.some((p) => p !== except && r[0] < p[2] && p[0] < r[2] && r[1] < p[3] && p[1] < r[3]);
    // (a label moved to its other place goes there only to be seen: whole on screen)
    const fits = (l: Label, x: number, y: number, text: string, align = l.align, moved = false) => {
      const r = box(l, x, y, text, align, moved || l.width !== undefined || !!l.whole);
      if (!free(r)) return false;
      placed.push(r!);
      return true;
    };
    const kept: typeof shown = [];
    const further = (s: Shown) => ({ x: s.x, y: s.y + (s.l.above ? -16 : 16) });  // one line out from what it names
    // A batch of labels each in its short form first (so that a big one's long form cannot crowd out a small
    // neighbour's name); then each grows to its full form where that covers nothing.
    const shortThenGrow = (batch: Shown[]) => {
      const at: { k: number; p: number; s: Shown }[] = [];
      for (const s of batch) {
        const short = { ...s, px: Math.min(s.px, (s.l.fullPixels ?? Infinity) - 1) };
        const alt = s.alt && s.l.alt ? { x: s.alt.x, y: s.alt.y, align: s.l.alt.align } : null;
        // (a subject both of whose places are taken by other subjects' labels: one line further out, still beside it)
        const out = s.rank === SUBJECT_PRIORITY ? further(s) : null;
        if (fits(s.l, s.x, s.y, text(s.l.compact ?? s.l.html))) kept.push(short);
        else if (alt && fits(s.l, alt.x, alt.y, text(s.l.compact ?? s.l.html), alt.align, true)) kept.push({ ...short, ...alt });
        else if (out && fits(s.l, out.x, out.y, text(s.l.compact ?? s.l.html), s.align, true)) kept.push({ ...short, ...out });
        else continue;
        at.push({ k: kept.length - 1, p: placed.length - 1, s });
      }
      for (const { k, p, s } of at) {
        const was = kept[k];
        const grown = s.l.compact !== undefined && s.px >= (s.l.fullPixels ?? Infinity)
          ? box(s.l, was.x, was.y, text(s.l.html), was.align, s.l.width !== undefined || !!s.l.whole) : null;
        if (grown && free(grown, placed[p])) {
          placed[p] = grown;
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
      const full = s.l.compact === undefined || s.px >= (s.l.fullPixels ?? Infinity);
      const short = { ...s, px: Math.min(s.px, (s.l.fullPixels ?? Infinity) - 1) };
      const alt = s.alt && s.l.alt ? { x: s.alt.x, y: s.alt.y, align: s.l.alt.align } : null;
      if (full && fits(s.l, s.x, s.y, text(s.l.html))) kept.push(s);
      else if (s.l.compact !== undefined && fits(s.l, s.x, s.y, text(s.l.compact))) kept.push(short);
      // Its place taken: the other end of what it names (a block's top-right corner), in its short form.
      else if (alt && fits(s.l, alt.x, alt.y, text(s.l.compact ?? s.l.html), alt.align, true)) kept.push({ ...short, ...alt });
      // An activation's name (what the input became: pos emb beside W_E and W_pos) one line further out.
      else if (s.l.cls.includes("kind-activation") && fits(s.l, s.x, further(s).y, text(s.l.compact ?? s.l.html), s.align, true)) {
        kept.push({ ...short, ...further(s) });
      }
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
      node.className = `label ${s.l.cls}${s.l.above ? " above" : ""}`;
      node.dataset.tensor = s.l.data?.tensor ?? "";
      node.dataset.axis = s.l.data?.axis ?? "";
      node.dataset.position = s.l.data?.position ?? "";
      node.style.display = "";
      node.style.transform = `translate(${Math.round(s.x)}px, ${Math.round(s.y)}px) translateX(${SHIFT[s.align]})`;
    });
  }
}
