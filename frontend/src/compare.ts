// Compare precisions: the input on screen run with the model's weights stored in two formats (f32 against q4_0, ...),
// side by side. Python computes everything (POST /api/compare/scene: the second format's pass as a scene, each cell's
// difference from the first's as a second atlas, and the comparison's numbers as the scene's `compare`); this panel
// picks the two formats (the server lists them), asks, and draws what the scene says: both answers and the residual
// stream's relative error, layer by layer.
import { check, post } from "./api";
import type { components } from "./api-schema";
import type { Kind } from "./colors";
import { escapeHtml as esc } from "./html";
import { parseScene, type SceneData, type SceneInfo } from "./scenedata";

export type Comparison = components["schemas"]["Comparison"];
type Side = components["schemas"]["CompareSide"];

export interface CompareHost {
  /** The model on screen (a quantized one: the server compares its original's formats). */
  model(): string;
  /** The formats its weights can be stored in (the model list's: none for a model that has none). */
  formats(): { format: string; bits: number }[];
  /** The input on screen (undefined: the model's example). */
  input(): string | undefined;
  /** Make the view this scene (the comparison's), or with none, the plain pass again. */
  show(scene?: Promise<SceneData>): Promise<void>;
  /** The panel has opened (the others it shares its place with close). */
  opened(): void;
}

/** The comparison's scene: the `other` format's pass, its cells' differences from the `reference`'s. */
export async function fetchCompareScene(req: { model: string; text?: string; reference: string; other: string; heads?: string }): Promise<SceneData> {
  return parseScene(await (await check(await post("/api/compare/scene", req))).arrayBuffer());
}

const pct = (x: number) => `${(100 * x).toPrecision(3)} %`;

/** One side's answer: "q4_0: w 9.4 %" (and a multi-token answer's greedy text). */
function sideHtml(s: Side, role: string): string {
  const top = s.prediction?.top[0];
  const answer = s.prediction?.answer;
  return `<span class="cmp-side" data-side="${role}"><span class="cmp-fmt">${esc(s.format)}:</span> ${top
    ? `<code data-token="${esc(top.token)}">${esc(top.token)}</code> <span data-percent="${top.prob}">${esc(top.percent)}</span>` : "no prediction"}${
    answer ? ` · answer <code data-answer="${esc(answer.text)}">${esc(answer.text)}</code>` : ""}</span>`;
}

/** Both answers ("f32: A 99.9 % → q4_0: A 99.2 %") and whether the most probable next token changed. */
export function answersHtml(c: Comparison): string {
  const n = c.token_strs.length, moved = c.changed_positions;
  const verdict = c.same_answer ? "the same next token" : "<b>the next token changed</b>";
  return `<div class="cmp-answers">${sideHtml(c.reference, "reference")} → ${sideHtml(c.other, "other")}</div>` +
    `<div class="cmp-verdict">${verdict}; the two next-token distributions differ by ${esc(pct(c.probs_tv))} ` +
    `(total variation). Over the input, the most probable next token differs at ${moved.length} of ${n} positions.</div>`;
}

/** The residual stream's relative error after each layer, as an SVG chart: the last position (solid, dots) and the
 * mean over positions (dashed). Every number is the server's; each dot has its value in data-last. */
export function chartSvg(c: Comparison): string {
  const pts = c.layers, W = 300, H = 150, left = 46, right = 8, top = 10, bottom = 34;
  const hi = Math.max(1e-12, ...pts.flatMap((p) => [p.last, p.mean])) * 1.15;
  const x = (i: number) => left + (pts.length > 1 ? (i * (W - left - right)) / (pts.length - 1) : (W - left - right) / 2);
  const y = (v: number) => top + (1 - v / hi) * (H - top - bottom);
  const line = (k: "last" | "mean") => pts.map((p, i) => `${x(i).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ");
  const ticks = [0, hi / 2.3, hi / 1.15].map((v) => `<line x1="${left - 3}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="cmp-grid"/>` +
    `<text x="${left - 5}" y="${(y(v) + 3).toFixed(1)}" text-anchor="end">${esc(pct(v))}</text>`).join("");
  const labels = pts.map((p, i) => `<text x="${x(i).toFixed(1)}" y="${H - bottom + 13}" text-anchor="middle">${
    esc(p.layer === null ? "embed" : String(p.layer))}</text>`).join("");
  const dots = pts.map((p, i) => `<circle cx="${x(i).toFixed(1)}" cy="${y(p.last).toFixed(1)}" r="3.5" class="cmp-dot" data-layer="${
    p.layer ?? "embed"}" data-last="${p.last}" data-mean="${p.mean}"><title>${esc(p.label)} (${esc(p.tensor)}): ${esc(pct(p.last))} at the last position, ${
    esc(pct(p.mean))} averaged over positions</title></circle>`).join("");
  return `<svg class="cmp-chart" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="relative error of the residual stream by layer">` +
    `${ticks}<polyline points="${line("mean")}" class="cmp-mean"/><polyline points="${line("last")}" class="cmp-last"/>${dots}${labels}` +
    `<text x="${(left + W - right) / 2}" y="${H - 4}" text-anchor="middle">after layer</text></svg>`;
}

/** The whole comparison as the panel shows it; `info`: its scene, whose blocks say the colour scales. */
export function comparisonHtml(c: Comparison, info?: SceneInfo): string {
  const ref = esc(c.reference.format), other = esc(c.other.format);
  const last = c.layers[c.layers.length - 1];
  return answersHtml(c) +
    `<div class="cmp-title">How far the residual stream moved: ‖${other} − ${ref}‖ / ‖${ref}‖</div>` + chartSvg(c) +
    `<div class="cmp-key"><span class="cmp-k-last"></span> at the last position · <span class="cmp-k-mean"></span> averaged over the ${
      c.token_strs.length} positions${last ? ` · after the last layer: <b data-final="${last.last}">${esc(pct(last.last))}</b>` : ""}</div>` +
    `<div class="cmp-note">The blocks show the ${other} pass, each cell coloured by its difference ${other} − ${ref} ` +
    `(a weight's: what storing it in ${other} changed)${info ? scalesText(info) : ""}. Hover a cell for both values.</div>`;
}

/** The two colour scales of the difference view, as words: "; full colour at ±2.11 for every activation, ±0.032 for
 * every weight". */
export function scalesText(info: SceneInfo): string {
  const scales = new Map<string, number>();
  for (const [i, st] of sharedScales(info)) scales.set(info.blocks[i].kind === "weight" ? "weight" : "activation", st.scale);
  const part = (k: string, words: string) => (scales.has(k) ? `±${(scales.get(k) ?? 0).toPrecision(3)} for every ${words}` : "");
  const parts = [part("activation", "activation"), part("weight", "weight")].filter((x) => x);
  return parts.length ? `; one colour scale, full colour at ${parts.join(", ")}` : "";
}

/** The difference view's colours: every computed block on one scale, the largest |other − reference| among them, and
 * every weight on one of its own (a weight moves by far less); each block in its own family's palette. */
export function sharedScales(info: SceneInfo): Map<number, { kind: Kind; scale: number }> {
  const top = (weights: boolean) => Math.max(0, ...info.blocks.filter((b) => (b.kind === "weight") === weights).map((b) => b.change ?? 0));
  const weight = top(true), computed = top(false);
  const out = new Map<number, { kind: Kind; scale: number }>();
  info.blocks.forEach((b, i) => {
    if (b.kind !== "input") out.set(i, { kind: b.kind, scale: b.kind === "weight" ? weight : computed });
  });
  return out;
}

export class Compare {
  private shown = false;  // the view is this panel's comparison

  constructor(private panel: HTMLDivElement, private toggle: HTMLButtonElement, private host: CompareHost) {
    panel.addEventListener("click", (ev) => {
      const what = (ev.target as HTMLElement).closest<HTMLElement>("[data-cmp]")?.dataset.cmp;
      if (what === "close") this.close();
      else if (what === "run") void this.run();
    });
  }

  get active(): boolean {
    return !this.panel.hidden;
  }

  async open(): Promise<void> {
    this.panel.hidden = false;
    this.toggle.setAttribute("aria-pressed", "true");
    this.host.opened();
    this.draw();
    await this.run();
  }

  close(): void {
    this.panel.hidden = true;
    this.toggle.setAttribute("aria-pressed", "false");
    if (this.shown) {
      this.shown = false;
      void this.host.show();  // back to the plain pass
    }
  }

  /** After each view is shown: its comparison, or that the view is one pass now. */
  update(info: SceneInfo | undefined): void {
    this.shown = !!info?.compare;
    if (!this.active) return;
    if (info?.compare) this.body(comparisonHtml(info.compare, info));
    else this.body(`<div class="cmp-note">The view shows one pass. Compare to see this input at two precisions.</div>`);
  }

  private draw(): void {
    const options = (pick: string) => this.host.formats().map((f) =>
      `<option value="${esc(f.format)}"${f.format === pick ? " selected" : ""}>${esc(f.format)} (${f.bits} bits)</option>`).join("");
    this.panel.innerHTML = `<div class="cmp-head"><b>Compare precisions</b><button type="button" data-cmp="close" aria-label="close" title="Close (Escape)">×</button></div>
      <div class="cmp-pick"><label>reference <select data-cmp-fmt="reference">${options("f32")}</select></label>
        <label>against <select data-cmp-fmt="other">${options("q4_0")}</select></label>
        <button type="button" data-cmp="run">Compare</button></div>
      <div class="cmp-body"></div>`;
  }

  private body(html: string): void {
    const b = this.panel.querySelector<HTMLDivElement>(".cmp-body");
    if (b) b.innerHTML = html;
  }

  private async run(): Promise<void> {
    const pick = (k: string) => this.panel.querySelector<HTMLSelectElement>(`[data-cmp-fmt="${k}"]`)!.value;
    this.body(`<div class="cmp-note">computing both passes…</div>`);
    const scene = fetchCompareScene({ model: this.host.model(), text: this.host.input(), reference: pick("reference"), other: pick("other") });
    scene.catch((e) => this.body(`<div class="cmp-error">${esc((e as Error).message)}</div>`));
    await this.host.show(scene);
  }
}
