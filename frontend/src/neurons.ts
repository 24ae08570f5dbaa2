// The neuron view: what one MLP neuron does. Where it fired most in the training text, with the character it fired on
// marked, and the next tokens its output pushes up and down directly, as bars. Python says which tensors have one
// entry per neuron, along which axis (GET /api/models/{name}/neurons), and what a neuron does
// (GET /api/models/{name}/neurons/{layer}/{index}); this only draws what it is given.
import { check } from "./api";
import type { components } from "./api-schema";
import type { Placed } from "./framing";
import { cellRegion } from "./highlight";
import { escapeHtml } from "./html";
import { request } from "./transport";

export type Neuron = components["schemas"]["Neuron"];
export type NeuronTensors = components["schemas"]["NeuronTensors"];

const panel = () => document.querySelector<HTMLDivElement>("#neuron")!;
const tensorsOf = new Map<string, Promise<NeuronTensors | null>>();

/** Which tensors of the model index its neurons (null: none, or a page without the server's answer, an export). */
export function neuronTensors(model: string): Promise<NeuronTensors | null> {
  let known = tensorsOf.get(model);
  if (!known) {
    known = request(`/api/models/${encodeURIComponent(model)}/neurons`).then(check).then((r) => r.json(), () => null);
    tensorsOf.set(model, known);
  }
  return known;
}

export async function fetchNeuron(model: string, layer: number, index: number): Promise<Neuron> {
  return (await check(await request(`/api/models/${encodeURIComponent(model)}/neurons/${layer}/${index}`))).json();
}

/** The neurons a clicked cell stands for, if its block has one entry per neuron: one, or the few of a downsampled
 * tile. */
export function neuronsAt(t: NeuronTensors, placed: Placed, block: number, slab: number, col: number, row: number):
  { layer: number; first: number; last: number } | null {
  const b = placed.data.info.blocks[block];
  if (!t.tensors.includes(b.tensor) || b.layer === null || b.layer === undefined) return null;
  const range = cellRegion(b, slab, col, row)[t.axis];
  return range ? { layer: b.layer, first: range[0], last: range[1] } : null;
}

const MAX_ASKED = 8;  // a downsampled tile of more neurons offers its first 8

let offered = 0;

/** In the selection panel of a clicked cell: a button "What does neuron L.i do?" when the cell is one MLP neuron's
 * (a downsampled cell of several neurons: one button for each, "neuron L.i"). */
export function offerNeuron(panel: HTMLElement, hit: { placed: Placed; block: number; slab?: number; col?: number; row?: number }) {
  const info = hit.placed.data.info;
  const mine = ++offered;
  if (!info.model.has_weights || hit.col === undefined || hit.row === undefined) return;
  void neuronTensors(info.model.name).then((t) => {
    const at = t && neuronsAt(t, hit.placed, hit.block, hit.slab ?? 0, hit.col!, hit.row!);
    if (!at || panel.hidden || mine !== offered) return;  // another cell was selected meanwhile
    const ask = (index: number, text: string) => {
      const button = Object.assign(document.createElement("button"), { type: "button", className: "neuron-ask", textContent: text });
      button.addEventListener("click", () => void openNeuron(info.model.name, at.layer, index));
      return button;
    };
    const box = document.createElement("p");
    if (at.first === at.last) box.append(ask(at.first, `What does neuron ${at.layer}.${at.first} do?`));
    else {
      const n = Math.min(at.last - at.first + 1, MAX_ASKED);
      box.append(`This cell stands for neurons ${at.layer}.${at.first}–${at.layer}.${at.last}. What does each do?`,
        ...Array.from({ length: n }, (_, k) => ask(at.first + k, `neuron ${at.layer}.${at.first + k}`)));
    }
    panel.append(box);
  });
}

let shown = 0, wired = false;

/** Open the neuron panel on a neuron: its contexts and its direct effect, or the server's reason why not. */
export async function openNeuron(model: string, layer: number, index: number) {
  const box = panel();
  if (!wired) {  // its close button
    wired = true;
    box.addEventListener("click", (e) => {
      if ((e.target as HTMLElement).closest("[data-neuron=close]")) closeNeuron();
    });
  }
  const seq = ++shown;
  box.dataset.model = model;
  box.dataset.neuron = `${layer}.${index}`;
  box.hidden = false;
  box.innerHTML = `${headHtml(layer, index)}<p class="nr-note">loading…</p>`;
  try {
    const n = await fetchNeuron(model, layer, index);
    if (seq === shown) box.innerHTML = neuronHtml(n);
  } catch (e) {
    if (seq === shown) box.innerHTML = `${headHtml(layer, index)}<p class="nr-error">${escapeHtml((e as Error).message)}</p>`;
  }
}

export function closeNeuron() {
  shown++;
  panel().hidden = true;
}

/** A new view: the panel stays only if it is about a neuron of the model shown. */
export function keepNeuronFor(model: string | undefined) {
  const box = document.querySelector<HTMLDivElement>("#neuron");
  if (box && !box.hidden && box.dataset.model !== model) closeNeuron();
}

function headHtml(layer: number, index: number): string {
  return `<div class="nr-head"><b>What does neuron ${layer}.${index} do?</b>
    <button type="button" data-neuron="close" aria-label="close" title="Close">×</button></div>`;
}

/** A snippet of text with the character at `mark` highlighted; newlines shown as ↵. */
export function contextHtml(text: string, mark: number): string {
  const show = (s: string) => escapeHtml(s).replace(/\n/g, "↵");
  return `${show(text.slice(0, mark))}<mark>${show(text.slice(mark, mark + 1)) || "&nbsp;"}</mark>${show(text.slice(mark + 1))}`;
}

/** An effect with its sign, to two decimals (two significant digits below 1). */
export function signed(x: number): string {
  const s = Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2);
  return x >= 0 ? `+${s}` : s;
}

export function neuronHtml(n: Neuron): string {
  const contexts = n.contexts
    ? `<ol class="nr-contexts">${n.contexts.map((c) => `<li><code>${contextHtml(c.text, c.mark)}</code>
        <span class="nr-act" title="its activation there">${c.activation.toFixed(2)}</span></li>`).join("")}</ol>`
    : "";
  const most = Math.max(1e-12, ...[...n.boosted, ...n.suppressed].map((t) => Math.abs(t.effect)));
  const bars = (tokens: Neuron["boosted"], kind: string) => `<div class="nr-bars ${kind}">${tokens.map((t) => `
    <div class="nr-bar" title="${escapeHtml(t.token)}: ${signed(t.effect)} logits per unit of activation">
      <span class="nr-tok">${escapeHtml(t.token)}</span>
      <span class="nr-fill" style="width:${(100 * Math.abs(t.effect) / most).toFixed(1)}%"></span>
      <span class="nr-num">${signed(t.effect)}</span></div>`).join("")}</div>`;
  return `${headHtml(n.layer, n.index)}
    <p class="nr-what">One of the MLP's hidden units in layer ${n.layer}: <code>${escapeHtml(n.tensor)}</code>, entry ${n.index}.</p>
    <h4>Where it fires most</h4>
    <p class="nr-note">${escapeHtml(n.contexts_note)}</p>${contexts}
    <h4>Next tokens it pushes up</h4>${bars(n.boosted, "up")}
    <h4>…and down</h4>${bars(n.suppressed, "down")}
    <p class="nr-note">${escapeHtml(n.effect_note)}</p>`;
}
