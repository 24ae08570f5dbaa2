// The scale table: models side by side as numbers. One row a model: its width, heads, head size, layers,
// vocabulary, context and parameters (with a bar on a log scale), and where those parameters live (embedding,
// attention, MLP, norms) as a stacked bar. A pure function of plain rows; every number comes from the server.
import { escapeHtml } from "./html";
import type { ModelConfig } from "./scenedata";
import { formatCount } from "./trace";

/** One model's row. `parts`: its parameters by part, in the server's order, adding up to `n_params`. */
export interface ScaleRow {
  name: string;
  n_embd: number; n_head: number; d_head: number; n_layer: number; vocab_size: number; n_ctx: number;
  n_params: number;
  parts: Record<string, number>;
}

/** A row from what the server says of a model (a scene's `info.model`, or /api/models' entry). */
export function scaleRow(m: { name: string; n_params: number; param_parts?: Record<string, number>; config: ModelConfig }): ScaleRow {
  const c = m.config;
  return { name: m.name, n_embd: c.n_embd, n_head: c.n_head, d_head: c.d_head!, n_layer: c.n_layer, vocab_size: c.vocab_size,
    n_ctx: c.n_ctx, n_params: m.n_params, parts: m.param_parts ?? {} };
}

/** How each part is named, and what it holds (its key is its colour's class: `scale-part-<key>`). */
const PARTS: Record<string, { label: string; holds: string }> = {
  embedding: { label: "embedding", holds: "the token and position embeddings (and an unembedding of its own)" },
  attention: { label: "attention", holds: "the query, key, value and output weights of every layer" },
  mlp: { label: "MLP", holds: "the two (or three) MLP weight matrices of every layer" },
  other: { label: "norms", holds: "the layer norms' gains and biases" },
};
const part = (key: string) => PARTS[key] ?? { label: key, holds: key };

const COLUMNS: [string, string][] = [
  ["model", ""],
  ["C", "the width of the residual stream (n_embd): numbers per token"],
  ["heads", "attention heads per layer"],
  ["head size", "channels per head (d_head)"],
  ["layers", "transformer blocks, one after another"],
  ["vocab", "tokens the model knows"],
  ["context", "positions it can look back over (n_ctx)"],
  ["parameters", "learned numbers; the bar is on a log scale"],
  ["where they live", "the share of the parameters in each part: hover a part for its count"],
];

/** A share in percent, to two significant digits below 1% (GPT-3's embedding: 0.37%; GPT-2's norms: 0.031%). */
const percent = (x: number) => (x >= 1 ? `${x.toFixed(0)}%` : `${Number(x.toPrecision(2))}%`);

/** The table's HTML. With `fly`, each row (and its name, a button) holds `data-model` = its index, for a click
 * handler that flies the camera to that model. */
export function scaleTableHtml(rows: ScaleRow[], opts: { fly?: boolean } = {}): string {
  if (!rows.length) return "";
  const counts = rows.map((r) => Math.log10(Math.max(r.n_params, 1)));
  // The log bar's track spans whole powers of ten, from one below the smallest count to the largest's.
  const lo = Math.floor(Math.min(...counts)) - 1, hi = Math.ceil(Math.max(...counts));
  const columns = COLUMNS.map(([h, why]): [string, string] =>
    [h, h === "parameters" ? `${why}: each 1/${hi - lo} of its track is ×10` : why]);
  const head = columns.map(([h, why]) => `<th scope="col"${why ? ` title="${escapeHtml(why)}"` : ""}>${escapeHtml(h)}</th>`).join("");
  const body = rows.map((r, i) => {
    const at = opts.fly ? ` data-model="${i}"` : "";
    const name = opts.fly
      ? `<button type="button" class="scale-name" data-model="${i}" title="fly to ${escapeHtml(r.name)}">${escapeHtml(r.name)}</button>`
      : `<span class="scale-name">${escapeHtml(r.name)}</span>`;
    const nums = [r.n_embd, r.n_head, r.d_head, r.n_layer, r.vocab_size, r.n_ctx].map((n) => `<td class="scale-num">${n}</td>`).join("");
    const w = ((counts[i] - lo) / (hi - lo)) * 100;
    const params = `<td class="scale-params" title="${r.n_params.toLocaleString("en-US")} parameters">` +
      `<span class="scale-count">${formatCount(r.n_params)}</span>` +
      `<span class="scale-log"><span class="scale-log-fill" style="width:${w.toFixed(1)}%"></span></span></td>`;
    const total = Object.values(r.parts).reduce((a, b) => a + b, 0) || 1;
    const segs = Object.entries(r.parts).filter(([, n]) => n > 0).map(([key, n]) => {
      const share = (100 * n) / total, p = part(key);
      const title = `${r.name}: ${p.label} ${n.toLocaleString("en-US")} parameters (${percent(share)}): ${p.holds}`;
      return `<span class="scale-part scale-part-${escapeHtml(key)}" style="flex-grow:${share.toFixed(4)}" title="${escapeHtml(title)}">` +
        `${share >= 14 ? `${share.toFixed(0)}%` : ""}</span>`;
    }).join("");
    return `<tr class="scale-row" data-name="${escapeHtml(r.name)}"${at}><th scope="row">${name}</th>${nums}${params}` +
      `<td class="scale-where"><span class="scale-stack" role="img" aria-label="${escapeHtml(shares(r))}">${segs}</span></td></tr>`;
  }).join("");
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.parts)))];
  const legend = keys.map((k) => `<span class="scale-key" title="${escapeHtml(part(k).holds)}">` +
    `<span class="scale-swatch scale-part-${escapeHtml(k)}"></span>${escapeHtml(part(k).label)}</span>`).join("");
  return `<div class="scale-table-box"><table class="scale-table"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>` +
    `<div class="scale-legend">${legend}</div>`;
}

/** The parts' shares in words: "embedding 32%, attention 23%, MLP 46%, norms 0.03%". */
function shares(r: ScaleRow): string {
  const total = Object.values(r.parts).reduce((a, b) => a + b, 0) || 1;
  return Object.entries(r.parts).map(([k, n]) => `${part(k).label} ${percent((100 * n) / total)}`).join(", ");
}
