// The logit lens: what the model would predict from the residual stream after each layer, at each position.
// A grid of layers × positions, each cell its most probable token, coloured by that probability; hovering a
// cell lists its top 5.
import { fetchLens, type Lens } from "./api";
import { valueColor } from "./colors";
import { escapeHtml as esc } from "./html";

export interface LensHost { model(): string; text(): string }

const pct = (p: number) => `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 2 : 1)}%`;

export class LensGrid {
  private lens: Lens | null = null;

  constructor(private box: HTMLElement, private host: LensHost) {
    box.addEventListener("pointerover", (e) => this.onHover(e));
    box.addEventListener("pointerleave", () => this.tip().hidden = true);
  }

  async load(): Promise<void> {
    this.lens = await fetchLens(this.host.model(), this.host.text(), 5);
    const l = this.lens;
    const head = `<tr><th></th>${l.token_strs.map((t, i) => `<th title="position ${i}">${esc(t)}</th>`).join("")}</tr>`;
    // The last layer at the top, as the model's own prediction; the embeddings at the bottom.
    const rows = l.top.map((layer, li) => `<tr><th>${esc(l.labels[li])}</th>${layer.map((top, pos) => {
      const [r, g, b] = valueColor("weight", top[0].prob, 1);
      return `<td data-layer="${li}" data-pos="${pos}" style="background:rgb(${r * 255 | 0},${g * 255 | 0},${b * 255 | 0})"
        class="${top[0].prob > 0.6 ? "strong" : ""}">${esc(top[0].token)}</td>`;
    }).join("")}</tr>`).reverse();
    this.box.innerHTML = `<p class="lens-what">Each row decodes the residual stream at that depth (the final layer norm,
      the unembedding, a softmax): the most probable next token at each position, shaded by its probability.
      The top row is the model's own prediction.</p>
      <div class="lens-scroll"><table class="lens">${rows.join("")}${head}</table></div><div class="lens-tip" hidden></div>`;
  }

  private tip(): HTMLDivElement {
    return this.box.querySelector(".lens-tip") as HTMLDivElement;
  }

  private onHover(e: PointerEvent): void {
    const td = (e.target as HTMLElement).closest<HTMLElement>("td[data-layer]");
    const tip = this.tip();
    if (!td || !this.lens || !tip) return;
    const l = this.lens, li = Number(td.dataset.layer), pos = Number(td.dataset.pos);
    tip.innerHTML = `<b>${esc(l.labels[li])}</b>, position ${pos} (<code>${esc(l.token_strs[pos])}</code>): top ${l.top[li][pos].length}
      <table>${l.top[li][pos].map((t) => `<tr><td><code>${esc(t.token)}</code></td><td>${pct(t.prob)}</td></tr>`).join("")}</table>`;
    tip.hidden = false;
    const box = this.box.getBoundingClientRect(), r = td.getBoundingClientRect();
    tip.style.left = `${Math.min(r.right - box.left + 6, box.width - 200)}px`;
    tip.style.top = `${r.top - box.top}px`;
  }
}
