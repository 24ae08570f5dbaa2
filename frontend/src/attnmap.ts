// Every head's attention at once: one small heatmap per layer × head, drawn on one canvas (never an element per
// cell). Hovering a query–key cell marks that pair in every head and lists its weights; a click flies the 3D
// view to the head.
import { fetchAttention } from "./api";
import { valueColor } from "./colors";
import { escapeHtml as esc } from "./html";
import { num } from "./tooltip";
import type { Trace } from "./trace";

export interface AttentionHost {
  model(): string;
  text(): string;
  /** Fly the 3D view to head `head` of this tensor. */
  flyTo(tensor: string, head: number): void;
}

interface Pick { layer: number; head: number; q: number; k: number }

const GAP = 6;

/** float16 bits to numbers, through a table of all 65,536. */
const HALF = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export class AttentionMap {
  private data: { names: string[]; heads: number; T: number; weights: Float32Array[]; tokens: string[] } | null = null;
  private cell = 0;       // pixels per heatmap
  private margin = 18;    // room on the top and left for names (and tokens, when the cells are big enough)
  private hover: Pick | null = null;
  private canvas: HTMLCanvasElement;
  private overlay: HTMLCanvasElement;
  private readout: HTMLDivElement;
  shownMs: number | null = null;

  constructor(private box: HTMLElement, private host: AttentionHost) {
    box.innerHTML = `<div class="am-wrap"><canvas class="am-canvas"></canvas><canvas class="am-overlay"></canvas></div>
      <div class="am-readout">hover a cell: that query–key pair in every head · click: fly to the head</div>`;
    this.canvas = box.querySelector(".am-canvas")!;
    this.overlay = box.querySelector(".am-overlay")!;
    this.readout = box.querySelector(".am-readout")!;
    this.overlay.addEventListener("pointermove", (e) => this.onMove(e));
    this.overlay.addEventListener("pointerleave", () => this.setHover(null));
    this.overlay.addEventListener("click", (e) => {
      const p = this.pickAt(e);
      if (p && this.data) this.host.flyTo(this.data.names[p.layer], p.head);
    });
  }

  async load(): Promise<void> {
    const t0 = performance.now();
    const trace: Trace = await fetchAttention(this.host.model(), this.host.text());
    const names: string[] = JSON.parse(trace.metadata.layers);
    const first = trace.tensors.get(names[0])!;
    const [heads, T] = first.shape;
    const weights = names.map((n) => {
      const bits = trace.tensors.get(n)!.data as Uint16Array;
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = HALF[bits[i]];
      return out;
    });
    this.data = { names, heads, T, weights, tokens: trace.tokenStrs };
    this.hover = null;
    this.draw();
    this.shownMs = performance.now() - t0;
    this.box.dataset.shownMs = this.shownMs.toFixed(0);
  }

  /** Draw every heatmap: each pixel is the largest weight of the cells it covers (peaks stay visible). */
  draw(): void {
    const d = this.data;
    if (!d) return;
    const width = Math.max(200, this.box.clientWidth - 8);
    const L = d.names.length;
    this.cell = Math.max(12, Math.min(160, Math.floor((width - 34) / d.heads) - GAP));
    const tokens = this.cell / d.T >= 9;
    this.margin = tokens ? 34 : 18;
    const M = this.margin;
    const W = M + d.heads * (this.cell + GAP), H = M + L * (this.cell + GAP);
    for (const c of [this.canvas, this.overlay]) {
      c.width = W;
      c.height = H;
    }
    const ctx = this.canvas.getContext("2d")!;
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#495057";
    ctx.font = "11px system-ui, sans-serif";
    for (let h = 0; h < d.heads; h++) ctx.fillText(`head ${h}`, M + h * (this.cell + GAP) + 2, 11);
    const s = this.cell, T = d.T;
    const img = ctx.createImageData(s, s);
    for (let l = 0; l < L; l++) {
      ctx.save();
      ctx.translate(11, M + l * (s + GAP) + s / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(`layer ${l}`, -18, 0);
      ctx.restore();
      if (tokens) this.tokenLabels(ctx, M, M + l * (s + GAP), "queries");
      for (let h = 0; h < d.heads; h++) {
        const w = d.weights[l], base = h * T * T;
        for (let py = 0; py < s; py++) {
          const q0 = Math.floor((py * T) / s), q1 = Math.max(q0 + 1, Math.floor(((py + 1) * T) / s));
          for (let px = 0; px < s; px++) {
            const k0 = Math.floor((px * T) / s), k1 = Math.max(k0 + 1, Math.floor(((px + 1) * T) / s));
            let m = 0;
            for (let q = q0; q < q1; q++) for (let k = k0; k < k1; k++) m = Math.max(m, w[base + q * T + k]);
            const [r, g, b] = k0 > q1 - 1 ? [0.93, 0.94, 0.95] : valueColor("activation", m, 1);  // above the diagonal: masked
            const i = (py * s + px) * 4;
            img.data[i] = r * 255; img.data[i + 1] = g * 255; img.data[i + 2] = b * 255; img.data[i + 3] = 255;
          }
        }
        ctx.putImageData(img, M + h * (s + GAP), M + l * (s + GAP));
        if (tokens && l === 0) this.tokenLabels(ctx, M + h * (s + GAP), M, "keys");
      }
    }
    this.drawHover();
  }

  /** Tokens in the margins: the keys above a heatmap, the queries to the left of a row of them. */
  private tokenLabels(ctx: CanvasRenderingContext2D, x: number, y: number, which: "keys" | "queries"): void {
    const d = this.data!, step = this.cell / d.T;
    ctx.fillStyle = "#343a40";
    ctx.font = `${Math.min(11, step - 1)}px ui-monospace, monospace`;
    d.tokens.forEach((t, i) => {
      if (which === "keys") ctx.fillText(t.slice(0, 3), x + i * step + 2, y - 5);
      else ctx.fillText(t.slice(0, 2), x - 14, y + i * step + step * 0.7);
    });
  }

  private pickAt(e: PointerEvent | MouseEvent): Pick | null {
    const d = this.data;
    if (!d) return null;
    const r = this.overlay.getBoundingClientRect();
    const x = ((e.clientX - r.left) * this.overlay.width) / r.width - this.margin;
    const y = ((e.clientY - r.top) * this.overlay.height) / r.height - this.margin;
    const head = Math.floor(x / (this.cell + GAP)), layer = Math.floor(y / (this.cell + GAP));
    const ix = x - head * (this.cell + GAP), iy = y - layer * (this.cell + GAP);
    if (head < 0 || layer < 0 || head >= d.heads || layer >= d.names.length || ix >= this.cell || iy >= this.cell) return null;
    return { layer, head, q: Math.floor((iy * d.T) / this.cell), k: Math.floor((ix * d.T) / this.cell) };
  }

  private onMove(e: PointerEvent): void {
    this.setHover(this.pickAt(e));
  }

  private setHover(p: Pick | null): void {
    this.hover = p;
    this.drawHover();
    const d = this.data;
    if (!p || !d) {
      this.readout.textContent = "hover a cell: that query–key pair in every head · click: fly to the head";
      return;
    }
    const rows = d.names.map((_, l) => `<tr><th>L${l}</th>${Array.from({ length: d.heads }, (_, h) => {
      const v = d.weights[l][h * d.T * d.T + p.q * d.T + p.k];
      const [r, g, b] = valueColor("activation", v, 1);
      const here = l === p.layer && h === p.head ? ' class="here"' : "";
      return `<td${here} style="background:rgb(${r * 255 | 0},${g * 255 | 0},${b * 255 | 0})">${p.k > p.q ? "" : num(v)}</td>`;
    }).join("")}</tr>`);
    this.readout.innerHTML = `query ${p.q} <b>${esc(d.tokens[p.q])}</b> → key ${p.k} <b>${esc(d.tokens[p.k])}</b>${
      p.k > p.q ? " (a future key: masked, 0 in every head)" : ""}: its weight in every head
      <table class="am-table"><tr><th></th>${Array.from({ length: d.heads }, (_, h) => `<th>h${h}</th>`).join("")}</tr>${rows.join("")}</table>`;
    this.readout.dataset.weight = String(d.weights[p.layer][p.head * d.T * d.T + p.q * d.T + p.k]);
  }

  /** The hovered pair outlined in every heatmap. */
  private drawHover(): void {
    const ctx = this.overlay.getContext("2d")!;
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    const p = this.hover, d = this.data;
    if (!p || !d) return;
    const step = this.cell / d.T, size = Math.max(2, step);
    ctx.strokeStyle = "#e8590c";
    ctx.lineWidth = 1.5;
    for (let l = 0; l < d.names.length; l++) {
      for (let h = 0; h < d.heads; h++) {
        ctx.strokeRect(this.margin + h * (this.cell + GAP) + p.k * step - 0.5, this.margin + l * (this.cell + GAP) + p.q * step - 0.5,
          size + 1, size + 1);
      }
    }
  }
}
