// The input of an image model (digits-mlp): a square of pixels to draw on with the mouse or a finger, in place of
// the text input. Python decides: the pad appears only for a scene whose model says it reads an image
// (config.image_side), at that size; a stroke's pixels go to the server as the model's input text (its side² numbers
// row by row, 0 = blank to 16 = ink, as Model.pixels reads them), and the view shows that pass.
// Hovering a cell of a hidden unit (an axis that a weight [pixel, that axis] reads into, as the scene's blocks say)
// draws that unit's weights as a picture beside the drawing, with the drawing's ink over it.
import { check, post } from "./api";
import type { components } from "./api-schema";
import { escapeHtml } from "./html";
import { valueColor } from "./colors";
import type { SceneInfo } from "./scenedata";
import { parseTrace } from "./trace";
import { request } from "./transport";

const INK = 16;  // a pixel's most ink (scikit-learn's digits count 16 inked cells of the original bitmap)
const CELL = 22;  // screen pixels per image pixel

type Draw = (text: string) => void;

interface Picture { weight: string; unitAxis: string; units: number; data: Float32Array | null }

let pad: {
  root: HTMLElement; canvas: HTMLCanvasElement; unitCanvas: HTMLCanvasElement; unitTitle: HTMLElement; side: number;
  pixels: number[]; onDraw: Draw; info?: SceneInfo; pictures: Map<string, Picture>; model: string;
} | null = null;

/** The pixels as the model's input text: row by row, separated by spaces. */
export function pixelsText(pixels: number[]): string {
  return pixels.map((v) => String(Math.round(v))).join(" ");
}

/** The pixels a text names (the model's input), or null if it is not side² numbers from 0 to INK. */
export function parsePixels(text: string, side: number): number[] | null {
  const parts = text.replace(/,/g, " ").trim().split(/\s+/).map(Number);
  return parts.length === side * side && parts.every((v) => Number.isFinite(v) && v >= 0 && v <= INK) ? parts : null;
}

/** Ink a stroke point (x, y in image pixels, fractional) into the pixels: the pixel under it full, its neighbours
 * less the farther their centre is, each pixel keeping the most ink any point gave it. */
export function inkAt(pixels: number[], side: number, x: number, y: number): void {
  for (let r = Math.max(0, Math.floor(y) - 2); r <= Math.min(side - 1, Math.floor(y) + 2); r++) {
    for (let c = Math.max(0, Math.floor(x) - 2); c <= Math.min(side - 1, Math.floor(x) + 2); c++) {
      const d = Math.hypot(c + 0.5 - x, r + 0.5 - y);
      const v = Math.round(INK * Math.min(1, Math.max(0, 1.4 - d)));
      pixels[r * side + c] = Math.max(pixels[r * side + c], v);
    }
  }
}

function paint(): void {
  if (!pad) return;
  const { canvas, side, pixels } = pad;
  const g = canvas.getContext("2d");
  if (!g) return;
  for (let i = 0; i < side * side; i++) {
    const shade = Math.round(255 * (1 - pixels[i] / INK));
    g.fillStyle = `rgb(${shade},${shade},${shade})`;
    g.fillRect((i % side) * CELL, Math.floor(i / side) * CELL, CELL, CELL);
  }
  g.strokeStyle = "#dee2e6";
  g.lineWidth = 1;
  for (let k = 0; k <= side; k++) {
    g.beginPath();
    g.moveTo(k * CELL + 0.5, 0);
    g.lineTo(k * CELL + 0.5, side * CELL);
    g.moveTo(0, k * CELL + 0.5);
    g.lineTo(side * CELL, k * CELL + 0.5);
    g.stroke();
  }
  pad.root.dataset.pixels = pixelsText(pixels);
}

/** Set up the pad in `root` (hidden until a scene of an image model): a finished stroke, or Clear, calls onDraw with
 * the new input text. */
export function mountDigitPad(root: HTMLElement, onDraw: Draw): void {
  root.innerHTML = `<div class="dp-title">draw a digit <span class="dp-how">(mouse or finger)</span></div>
    <div class="dp-row"><canvas class="dp-draw" aria-label="drawing pad: the model's input image"></canvas>
    <div class="dp-unit" hidden><canvas aria-label="the hovered unit's weights as a picture"></canvas>
      <div class="dp-unit-title"></div></div></div>
    <div class="dp-buttons"><button type="button" data-pad="clear">Clear</button></div>
    <details class="dp-mistakes"><summary>held-out digits it gets wrong</summary><div class="dp-list"></div></details>`;
  const canvas = root.querySelector(".dp-draw") as HTMLCanvasElement;
  pad = { root, canvas, unitCanvas: root.querySelector(".dp-unit canvas") as HTMLCanvasElement,
    unitTitle: root.querySelector(".dp-unit-title") as HTMLElement, side: 0, pixels: [], onDraw, pictures: new Map(), model: "" };
  const tip = document.querySelector<HTMLElement>("#tooltip");
  if (tip) new MutationObserver(() => showUnit(tip)).observe(tip, { attributes: true, attributeFilter: ["hidden", "data-tensor", "data-index"] });
  let drawing = false;
  const at = (e: PointerEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * (pad?.side ?? 0), ((e.clientY - r.top) / r.height) * (pad?.side ?? 0)];
  };
  canvas.addEventListener("pointerdown", (e) => {
    if (!pad) return;
    e.preventDefault();
    try {
      canvas.setPointerCapture(e.pointerId);  // the stroke goes on past the pad's edge
    } catch {
      // (a pointer the browser no longer tracks: the stroke is drawn all the same)
    }
    drawing = true;
    inkAt(pad.pixels, pad.side, ...at(e));
    paint();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing || !pad) return;
    for (const p of e.getCoalescedEvents?.() ?? [e]) inkAt(pad.pixels, pad.side, ...at(p));
    paint();
  });
  const end = () => {
    if (!drawing || !pad) return;
    drawing = false;
    pad.onDraw(pixelsText(pad.pixels));
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  const mistakes = root.querySelector(".dp-mistakes") as HTMLDetailsElement;
  mistakes.addEventListener("toggle", () => {
    if (mistakes.open) void listMistakes(mistakes.querySelector(".dp-list") as HTMLElement);
  });
  mistakes.addEventListener("click", (e) => {  // a mistake opened: its image becomes the input
    const text = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-text]")?.dataset.text;
    if (text !== undefined && pad) pad.onDraw(text);
  });
  root.querySelector("[data-pad=clear]")?.addEventListener("click", () => {
    if (!pad) return;
    pad.pixels.fill(0);
    paint();
    pad.onDraw(pixelsText(pad.pixels));
  });
}

/** The weights that picture a unit: for each axis that a weight [pixel, axis] reads the image into (the scene's
 * blocks say), that weight. */
function picturesOf(info: SceneInfo): Map<string, Picture> {
  const out = new Map<string, Picture>();
  for (const b of info.blocks) {
    if (b.kind !== "weight" || b.dims.length !== 2 || b.dims[0][0] !== "pixel") continue;
    const [axis, units] = b.dims[1];
    out.set(axis, { weight: b.tensor, unitAxis: axis, units, data: null });
  }
  return out;
}

/** The hovered cell's unit, if it is one a weight pictures: draw that unit's weights over the drawing. */
function showUnit(tip: HTMLElement): void {
  if (!pad?.info || pad.root.hidden) return;
  const box = pad.root.querySelector(".dp-unit") as HTMLElement;
  const block = tip.hidden ? undefined : pad.info.blocks.find((b) => b.tensor === tip.dataset.tensor);
  const index: number[] = tip.dataset.index ? JSON.parse(tip.dataset.index) : [];
  const at = block ? block.dims.findIndex(([a]) => pad!.pictures.has(a)) : -1;
  if (!block || at < 0 || index.length !== block.dims.length) return;  // (the last unit's picture stays)
  const picture = pad.pictures.get(block.dims[at][0])!;
  const unit = index[at];
  const model = pad.model;
  void weights(picture).then(() => {
    if (!pad || pad.model !== model || !picture.data) return;
    const { side, unitCanvas } = pad;
    const g = unitCanvas.getContext("2d");
    if (!g) return;
    unitCanvas.width = unitCanvas.height = side * CELL;
    const column = Array.from({ length: side * side }, (_, i) => picture.data![i * picture.units + unit]);
    const scale = column.reduce((m, v) => Math.max(m, Math.abs(v)), 0);  // this unit's largest: its full colour
    for (let i = 0; i < side * side; i++) {
      const [r, gr, b] = valueColor("weight", column[i], scale);
      g.fillStyle = `rgb(${Math.round(r * 255)},${Math.round(gr * 255)},${Math.round(b * 255)})`;
      g.fillRect((i % side) * CELL, Math.floor(i / side) * CELL, CELL, CELL);
      const ink = pad.pixels[i] / INK;  // the drawing over it: a dot as dark as the pixel's ink
      if (ink > 0) {
        g.fillStyle = `rgba(0,0,0,${0.75 * ink})`;
        g.beginPath();
        g.arc((i % side + 0.5) * CELL, (Math.floor(i / side) + 0.5) * CELL, CELL * 0.22, 0, 2 * Math.PI);
        g.fill();
      }
    }
    pad.unitTitle.textContent = `${picture.weight}[:, ${unit}]: unit ${unit}'s weight on each pixel ` +
      `(full colour: ±${scale.toPrecision(3)}), the drawing's ink as dots`;
    pad.root.dataset.unit = `${picture.weight}:${unit}`;
    box.hidden = false;
  });
}

/** The held-out digits the model gets wrong (the server's list), each a button that opens it. */
async function listMistakes(list: HTMLElement): Promise<void> {
  if (!pad || list.dataset.model === pad.model) return;
  const model = pad.model;
  list.dataset.model = model;
  list.textContent = "…";
  try {
    const res = await check(await request(`/api/models/${encodeURIComponent(model)}/mistakes`));
    const m = (await res.json()) as components["schemas"]["Mistakes"];
    list.innerHTML = `<div class="dp-note">${m.mistakes.length} of ${m.tested} images it never trained on ` +
      `(${(100 * m.accuracy).toFixed(1)} % right), each as <b>the digit written → the digit the model reads</b>; ` +
      "click one to open it</div>" +
      m.mistakes.map((x) => `<button type="button" data-text="${escapeHtml(x.text)}" data-index="${x.index}" ` +
        `title="image ${x.index}: a ${x.label}, read as ${x.predicted} (${(100 * x.prob).toFixed(1)} %)">` +
        `${x.label} → ${x.predicted}</button>`).join("");
  } catch (e) {
    list.textContent = (e as Error).message;
    delete list.dataset.model;
  }
}

/** A picture's weight, fetched once per model (its numbers do not depend on the input). */
async function weights(p: Picture): Promise<void> {
  if (p.data || !pad?.info) return;
  const res = await check(await post("/api/trace", { model: pad.model, text: pad.info.text ?? "", include_weights: true,
    tensors: [p.weight] }));
  const t = parseTrace(await res.arrayBuffer()).tensors.get(p.weight);
  if (t?.dtype !== "F32") return;
  p.data = t.data as Float32Array;
}

/** Show the pad for a scene of an image model, with the scene's input in it; hide it for any other. */
export function updateDigitPad(info: SceneInfo | undefined): void {
  if (!pad) return;
  const side = info?.model.config.image_side ?? 0;
  const image = !!side && !!info?.model.has_weights;
  pad.root.hidden = !image;
  document.body.classList.toggle("image-model", image);
  if (!image || !info) return;
  pad.info = info;
  if (pad.model !== info.model.name) {  // another model: its own weights, and no unit shown yet
    pad.model = info.model.name;
    pad.pictures = picturesOf(info);
    (pad.root.querySelector(".dp-unit") as HTMLElement).hidden = true;
    delete pad.root.dataset.unit;
  }
  if (pad.side !== side) {
    pad.side = side;
    pad.canvas.width = pad.canvas.height = side * CELL;
  }
  pad.pixels = parsePixels(info.text ?? "", side) ?? (info.tokens ?? []).slice(0, side * side);
  while (pad.pixels.length < side * side) pad.pixels.push(0);
  paint();
}
