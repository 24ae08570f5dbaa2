// The text over one model's scene: block names and shapes, section titles, the tokens along named axes,
// the prediction under the output, the + where branches rejoin the residual stream. Everything comes from
// the scene the server sent; what is more important wins when labels collide.
import * as THREE from "three";
import { blockWidth, slabGeometry } from "./blocks";
import { listedModel } from "./engine";
import { escapeHtml } from "./html";
import type { Label } from "./labels";
import { framePad, type BlockInfo, type SceneData, type Section } from "./scenedata";
import { formatCount } from "./trace";

// Who wins a collision: the input row, then section titles and the model's title, then the structure
// (the +, the residual stream, the weights a learner looks for), then everything else.
const PRIORITY = { input: 6, title: 5, section: 4, symbol: 4, residual: 3, prediction: 3, weight: 1, block: 0, detail: -1 };

/** "H × T × A = 3 × 6 × 16", each axis letter in its axis colour. */
export function shapeHtml(data: SceneData, b: BlockInfo): string {
  const ax = data.info.axes;
  const letters = b.dims.map(([a]) => `<span style="color:${ax[a].color}">${escapeHtml(ax[a].label)}</span>`);
  return `${letters.join(" × ")} = ${b.dims.map(([, n]) => n).join(" × ")}`;
}

/** "max |value| per 1×99 tile": rows × columns of the tensor behind each displayed cell. */
export function tileText(b: BlockInfo): string {
  return `max |value| per ${b.tile[1]}×${b.tile[0]} tile`;
}

const v3 = (x: number, y: number, z: number) => new THREE.Vector3(x, y, z);

/** A block's box in the world, every slab of it: the box buildModel draws it in (blocks.ts), where no label goes. */
export function blockBox(b: BlockInfo, offsetX: number): THREE.Box3 {
  const box = new THREE.Box3();
  for (let s = 0; s < (b.merged ? 1 : b.depth); s++) {
    const g = slabGeometry(b, s);
    box.expandByPoint(v3(g.x + offsetX, g.y - b.rows, g.z - g.thick)).expandByPoint(v3(g.x + offsetX + b.cols, g.y, g.z));
  }
  return box;
}

/** A model's title: drawn `offset` px above its anchor (its model's top-left corner), `height` px tall. */
export const TITLE = { offset: 30, height: 44, note: 17 /* a third line: the engine's note */ };

/** About how many pixels wide a model's name is in its title (18px bold). */
export const titleNameWidth = (name: string) => name.length * 11;

/** several: one of several models side by side (the scale view), whose title leaves "structure only" to the notice. */
export function sceneLabels(data: SceneData, offsetX: number, several = false): Label[] {
  const info = data.info;
  const out: Label[] = [];
  const names = info.axis_names ?? {};
  const tokensText = info.token_strs ? ` <span class="tokens">${escapeHtml(info.token_strs.slice(0, 24).join(" "))}` +
    `${info.token_strs.length > 24 ? " …" : ""}</span>` : "";
  let residualLabelled = false;
  info.blocks.forEach((b) => {
    const x = b.x + offsetX;
    const width = blockWidth(b);
    const sampled = b.tile[0] * b.tile[1] > 1 ? ` <span class="tile">${tileText(b)}</span>` : "";
    const input = b.kind === "input";  // the input row's label goes under it, clear of the section title
    const short = `<b>${escapeHtml(b.short)}</b>${input && !b.wrap ? tokensText : ""}`;  // (an image's: its picture)
    const priority = input ? PRIORITY.input : b.kind === "weight" ? PRIORITY.weight : PRIORITY.block;
    out.push({ anchor: v3(x, input ? b.y - b.rows - 0.3 : b.y + 0.3, b.z), worldSize: Math.max(width, b.rows, 1.5),
      minPixels: input ? 0 : 14, compact: short, fullPixels: 110, html: `${short} ${shapeHtml(data, b)}${sampled}`,
      cls: `block kind-${b.kind}`, above: !input, priority, data: { tensor: b.tensor }, of: blockBox(b, offsetX),
      alt: input ? undefined : { anchor: v3(x + width, b.y + 0.3, b.z), align: "right" } });
    if (b.residual && !input && !residualLabelled) {  // once: the centre column is one stream
      residualLabelled = true;
      // Beside the band where it leaves the input, in the first view, half way down to this first add.
      const from = info.blocks.find((t) => t.kind === "input" && t.residual);
      const y = from && from.x === b.x ? (from.y - from.rows + b.y) / 2 : b.y - b.rows / 2;
      out.push({ anchor: v3(x - 1.2, y, b.z), worldSize: b.rows, minPixels: 30, align: "right",
        html: "residual stream ↓", cls: "residual-name", priority: PRIORITY.residual });
    }
    const symbol = b.op ? info.ops[b.op]?.symbol : null;
    if (symbol) {  // where two paths meet: drawn between the block and what flows into it
      out.push({ anchor: v3(x + b.cols / 2, b.y + 2.2, b.z + 0.5), worldSize: 4, minPixels: 6, align: "center",
        // (its box, which no block or title may meet, just the glyph's 16px, not a 22px line's 26px; centred where the
        // line's was, 5px lower than the box's own middle)
        html: `<span style="display:block;height:16px;line-height:16px">${escapeHtml(symbol)}</span>`, offsetY: 5,
        cls: "symbol", priority: PRIORITY.symbol, data: { tensor: b.tensor },
        whole: true });  // (a + cut at the view's edge says nothing)
    }
    if (b.depth > 1 && !b.merged && b.x_step > 0) {  // heads side by side: each one named under its slab
      for (let s = 0; s < b.depth; s++) {
        const g = slabGeometry(b, s);
        out.push({ anchor: v3(g.x + offsetX, b.y - b.rows - (names[b.axes[0] ?? ""] ? 1.5 : 0.3), g.z), worldSize: b.cols,
          minPixels: 40, html: `head ${s}`, cls: "head", priority: PRIORITY.detail });
      }
    } else if (b.depth > 1 && b.tensor.endsWith("hook_q")) {  // one note per layer: heads stack front to back
      const text = b.merged ? `${b.depth} heads (front: head 0)` : `heads 0–${b.depth - 1}, front to back`;
      out.push({ anchor: v3(x - 0.6, b.y - b.rows / 2, b.z), worldSize: b.rows, minPixels: 30, align: "right",
        html: text, cls: "head", priority: PRIORITY.detail });
    }
    axisNames(b, names, offsetX, out);
    if (info.past && b.axes[0] === "key_pos") {  // a generation step: these columns came from the KV cache
      out.push({ anchor: v3(x, b.y - b.rows - 2.6, b.z), worldSize: b.cols, minPixels: 40, cls: "cache-note",
        html: `columns 0–${info.past - 1}: from the cache · ${info.past}${b.cols - info.past > 1 ? `–${b.cols - 1}` : ""}: new`,
        priority: PRIORITY.detail, data: { tensor: b.tensor } });
    }
  });
  // A section's title sits above its frame's top-left corner while it fits there: a part's (attention, MLP) in the
  // gap between its frame and its layer's, a layer's in the space above its frame. Zoomed out further, a layer's
  // title moves beside its frame, on the left, and a part's hides: neither covers the cells.
  for (const s of info.sections) {
    const room = roomAbove(info.sections, s);
    const base = { worldSize: s.x1 - s.x0, minPixels: 60, html: escapeHtml(s.title), priority: PRIORITY.section, charWidth: 9 };
    // (15px text, 18px tall; above its anchor by 1.5em, beside it level: style.css)
    const cls = `section section-${s.title.split(" ")[0].toLowerCase()}`;
    out.push({ ...base, anchor: v3(s.x0 + offsetX - 3, s.y0 + 3, 1), cls, above: true, box: { dy: -23, h: 19 },
      also: room === null ? undefined : { size: room, min: s.parent ? PART_GAP : SECTION_LINE },
      // (its corner over cells of a section beside it: above the frame's other end)
      alt: { anchor: v3(s.x1 + offsetX + 3, s.y0 + 3, 1), align: "right" } });
    if (!s.parent && room !== null) {
      out.push({ ...base, anchor: v3(s.x0 + offsetX - framePad(info.sections, s) - 1, s.y0 + framePad(info.sections, s), 1),
        cls: `${cls} beside`, align: "right", also: { size: room, max: SECTION_LINE }, box: { dy: 0, h: 19 },
        offsetX: -4,  // (clear of the frame, and of the cells in it, however small the model is on screen)
        // (its corner taken, by the input's label above the first layer, say: halfway down its frame's side)
        alt: { anchor: v3(s.x0 + offsetX - framePad(info.sections, s) - 1, (s.y0 + s.y1) / 2, 1), align: "right" } });
    }
  }
  const tok = info.blocks.find((b) => b.kind === "input");
  if (tok && info.token_strs && !tok.wrap) {  // (an image's pixels: their shades are the picture, each hover its number)
    info.token_strs.forEach((t, i) => void out.push({ anchor: v3(tok.x + offsetX + i + 0.5, tok.y + 1.6, 0),
      worldSize: 1, minPixels: 12, html: `${escapeHtml(t)}<small>${info.tokens![i]}</small>`, cls: "token", above: true,
      align: "center", priority: PRIORITY.input, charWidth: 9.5 }));
  }
  predictionLabels(data, offsetX, out);
  out.push(titleLabel(data, offsetX, several));
  return out;
}

const SECTION_LINE = 12;  // pixels a layer's title needs above its frame (its letters' height)
const PART_GAP = 4;  // pixels between a part's frame and its layer's from which the part's title shows (it overhangs)

/** The world units above a section's frame that hold no cells, where its title goes: a part's, the gap inside its
 * layer's frame; a layer's, up to the cells of the section above; null for the first section (the model's title is
 * above it). */
function roomAbove(sections: Section[], s: Section): number | null {
  if (s.parent) return framePad(sections, sections.find((p) => p.key === s.parent)!) - framePad(sections, s);
  const above = sections.filter((o) => !o.parent && o.y1 > s.y0);
  if (!above.length) return null;
  const next = above.reduce((a, b) => (b.y1 < a.y1 ? b : a));
  return next.y1 - (s.y0 + framePad(sections, s));
}

/** The model's title, at its model's top-left corner and the same size on screen at any zoom: its name and its
 * parameter count. Every model's name is placed first (the bigger model's on screen first, where two would
 * overlap), then each grows to name and count where that covers nothing. */
function titleLabel(data: SceneData, offsetX: number, several: boolean): Label {
  const m = data.info.model, [, y0, , y1] = data.info.bounds;
  const line2 = `${formatCount(m.n_params)} parameters${m.has_weights || several ? "" : " · structure only"}`;
  const name = escapeHtml(m.name);
  const note = several ? "" : listedModel(m.name)?.engine_note ?? "";  // (how another engine runs it: nnsight's grey blocks)
  // (its 13px count: about 7.2 px a character). Only whole on screen: a cut title says nothing.
  return { anchor: titleAnchor(data, offsetX), worldSize: y0 - y1, minPixels: 0, offsetY: -TITLE.offset,
    height: TITLE.height + (note ? TITLE.note : 0),
    html: `<span class="model-title-text">${name}<br><small>${escapeHtml(line2)}</small>` +
      `${note ? `<br><small class="engine-note">${escapeHtml(note)}</small>` : ""}</span>`,
    compact: `<span class="model-title-text">${name}</span>`, fullPixels: 0,
    widths: { full: Math.max(titleNameWidth(m.name), Math.max(line2.length, note.length) * 7.2), compact: titleNameWidth(m.name) },
    cls: "model-title", above: true, priority: PRIORITY.title, whole: true, namesFirst: true };
}

/** Where the model's title sits: at its top-left corner, drawn TITLE.offset px above the first section's title. */
export function titleAnchor(data: SceneData, offsetX: number): THREE.Vector3 {
  const top = data.info.sections.find((s) => !s.parent);
  return v3(data.info.bounds[0] + offsetX, (top ? top.y0 : 0) + 3, 0);
}

/** The names of a block's indices along a named axis (the tokens across an attention pattern, the vocabulary
 * down the logits), when each displayed cell is one index. Columns are named under the block, rows left of it. */
function axisNames(b: BlockInfo, names: Record<string, string[]>, offsetX: number, out: Label[]) {
  const [across, down] = b.axes;
  const heads = b.merged ? 1 : b.depth;
  for (let s = 0; s < heads; s++) {
    const g = slabGeometry(b, s);
    if (s > 0 && b.x_step === 0) break;  // stacked: the front slab's names serve them all
    const colNames = across ? names[across] : undefined;
    if (colNames && b.tile[0] === 1 && colNames.length === b.cols && b.kind !== "input") {
      colNames.forEach((n, i) => void out.push({ anchor: v3(g.x + offsetX + i + 0.5, b.y - b.rows - 0.2, g.z), worldSize: 1,
        minPixels: 13, html: escapeHtml(n), cls: "axis-name", align: "center", priority: PRIORITY.detail,
        data: { tensor: b.tensor, axis: across! }, group: `${b.tensor}|${across}|${s}` }));
    }
    const rowNames = down ? names[down] : undefined;
    if (rowNames && b.tile[1] === 1 && rowNames.length === b.rows && s === 0) {
      rowNames.forEach((n, i) => void out.push({ anchor: v3(g.x + offsetX - 0.3, b.y - i - 0.5, g.z), worldSize: 1,
        minPixels: 13, html: escapeHtml(n), cls: "axis-name row", align: "right", priority: PRIORITY.detail,
        data: { tensor: b.tensor, axis: down! }, group: `${b.tensor}|${down}` }));
    }
  }
}

/** Under the output's columns, what each position predicts. Only the last position predicts the next token;
 * the earlier ones predict tokens the input already gives, so they are grey. */
function predictionLabels(data: SceneData, offsetX: number, out: Label[]) {
  const info = data.info;
  const out_ = info.blocks[info.blocks.length - 1];  // the graph's last tensor: the next-token probabilities
  if (!out_ || !info.predicted || out_.axes[0] !== "pos") return;
  const last = info.predicted.length - 1;
  const y = out_.y - out_.rows - (info.axis_names?.pos ? 1.6 : 0.8);
  info.predicted.forEach((t, i) => {
    const next = i === last;
    out.push({ anchor: v3(out_.x + offsetX + i + 0.5, y, 0), worldSize: 1, minPixels: 12, align: "center",
      // The next token's name hides while the walkthrough asks the learner to guess it (body.guessing).
      html: next ? `→ <span class="answer">${escapeHtml(t)}</span><span class="unanswered">?</span><small>next</small>` : `${escapeHtml(t)}`,
      cls: `token predicted${next ? " next" : " given"}`, priority: next ? PRIORITY.prediction : PRIORITY.detail,
      charWidth: 9.5, data: { tensor: out_.tensor, position: String(i) } });
  });
  // Beside the predictions, else (the view's edge or another label in the way) centred under them, clear of the next
  // token's two lines (17px and 10px text); 17em of 11px text, 4 lines.
  out.push({ anchor: v3(out_.x + offsetX + out_.cols + 1, y, 0), worldSize: out_.cols, minPixels: 40,
    html: "only the last position predicts the next token; the grey ones predict tokens the input already gives",
    cls: "prediction-note", priority: PRIORITY.detail, width: 190, height: 58,
    alt: { anchor: v3(out_.x + offsetX + out_.cols / 2, y, 0), align: "center", offsetY: 38 } });
}
