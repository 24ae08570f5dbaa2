// The map of a model: its sections (the embedding, each layer's attention and MLP, the output) as buttons that
// fly the camera there, and one that shows the whole model. Built from the sections the server laid out.
import { escapeHtml } from "./html";
import type { Section } from "./scenedata";

/** The map's HTML: top-level sections in order, each with its children (a layer's attention and MLP). */
export function overviewHtml(sections: Section[]): string {
  const top = sections.filter((s) => !s.parent);
  const rows = top.map((s) => {
    const kids = sections.filter((k) => k.parent === s.key)
      .map((k) => `<button type="button" data-section="${escapeHtml(k.key)}">${escapeHtml(k.title)}</button>`);
    return `<li><button type="button" class="ov-main" data-section="${escapeHtml(s.key)}">${escapeHtml(s.title)}</button>${kids.join("")}</li>`;
  });
  return `<button type="button" class="ov-all" data-section="*">Whole model</button><ol>${rows.join("")}</ol>`;
}
