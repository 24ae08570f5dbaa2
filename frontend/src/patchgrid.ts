// The Patching tab: the corrupted input run with one activation taken from the view's (clean) input, swept over
// every layer × position of the residual stream and every head (POST /api/patching). Two grids shaded by the share
// of the clean probability each patch recovers, a legend, the corrupted input to edit and run again; hovering a
// cell says what was patched and what it gave, a click flies the 3D view there.
import { cellSentence, cellText, headWhat, legendGradient, recoveredColor, residWhat, type SweepTarget } from "./analysisfmt";
import { check, post } from "./api";
import type { components } from "./api-schema";
import type { AnalysisHost } from "./attribution";
import { escapeHtml as esc } from "./html";
import { num } from "./tooltip";

export type PatchingData = components["schemas"]["Patching"];

/** The sweep of `corrupted` patched from `clean`; with no corrupted input, the server's suggestion. */
export async function fetchPatching(model: string, clean: string, corrupted?: string): Promise<PatchingData> {
  return (await check(await post("/api/patching", { model, clean, corrupted }))).json();
}

const HINT = "hover a cell: what was patched and what it gave · click: fly there";

export class PatchGrid {
  data: PatchingData | null = null;
  private field: HTMLInputElement;
  private result: HTMLElement;
  private readout: HTMLElement;
  private message: HTMLElement;

  constructor(private box: HTMLElement, private host: AnalysisHost) {
    box.innerHTML = `<form class="pg-form"><label>corrupted input <input class="pg-corrupted" spellcheck="false"
        autocomplete="off"></label><button type="submit">Run</button><span class="pg-message" aria-live="polite"></span></form>
      <div class="pg-result"></div><div class="pg-readout">${HINT}</div>`;
    this.field = box.querySelector(".pg-corrupted")!;
    this.result = box.querySelector(".pg-result")!;
    this.readout = box.querySelector(".pg-readout")!;
    this.message = box.querySelector(".pg-message")!;
    box.querySelector("form")!.addEventListener("submit", (e) => {
      e.preventDefault();
      this.message.textContent = "computing…";
      this.load(this.field.value).then(() => { this.message.textContent = ""; },
        (err: Error) => { this.message.textContent = err.message; });
    });
    box.addEventListener("pointerover", (e) => this.onHover(e));
    box.addEventListener("click", (e) => {
      const td = (e.target as HTMLElement).closest<HTMLElement>("td[data-kind]"), d = this.data;
      if (!td || !d) return;
      if (td.dataset.kind === "resid") {
        const q = Number(td.dataset.pos);
        this.host.flyToCells(d.resid.tensors[Number(td.dataset.row)], { pos: [q, q] });
      } else {
        const h = Number(td.dataset.head);
        this.host.flyToCells(d.heads.tensors[Number(td.dataset.layer)], { head: [h, h] });
      }
    });
  }

  /** Sweep the view's input against `corrupted` (default: the server's suggestion, which fills the field). */
  async load(corrupted?: string): Promise<void> {
    const d = await fetchPatching(this.host.model(), this.host.text(), corrupted);
    this.data = d;
    this.field.value = d.corrupted_text;
    this.draw();
  }

  private target(): SweepTarget {
    const d = this.data!;
    return { token: d.token_str, clean: d.clean_prob, corrupted: d.corrupted_prob, position: d.position };
  }

  private draw(): void {
    const d = this.data!;
    const cols = d.token_strs.map((t, q) => {
      const other = d.corrupted_strs[q], differs = d.corrupted_tokens[q] !== d.tokens[q];
      return `<th class="${differs ? "pg-differs" : ""}${q === d.position ? " pg-target" : ""}" title="position ${q}">${esc(t)}${
        differs ? `<br><s>${esc(other)}</s>` : ""}</th>`;
    }).join("");
    const cell = (r: number | null, attrs: string) =>
      `<td ${attrs} style="background:${recoveredColor(r)}" class="${r !== null && Math.abs(r) > 0.6 ? "strong" : ""}">${cellText(r)}</td>`;
    const resid = d.resid.recovered.map((row, i) => `<tr><th>${esc(d.resid.labels[i])}</th>${row.map((r, q) =>
      cell(r, `data-kind="resid" data-row="${i}" data-pos="${q}"`)).join("")}</tr>`).reverse();
    const H = d.heads.probs[0]?.length ?? 0;
    const heads = d.heads.recovered.map((row, L) => `<tr><th>layer ${L}</th>${row.map((r, h) =>
      cell(r, `data-kind="head" data-layer="${L}" data-head="${h}"`)).join("")}</tr>`).reverse();
    const headCols = Array.from({ length: H }, (_, h) => `<th>head ${h}</th>`).join("");
    this.result.innerHTML = `<p class="pg-what">Target: P(<b>${esc(d.token_str)}</b>) after position ${d.position}:
        clean <b>${num(d.clean_prob)}</b>, corrupted <b>${num(d.corrupted_prob)}</b>. Each cell runs the corrupted input with one
        activation taken from the clean run; its colour and number are the share of the way back to the clean probability,
        (p − corrupted) / (clean − corrupted), in percent.</p>
      <div class="pg-legend"><span>−100 %</span><span class="pg-ramp" style="background:${legendGradient()}"></span>
        <span>100 % recovered</span><span class="pg-swatch" style="background:${recoveredColor(null)}"></span><span>equal baselines</span></div>
      <h4>The residual stream, one position at a time</h4>
      <div class="pg-scroll"><table class="pg-grid pg-resid">${resid.join("")}<tr><th>clean / <s>corrupted</s></th>${cols}</tr></table></div>
      <h4>Each head's output (hook_z, every position)</h4>
      <div class="pg-scroll"><table class="pg-grid pg-heads">${heads.join("")}<tr><th></th>${headCols}</tr></table></div>`;
    this.readout.textContent = HINT;
    this.box.dataset.loaded = d.corrupted_text;
  }

  private onHover(e: PointerEvent): void {
    const td = (e.target as HTMLElement).closest<HTMLElement>("td[data-kind]"), d = this.data;
    if (!td || !d) return;
    let text: string;
    if (td.dataset.kind === "resid") {
      const i = Number(td.dataset.row), q = Number(td.dataset.pos);
      text = cellSentence(residWhat(d.resid.labels[i], q, d.token_strs[q]), d.resid.probs[i][q], d.resid.recovered[i][q],
        this.target(), q > d.position);
    } else {
      const L = Number(td.dataset.layer), h = Number(td.dataset.head);
      text = cellSentence(headWhat(L, h), d.heads.probs[L][h], d.heads.recovered[L][h], this.target());
    }
    this.readout.textContent = text;
  }
}
