// The legend: what the colours mean (only the families the scene shows) and the colour of each axis.
import { FAMILIES, GRADIENT, KINDS, MASKED, QUANT_ERROR, STRUCTURE } from "./colors";
import { listedModel } from "./engine";
import { escapeHtml } from "./html";
import { fmt } from "./pyformat";
import type { SceneInfo } from "./scenedata";

export function legendHtml(info: SceneInfo | undefined): string {
  const rows: string[] = [];
  const families = info?.loss != null ? [GRADIENT] : KINDS.filter((k) => k !== "input").map((k) => FAMILIES[k]);
  if (info?.loss != null) {  // a scene coloured by the loss's gradients: their own palette, every block
    rows.push(`<div class="legend-row"><span class="bar" style="background:linear-gradient(90deg, ${GRADIENT.negative}, #fff, ${
      GRADIENT.positive})"></span>${GRADIENT.label}: how the loss moves as each number grows</div>`);
    rows.push(`<div class="legend-note">each block: −scale · 0 · +scale of its own gradients</div>`);
  } else if (!info || info.model.has_weights) {
    if (info?.quant_error != null) {  // a quantized model's weights coloured by their error (the rest by their values)
      families.unshift(QUANT_ERROR);
      rows.push(`<div class="legend-row legend-error"><span class="bar" style="background:linear-gradient(90deg, ${QUANT_ERROR.negative}, #fff, ${
        QUANT_ERROR.positive})"></span>weights: ${QUANT_ERROR.label}, what storing them in ${escapeHtml(info.model.name)} changed</div>`);
      rows.push(`<div class="legend-note">one scale for all the quantized weights: −${fmt(info.quant_error)} · 0 · ` +
        `+${fmt(info.quant_error)}; the other blocks, and the weights kept in float32, by their values:</div>`);
    }
    for (const k of KINDS.filter((k) => k !== "input")) {
      const f = FAMILIES[k];
      rows.push(`<div class="legend-row"><span class="bar" style="background:linear-gradient(90deg, ${f.negative}, #fff, ${f.positive})"></span>${f.label}</div>`);
    }
    rows.push(`<div class="legend-note">each block: −scale · 0 · +scale (click a block for its scale)</div>`);
  } else {
    rows.push(`<div class="legend-note">structure only: blocks show shapes, no numbers</div>`);
  }
  rows.push(`<div class="legend-row"><span class="bar masked" style="background:${MASKED}"></span>masked: a future position</div>`);
  if (info?.not_fetched?.length) {  // an engine that returned part of the graph (nnsight): its grey, and what it cannot offer
    const why = Object.values(listedModel(info.model.name)?.cannot ?? {}).join("\n");
    rows.push(`<div class="legend-row legend-unfetched" title="${escapeHtml(why)}"><span class="bar" style="background:${STRUCTURE}"></span>` +
      `grey: not fetched by the ${escapeHtml(info.model.engine ?? "")} engine, so no numbers</div>`);
  }
  const axes = info ? Object.entries(info.axes).map(([name, a]) =>
    `<span class="axis" title="${escapeHtml(a.description)}"><span style="color:${a.color}">■ ${escapeHtml(a.label)}</span> ${name}</span>`) : [];
  // Folded to a chip by default (its swatches hint at what it explains), so that it covers none of the model.
  const swatches = (!info || info.model.has_weights ? families : []).map((f) =>
    `<span class="chip-swatch" style="background:linear-gradient(90deg, ${f.negative}, #fff, ${f.positive})"></span>`);
  return `<details id="legend-box"><summary>Legend ${swatches.join("")}</summary>${rows.join("")}<div class="axes">${axes.join("")}</div></details>`;
}
