// The precision selector: the model on screen with its weights stored in fewer bits (f16, bf16, int8, q8_0, q4_0:
// core/quant.py), as the server lists them for each model it serves (ModelInfo.precisions: the format, its bits and
// the model's name in it, nano-gpt:q4_0); and the toggle that colours a quantized model's weights by their
// quantization error (POST /api/scene's quant_error: the stored weights' stored − original, drawn by blocks.ts).
import type { ModelInfo } from "./api";
import type { components } from "./api-schema";
import type { SceneInfo } from "./scenedata";

export type Precision = components["schemas"]["Precision"];

/** The served model a name shows and its precision: a listed model itself (its f32, if it has formats), or one of its
 * formats (nano-gpt:q4_0); null: neither. */
export function precisionOf(models: ModelInfo[], name: string): { model: ModelInfo; precision: Precision | null } | null {
  for (const m of models) {
    const p = m.precisions?.find((x) => x.model === name);
    if (p) return { model: m, precision: p };
    if (m.name === name) return { model: m, precision: null };
  }
  return null;
}

/** Whether a name is a served model with its weights stored in another format than float32. */
export function isQuantized(models: ModelInfo[], name: string): boolean {
  const p = precisionOf(models, name)?.precision;
  return !!p && p.format !== "f32";
}

/** The selector's options for the model a name shows: each format with its bits (none: a model with no formats). */
export function precisionOptions(models: ModelInfo[], name: string): { value: string; text: string; selected: boolean }[] {
  const shown = precisionOf(models, name);
  return (shown?.model.precisions ?? []).map((p) => ({ value: p.model, text: `${p.format} · ${p.bits} bits`,
    selected: p.model === name || (p.format === "f32" && shown!.model.name === name) }));
}

/** Whether the weights are coloured by their quantization error (the toggle: asked for while a quantized model shows). */
export const quantView = { error: false };

/** The selector and the toggle for the view on screen (`info`: one model's pass; undefined: the scale view). */
export function syncPrecision(models: ModelInfo[], info: SceneInfo | undefined, select: HTMLSelectElement,
  field: HTMLElement, toggle: HTMLButtonElement): void {
  const options = info ? precisionOptions(models, info.model.name) : [];
  field.hidden = !options.length;
  if (select.dataset.for !== options.map((o) => o.value).join(",")) {
    select.replaceChildren(...options.map((o) => Object.assign(document.createElement("option"), { value: o.value, textContent: o.text })));
    select.dataset.for = options.map((o) => o.value).join(",");
  }
  const chosen = options.find((o) => o.selected);
  if (chosen) select.value = chosen.value;
  // The error colouring: a quantized model's whole clean pass (not a generation step, an edited pass, the gradients).
  const can = !!info && isQuantized(models, info.model.name) && !info.past && !info.edits?.length && info.loss == null && !info.compare;
  toggle.hidden = !can;
  toggle.setAttribute("aria-pressed", String(can && info!.quant_error != null));
}
