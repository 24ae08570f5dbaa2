// The hover tooltip: one cell's explanation (explain.ts), as HTML a learner can read and select: names, the index
// on named axes, the value and the op's formula with the real numbers.
import type { Explanation, StoredText } from "./explain";
import { escapeHtml } from "./html";
import type { BlockInfo, SceneInfo } from "./scenedata";

export type { Explanation, Region } from "./explain";

const esc = escapeHtml;
export const num = (v: number) => (v === -Infinity ? "−∞" : Number(v.toPrecision(4)).toString().replace(/-/g, "−"));

function curveSvg(c: NonNullable<NonNullable<Explanation["formula"]>["curve"]>): string {
  const W = 170, H = 70, pad = 4;
  const x0 = Math.min(...c.xs), x1 = Math.max(...c.xs), y0 = Math.min(...c.ys, 0), y1 = Math.max(...c.ys);
  const sx = (x: number) => pad + ((x - x0) / (x1 - x0)) * (W - 2 * pad);
  const sy = (y: number) => H - pad - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const pts = c.xs.map((x, i) => `${sx(x).toFixed(1)},${sy(c.ys[i]).toFixed(1)}`).join(" ");
  return `<svg class="tt-curve" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" aria-label="${esc(c.name)} curve">
    <line x1="${pad}" x2="${W - pad}" y1="${sy(0)}" y2="${sy(0)}" stroke="#ced4da"/>
    <line y1="${pad}" y2="${H - pad}" x1="${sx(0)}" x2="${sx(0)}" stroke="#ced4da"/>
    <polyline points="${pts}" fill="none" stroke="#7048e8" stroke-width="1.5"/>
    <circle cx="${sx(c.x)}" cy="${sy(c.y)}" r="3.5" fill="#e8590c"/></svg>`;
}

/** The tooltip of a cell; `clean`: in an edited pass, the same cell's value in the clean pass; `grad`: in a scene
 * coloured by the loss's gradients, the cell's gradient as drawn; `chain`: there, the chain rule of its gradient
 * (chainrule.ts's HTML), shown instead of how the value was computed; `formats`: two precisions compared, `clean` the
 * reference format's value (the first) and the cell's the other's. */
export function explanationHtml(e: Explanation, pinned: boolean, clean?: number, grad?: number, chain?: string,
  formats?: [string, string]): string {
  const idx = e.index.map((a) => `<span style="color:${a.color}">${esc(a.label.toLowerCase())}</span> = ${esc(a.shown ?? String(a.i))}`).join(", ");
  const parts = [
    `<div class="tt-name"><b>${esc(e.title)}</b><br><code>${esc(e.tensor)}</code></div>`,
    `<div class="tt-index">${idx}</div>`,
    `<div class="tt-value">value <b data-value="${e.value}">${esc(e.value_text)}</b></div>`,
  ];
  if (clean !== undefined && formats) {  // two precisions: `clean` is the reference format's value
    const d = e.value - clean;
    parts.push(`<div class="tt-clean tt-compare">${esc(formats[0])} <b data-reference="${clean}">${esc(num(clean))}</b> · ${esc(formats[1])} ` +
      `<b data-other="${e.value}">${esc(num(e.value))}</b> · difference <b data-change="${d}">${d > 0 ? "+" : ""}${esc(num(d))}</b></div>`);
  } else if (clean !== undefined) {
    const d = e.value - clean;
    parts.push(`<div class="tt-clean">clean pass <b data-clean="${clean}">${esc(num(clean))}</b> · ${
      d === 0 || Number.isNaN(d) ? "unchanged by the edits" : `changed by <b data-change="${d}">${d > 0 ? "+" : ""}${esc(num(d))}</b>`}</div>`);
  }
  if (chain !== undefined) {
    parts.push(chain);
  } else if (grad !== undefined) {
    parts.push(`<div class="tt-grad">gradient of the loss <b data-grad="${grad}">${esc(num(grad))}</b>: the loss moves by about ` +
      `${esc(num(grad))} × a small change of this number (as drawn, in float16)</div>`);
  }
  if (e.edited) {
    parts.push(`<div class="tt-edit">set by an edit: ${esc(e.edited.label)}. Before it, the pass computed ` +
      `<b data-computed="${e.edited.computed}">${esc(e.edited.computed_text)}</b> here, as follows:</div>`);
  }
  if (e.note) parts.push(`<div class="tt-note">${esc(e.note)}</div>`);
  if (e.parameter) parts.push(`<div class="tt-note">${esc(e.parameter.text)}</div>`);
  if (e.stored) parts.push(storedHtml(e.stored));
  const f = chain === undefined ? e.formula : null;  // (the gradients view: the chain rule instead)
  if (f) {
    parts.push(`<div class="tt-template">${esc(f.template)}</div>`);
    if (f.rows.length) {
      parts.push(`<table class="tt-rows">${f.rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("")}</table>`);
    }
    if (f.terms) {
      const t = f.terms;
      const rows = t.shown.map((s) => {
        const at = Object.entries(s.at).map(([, i]) => i).join(",");
        return `<tr><td>[${at}]</td><td>${num(s.x)} × ${num(s.w)}</td><td>= ${num(s.product)}</td></tr>`;
      });
      parts.push(`<div class="tt-terms-title">${t.count} terms; the ${t.shown.length} largest:</div>
        <table class="tt-terms">${rows.join("")}<tr><td>rest</td><td>${t.count - t.shown.length} more</td><td>= ${num(t.rest)}</td></tr></table>`);
    }
    if (f.curve) parts.push(curveSvg(f.curve));
    parts.push(`<div class="tt-formula${f.masked ? " masked" : ""}" data-result="${f.result}">${esc(f.text)}</div>`);
  }
  parts.push(`<div class="tt-code"><code>${esc(e.code)}</code> <button type="button" class="tt-copy">copy as code</button></div>`);
  parts.push(`<div class="tt-hint">${pinned ? "pinned · Esc or click elsewhere to unpin · Shift+arrows move" : "click to pin"}</div>`);
  return parts.join("");
}

/** A quantized model's weight: how it is stored (explain.ts's storedText), its numbers also as data attributes. */
function storedHtml(st: StoredText): string {
  const c = st.cell;
  const data = (["fmt", "code", "scale", "value", "original", "error", "block", "bits"] as const)
    .filter((k) => c[k] !== null && c[k] !== undefined).map((k) => `data-${k}="${esc(String(c[k]))}"`).join(" ");
  const rows = st.rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("");
  return `<div class="tt-stored" ${data}><div class="tt-stored-head">${esc(st.headline)}</div>` +
    (rows ? `<table class="tt-rows">${rows}</table>` : "") +
    (st.formula ? `<div class="tt-formula tt-stored-formula">${esc(st.formula)}</div>` : "") +
    (st.note ? `<div class="tt-note">${esc(st.note)}</div>` : "") + "</div>";
}

/** For a model without weights, or a tensor its engine did not fetch: what the block is, with no numbers. */
export function structureHtml(info: SceneInfo, b: BlockInfo): string {
  const ax = info.axes;
  const dims = b.dims.map(([a, n]) => `<span style="color:${ax[a].color}">${esc(ax[a].label)}</span> = ${n.toLocaleString("en")}`).join(", ");
  const count = b.dims.reduce((n, [, s]) => n * s, 1);
  const op = b.op ? info.ops[b.op] : null;
  const what = b.kind === "weight" ? `${count.toLocaleString("en")} parameters`
    : `${count.toLocaleString("en")} numbers, computed for each input`;
  return `<div class="tt-name"><b>${esc(b.title)}</b><br><code>${esc(b.tensor)}</code></div>
    <div class="tt-index">${dims}</div><div class="tt-note">${what}</div>
    ${op ? `<div class="tt-note">${esc(op.description)} <code>${esc(op.formula)}</code></div>` : ""}
    <div class="tt-note structure">${b.fetched === false
    ? `not fetched by the ${esc(info.model.engine ?? "")} engine: this pass returned no numbers for it`
    : "structure only: no weights loaded, so no values"}</div>`;
}
