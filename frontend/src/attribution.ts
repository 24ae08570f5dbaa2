// The Attribution tab: one token's logit at one position split into what each part of the model wrote into the
// residual stream (POST /api/attribution), one signed bar per part in layer order, with the total and the choice of
// position and token. A click on a bar flies the 3D view to that part's block.
import { barExtents } from "./analysisfmt";
import { check, post } from "./api";
import type { components } from "./api-schema";
import { escapeHtml as esc } from "./html";
import { num } from "./tooltip";

export type AttributionData = components["schemas"]["Attribution"];

/** What the analysis tabs need of the page. */
export interface AnalysisHost {
  model(): string;
  text(): string;
  /** Fly the 3D view to these cells of a tensor (each named axis a [first, last] range; {}: the whole block). */
  flyToCells(tensor: string, ranges: Record<string, [number, number]>): void;
}

export async function fetchAttribution(model: string, text: string, position?: number, token?: number): Promise<AttributionData> {
  return (await check(await post("/api/attribution", { model, text, position, token }))).json();
}

const pct = (p: number) => `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 2 : 1)} %`;

export class AttributionBars {
  data: AttributionData | null = null;

  constructor(private box: HTMLElement, private host: AnalysisHost) {
    box.addEventListener("change", (e) => {
      const which = (e.target as HTMLElement).dataset.at, d = this.data;
      if (!d || !which) return;
      const v = Number((e.target as HTMLSelectElement).value);
      void this.load(which === "position" ? v : d.position, which === "token" ? v : undefined).catch((err) => this.say(err));
    });
    box.addEventListener("click", (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>(".at-row");
      const part = row && this.data?.parts[Number(row.dataset.i)];
      if (!part || !this.data) return;
      const p = this.data.position;
      // a bias is a weight (no positions); an activation's part is its row at this position, a head's in its slab
      const ranges: Record<string, [number, number]> = part.kind === "bias" ? {} : { pos: [p, p] };
      if (part.head !== null) ranges.head = [part.head, part.head];
      this.host.flyToCells(part.tensor, ranges);
    });
  }

  /** Split the logit of `token` (default: the prediction) at `position` (default: the last) for the view's input. */
  async load(position?: number, token?: number): Promise<void> {
    this.data = await fetchAttribution(this.host.model(), this.host.text(), position, token);
    this.draw();
  }

  private say(e: Error): void {
    const m = this.box.querySelector<HTMLElement>(".at-message");
    if (m) m.textContent = e.message;
  }

  private draw(): void {
    const d = this.data!;
    const { zero, bars } = barExtents(d.parts.map((x) => x.value));
    const positions = d.token_strs.map((t, i) =>
      `<option value="${i}"${i === d.position ? " selected" : ""}>${i}: ${esc(t)}</option>`).join("");
    const top = d.top.some((t) => t.id === d.token) ? d.top : [...d.top, { id: d.token, token: d.token_str, prob: d.prob, logit: d.logit }];
    const tokens = top.map((t) =>
      `<option value="${t.id}"${t.id === d.token ? " selected" : ""}>${esc(t.token)} (${pct(t.prob)})</option>`).join("");
    let layer: number | null | undefined;
    const rows = d.parts.map((x, i) => {
      const [left, width] = bars[i], first = x.layer !== layer;
      layer = x.layer;
      return `<div class="at-row at-${x.kind}${first ? " at-first" : ""}" data-i="${i}" data-value="${x.value}"
        title="${esc(x.tensor)}${x.head !== null ? `, head ${x.head}` : ""}: click to fly there">
        <span class="at-label">${esc(x.label)}</span>
        <span class="at-track"><span class="at-fill ${x.value < 0 ? "neg" : "pos"}"
          style="left:${(100 * left).toFixed(3)}%;width:${Math.max(0.15, 100 * width).toFixed(3)}%"></span></span>
        <span class="at-value">${num(x.value)}</span></div>`;
    }).join("");
    const norm = d.norm.centred ? `LayerNorm, its σ = ${num(d.norm.scale)} frozen at this input's value; each part centred first`
      : `RMSNorm, its scale ${num(d.norm.scale)} frozen at this input's value`;
    this.box.innerHTML = `<div class="at-choose"><label>position <select data-at="position">${positions}</select></label>
        <label>token <select data-at="token">${tokens}</select></label><span class="at-message"></span></div>
      <p class="at-sum">The logit of <b>${esc(d.token_str)}</b> after position ${d.position} (<code>${esc(d.token_strs[d.position])}</code>):
        <b class="at-logit" data-value="${d.logit}">${num(d.logit)}</b> (P = ${pct(d.prob)}) = the sum of the ${d.parts.length}
        parts below, <span class="at-total" data-value="${d.total}">${num(d.total)}</span>: what each wrote into the residual
        stream, read through the final norm (${norm}) and the unembedding's column for ${esc(d.token_str)}.</p>
      <div class="at-bars" style="--zero:${(100 * zero).toFixed(3)}%">${rows}</div>`;
    this.box.dataset.loaded = `${d.position}:${d.token}`;
  }
}
