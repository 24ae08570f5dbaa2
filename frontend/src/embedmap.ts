// The embedding map: the rows of the token embedding W_E (and of the position embedding W_pos, for a model that
// learned one) as points on their first two principal components, one plot per matrix (a tab each). Hovering or
// focusing a point shows its label, id and vector, as a strip of cells in the weights' palette and as numbers. The
// server computes everything (GET /api/models/{name}/embedding-map, views/embedmap.py); this draws it.
import type { components } from "./api-schema";
import { check } from "./api";
import { FAMILIES, hexToRgb, valueColor } from "./colors";
import { escapeHtml as esc } from "./html";
import { escapeCloses } from "./panelkeys";
import { num } from "./tooltip";
import { request } from "./transport";

type Schemas = components["schemas"];
export type EmbeddingMap = Schemas["EmbeddingMap"];
export type MatrixMap = Schemas["MatrixMap"];
export type Which = MatrixMap["which"];

const W = 520, H = 380, LEFT = 46, RIGHT = 14, TOP = 10, BOTTOM = 38;  // the plot's SVG box and its margins
const LABELLED = 60;  // up to this many points, each is labelled (more: hover for a token; positions: every k-th)
const FOCUSABLE = 200;  // up to this many points, each takes the keyboard's focus

const pct = (f: number) => `${(100 * f).toFixed(1)} %`;
const rgb = ([r, g, b]: [number, number, number]) => `rgb(${Math.round(r * 255)},${Math.round(g * 255)},${Math.round(b * 255)})`;

/** Where each point goes in the SVG: one scale for both axes (distances on the map are distances along PC1 and PC2),
 * the points centred in the plot, PC2 upwards. */
export function placement(points: { x: number; y: number }[]): { px: (x: number) => number; py: (y: number) => number; k: number } {
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const x0 = Math.min(...xs, 0), x1 = Math.max(...xs, 0), y0 = Math.min(...ys, 0), y1 = Math.max(...ys, 0);
  const k = 0.88 * Math.min((W - LEFT - RIGHT) / (x1 - x0 || 1), (H - TOP - BOTTOM) / (y1 - y0 || 1));
  const mx = (LEFT + W - RIGHT) / 2, my = (TOP + H - BOTTOM) / 2, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  return { px: (x) => mx + (x - cx) * k, py: (y) => my - (y - cy) * k, k };
}

/** A position's colour: light for the first, dark for the last (the order the line joins them in). */
function rampColor(t: number): string {
  const a = hexToRgb("#99e9f2"), b = hexToRgb(FAMILIES.weight.positive);
  return rgb([0, 1, 2].map((i) => a[i] + (b[i] - a[i]) * t) as [number, number, number]);
}

type Box = [number, number, number, number];  // left, top, right, bottom
const overlaps = (a: Box, b: Box) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];

/** Where each labelled point's label goes: right of it, else left, above or below, wherever it covers no other
 * label and no point; nowhere (null: hover the point) in a crowd. */
function placeLabels(pts: { x: number; y: number; label: string }[], labelled: (i: number) => boolean) {
  const taken: Box[] = pts.map((p) => [p.x - 4, p.y - 4, p.x + 4, p.y + 4]);
  return pts.map((p, i) => {
    if (!labelled(i)) return null;
    const w = 7.8 * [...p.label].length + 2, h = 13;
    const tries: [number, number, "start" | "end" | "middle"][] = [[p.x + 7, p.y + 4, "start"], [p.x - 7, p.y + 4, "end"],
      [p.x, p.y - 9, "middle"], [p.x, p.y + 17, "middle"]];
    for (const [x, y, anchor] of tries) {
      const left = anchor === "start" ? x : anchor === "end" ? x - w : x - w / 2;
      const box: Box = [left, y - 11, left + w, y - 11 + h];
      const mine = taken[i];
      if (box[0] < 0 || box[2] > W || box[1] < 0 || box[3] > H - BOTTOM + 8) continue;
      if (taken.some((t) => t !== mine && overlaps(t, box))) continue;
      taken.push(box);
      return { x, y, anchor };
    }
    return null;
  });
}

export function plotSvg(m: MatrixMap): string {
  const { px, py } = placement(m.points);
  const n = m.points.length, positions = m.which === "positions";
  const every = positions ? Math.max(1, Math.ceil(n / 30)) : n <= LABELLED ? 1 : 0;  // which points may carry a label
  const line = positions && n > 1
    ? `<polyline class="em-path" points="${m.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ")}"/>` : "";
  const at = placeLabels(m.points.map((p) => ({ x: px(p.x), y: py(p.y), label: p.label })),
    (i) => every > 0 && (i % every === 0 || i === n - 1));
  const dots = m.points.map((p, i) => {
    const x = px(p.x), y = py(p.y), l = at[i];
    const label = l ? `<text x="${l.x.toFixed(1)}" y="${l.y.toFixed(1)}" text-anchor="${l.anchor}">${esc(p.label)}</text>` : "";
    const fill = positions ? rampColor(n > 1 ? i / (n - 1) : 1) : FAMILIES.weight.positive;
    return `<g class="em-pt" data-i="${i}"${n <= FOCUSABLE ? ' tabindex="0"' : ""} role="img"
      aria-label="${esc(positions ? `position ${p.id}` : `token ${p.label}, id ${p.id}`)}"><circle cx="${x.toFixed(2)}"
      cy="${y.toFixed(2)}" r="${n > LABELLED ? 2.5 : 5}" fill="${fill}"/>${label}</g>`;
  }).join("");
  const ox = px(0), oy = py(0);
  return `<svg class="em-plot" viewBox="0 0 ${W} ${H}" data-which="${m.which}" aria-label="${esc(m.title)}: its rows on PC1 and PC2">
    <line class="em-axis" x1="${LEFT}" x2="${W - RIGHT}" y1="${oy.toFixed(1)}" y2="${oy.toFixed(1)}"/>
    <line class="em-axis" y1="${TOP}" y2="${H - BOTTOM}" x1="${ox.toFixed(1)}" x2="${ox.toFixed(1)}"/>
    <text class="em-title em-x" x="${(LEFT + W - RIGHT) / 2}" y="${H - 10}" text-anchor="middle">PC1 (${pct(m.variance[0])} of variance)</text>
    <text class="em-title em-y" transform="translate(14 ${(TOP + H - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">PC2 (${pct(m.variance[1])} of variance)</text>
    ${line}${dots}</svg>`;
}

/** What a hovered point's card says: its label and id, where it lies, its length, and its numbers as coloured cells
 * (the W_E block's palette and scale: the same numbers in the same colours) and as text. */
export function pointHtml(m: MatrixMap, i: number): string {
  const p = m.points[i];
  const head = m.which === "tokens" ? `<b>${esc(p.label)}</b> · token id ${p.id}` : `<b>position ${p.id}</b>`;
  const part = p.vector.length < m.d_model ? `its first ${p.vector.length} of ${m.d_model} numbers` : `its ${m.d_model} numbers`;
  const cells = p.vector.map((v, j) => `<span style="background:${rgb(valueColor("weight", v, m.scale))}" title="${j}: ${num(v)}"></span>`).join("");
  return `<div class="em-tip-head">${head}</div>
    <div class="em-tip-sub">row ${p.id} of <code>${esc(m.tensor)}</code> · PC1 ${num(p.x)}, PC2 ${num(p.y)} · length ${num(p.norm)}</div>
    <div class="em-strip" aria-hidden="true">${cells}</div>
    <div class="em-tip-sub">${part}:</div>
    <div class="em-nums">${p.vector.map((v) => `<span data-v="${v}">${num(v)}</span>`).join("")}</div>`;
}

function introHtml(m: MatrixMap, note: string | null): string {
  const what = m.which === "tokens" ? `one token's vector of ${m.d_model} numbers` : `the vector of ${m.d_model} numbers added at one position`;
  const alike = m.which === "tokens" ? "Tokens used alike land near each other." : "The line joins the positions in order, light to dark.";
  const kept = m.variance[0] + m.variance[1];
  return `<p class="em-what">Each point is a row of <code>${esc(m.label)}</code>: ${what}, placed along the two directions in
    which the rows differ most (their first two principal components). ${alike} The two axes keep ${pct(kept)} of the
    rows' variance${kept < 0.9995 ? "; the rest lies along directions the map leaves out" : ""}.
    ${m.points.length > LABELLED && m.which === "tokens" ? "Hover a point for its token." : "Hover a point for its vector."}</p>
    ${m.note ? `<p class="em-note">${esc(m.note)}</p>` : ""}${note ? `<p class="em-note">${esc(note)}</p>` : ""}`;
}

export class EmbedMap {
  private data = new Map<string, EmbeddingMap>();
  private shown: EmbeddingMap | null = null;
  private which: Which = "tokens";
  private seq = 0;

  constructor(private panel: HTMLElement) {
    panel.addEventListener("click", (e) => {
      const t = e.target as HTMLElement;
      const tab = t.closest<HTMLElement>("[data-em-tab]")?.dataset.emTab as Which | undefined;
      if (tab) this.show(tab);
      if (t.closest("[data-em=close]")) this.close();
    });
    panel.addEventListener("pointerover", (e) => this.point(e.target as Element));
    panel.addEventListener("focusin", (e) => this.point(e.target as Element));
    panel.addEventListener("pointerleave", () => (this.tip().hidden = true));
    escapeCloses(() => this.active, () => this.close());
  }

  get active(): boolean {
    return !this.panel.hidden;
  }

  /** Open the map of this model's embeddings, on the tokens' or the positions' plot; focus: move the keyboard's
   * focus into it (opened by a button, not by the walkthrough). */
  async open(model: string, which: Which = "tokens", focus = false): Promise<void> {
    const seq = ++this.seq;
    this.panel.hidden = false;
    this.panel.querySelector("#em-title")!.textContent = `Embedding map · ${model}`;
    this.which = which;
    let got = this.data.get(model);
    if (!got) {
      this.say("computing…");
      this.body().innerHTML = "";
      try {
        got = (await (await check(await request(`/api/models/${encodeURIComponent(model)}/embedding-map`))).json()) as EmbeddingMap;
        this.data.set(model, got);
      } catch (e) {
        if (seq === this.seq) this.say((e as Error).message);
        return;
      }
    }
    if (seq !== this.seq) return;
    this.say("");
    this.shown = got;
    this.show(got.maps.some((m) => m.which === which) ? which : got.maps[0].which);
    if (focus) this.panel.querySelector<HTMLElement>("[data-em-tab][aria-selected=true]")?.focus();
  }

  close(): void {
    this.seq++;
    this.panel.hidden = true;
  }

  private show(which: Which): void {
    const d = this.shown;
    const m = d?.maps.find((x) => x.which === which);
    if (!d || !m) return;
    this.which = which;
    this.panel.querySelector(".em-tabs")!.innerHTML = d.maps.map((x) => `<button type="button" role="tab" data-em-tab="${x.which}"
      aria-selected="${x.which === which}">${x.which === "tokens" ? "Tokens" : "Positions"} · ${esc(x.label)}</button>`).join("");
    this.body().innerHTML = `${introHtml(m, d.note)}<div class="em-wrap">${plotSvg(m)}<div class="em-tip" role="tooltip" hidden></div></div>`;
  }

  /** Show the card of the point under the pointer (or focused), beside it. */
  private point(target: Element): void {
    const g = target.closest<SVGGElement>(".em-pt");
    const m = this.shown?.maps.find((x) => x.which === this.which);
    if (!g || !m) return;
    const tip = this.tip(), wrap = this.panel.querySelector<HTMLElement>(".em-wrap")!;
    tip.innerHTML = pointHtml(m, Number(g.dataset.i));
    tip.hidden = false;
    // Beside the point (and its label), where it hides the fewest other points: right, left, below or above.
    const box = wrap.getBoundingClientRect(), r = g.getBoundingClientRect(), w = tip.offsetWidth, h = tip.offsetHeight;
    const clampX = (x: number) => Math.max(0, Math.min(x, box.width - w)), clampY = (y: number) => Math.max(0, Math.min(y, box.height - h));
    const cx = (r.left + r.right) / 2 - box.left, cy = (r.top + r.bottom) / 2 - box.top;
    const tries: [number, number][] = [[r.right - box.left + 8, clampY(cy - 30)], [r.left - box.left - w - 8, clampY(cy - 30)],
      [clampX(cx - w / 2), r.bottom - box.top + 8], [clampX(cx - w / 2), r.top - box.top - h - 8]];
    const dots = [...wrap.querySelectorAll("circle")].map((c) => c.getBoundingClientRect())
      .map((c) => [(c.left + c.right) / 2 - box.left, (c.top + c.bottom) / 2 - box.top]);
    const hidden = ([x, y]: [number, number]) => (x < 0 || y < 0 || x + w > box.width || y + h > box.height ? 1e9 : 0) +
      dots.filter(([dx, dy]) => dx > x - 6 && dx < x + w + 6 && dy > y - 6 && dy < y + h + 6).length;
    const [x, y] = tries.reduce((best, t) => (hidden(t) < hidden(best) ? t : best));
    tip.style.left = `${clampX(x)}px`;
    tip.style.top = `${clampY(y)}px`;
  }

  private body(): HTMLElement {
    return this.panel.querySelector("#em-body")!;
  }

  private tip(): HTMLElement {
    return this.panel.querySelector(".em-tip") ?? document.createElement("div");
  }

  private say(text: string): void {
    this.panel.querySelector("#em-status")!.textContent = text;
  }
}

let only: EmbedMap | null = null;

/** The page's embedding map (made on first use, on #embmap). */
export function embedMap(): EmbedMap {
  only ??= new EmbedMap(document.querySelector<HTMLElement>("#embmap")!);
  return only;
}

/** Close the map if it was ever opened. */
export function closeEmbedMap(): void {
  only?.close();
}

/** In a selected block's description, for a block whose rows the server maps (BlockInfo.map): "Map these vectors". */
export function offerMap(panel: HTMLElement, model: string, which: Which | null | undefined): void {
  if (!which) return;
  const button = Object.assign(document.createElement("button"), { type: "button", textContent: "Map these vectors",
    title: `Every ${which === "tokens" ? "token's" : "position's"} vector as a point on a 2-D map (PCA)` });
  button.dataset.map = which;
  button.addEventListener("click", () => void embedMap().open(model, which, true));
  const p = document.createElement("p");
  p.append(button);
  panel.append(p);
}
