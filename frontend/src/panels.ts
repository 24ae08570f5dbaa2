// Panels: the selection, the notice, the readout, map, legend and intro, the scale table and the toolbar.
import { offerMap } from "./embedmap";
import { cannot } from "./engine";
import { escapeHtml } from "./html";
import { unpin } from "./hover";
import { introDismissed, introHtml } from "./intro";
import { legendHtml } from "./legend";
import { keepNeuronFor, offerNeuron } from "./neurons";
import { overviewHtml } from "./overview";
import { readoutHtml, taskHint } from "./readout";
import { scaleRow, scaleTableHtml } from "./scaletable";
import { shapeHtml, tileText } from "./scenelabels";
import { wholeBox, type Placed } from "./framing";
import { app, narrow, $ } from "./state";
import { precisionOf } from "./precision";
import { formatCount } from "./trace";
import { request } from "./transport";
import type { ModelInfo } from "./api";

const unlisted = new Map<string, ModelInfo>();  // models shown by name that the list does not hold, by name

/** A model the server shows by name but does not list (a training run's snapshot, nano-gpt@1200, marked "snapshot";
 * a learner's neuron, neuron~1.5,-0.8,0.2, marked "learner"): its description from the server (GET
 * /api/models/{name}), as the only such model in the list and in the model selector (`label` after its name); or why
 * the server has no such model. */
export async function withUnlisted(name: string, models: ModelInfo[], select: HTMLSelectElement, mark: string,
  label: string): Promise<{ models: ModelInfo[]; info: ModelInfo | null; why: string }> {
  let info = unlisted.get(name);
  if (!info) {
    const res = await request(`/api/models/${encodeURIComponent(name)}`);
    const data = await res.json().catch(() => ({ detail: `${res.status} ${res.statusText}` }));
    if (!res.ok) return { models, info: null, why: data.detail ?? `${res.status} ${res.statusText}` };
    info = data as ModelInfo;
    unlisted.set(name, info);
  }
  for (const o of select.querySelectorAll("option[data-unlisted]")) o.remove();
  const option = Object.assign(document.createElement("option"), { value: info.name, textContent: `${info.name} · ${label}` });
  option.dataset.unlisted = "";
  option.dataset[mark] = "";
  select.append(option);
  return { models: [...models.filter((m) => !unlisted.has(m.name)), info], info, why: "" };
}

const said = new Map<string, string>();  // what the view was asked for and could not show, by who says it

/** The notice under the view: a structure-only model says so, and so does anything set by notify. A new view
 * clears what notify said. */
export function updateNotice(keep = false) {
  if (!keep) said.clear();
  const notice = $<HTMLDivElement>("#notice");
  const bare = app.placed.filter((p) => !p.data.info.model.has_weights).map((p) => p.data.info.model.name);
  const parts = [...said.values(), bare.length
    ? `${bare.join(", ")}: structure only: no weights loaded, so no numbers are shown (${app.state.view === "scale" ? "" : "layout for "}` +
      `${app.placed[0].data.info.n_pos} positions)`
    : ""].filter(Boolean);
  notice.setAttribute("role", "status");
  notice.hidden = parts.length === 0;
  notice.textContent = parts.join(" · ");
}

/** Say something in the notice until the next view ("" clears it); `from` keeps one sayer's message (the
 * walkthrough's missing step) from replacing another's (a link's missing block). */
export function notify(text: string, from = "view") {
  if ((said.get(from) ?? "") === text) return;
  if (text) said.set(from, text);
  else said.delete(from);
  updateNotice(true);
}

/** On a narrow screen, opening one panel closes the others. */
export function onlyPanel(keep: string) {
  if (!narrow()) return;
  for (const id of ["#selection", "#map", "#tooltip", "#intro", "#gen"]) if (id !== keep) $<HTMLElement>(id).hidden = true;
  const legend = document.querySelector<HTMLDetailsElement>("#legend-box");
  if (legend && keep !== "#legend") legend.open = false;
  if (keep !== "#tooltip" && app.hover.pinned) unpin();
}

export function select(hit: { placed: Placed; block: number } | null) {
  for (const p of app.placed) p.built.material.uniforms.uSelected.value.set(-1, -2);
  app.selected = hit;
  const panel = $<HTMLDivElement>("#selection");
  if (!hit) {
    panel.hidden = true;
  } else {
    const { placed, block } = hit;
    const b = placed.data.info.blocks[block];
    const first = placed.built.firstInstance[block];
    const n = b.merged ? 1 : b.depth;
    placed.built.material.uniforms.uSelected.value.set(first, first + n - 1);
    const op = b.op ? placed.data.info.ops[b.op] : null;
    if (narrow()) {  // a phone shows the tapped cell's tooltip, which names the block too: one panel at a time
      app.view!.requestRender();
      return;
    }
    panel.hidden = false;
    panel.innerHTML = `<h3>${escapeHtml(b.title)}</h3><code>${escapeHtml(b.tensor)}</code>
      <p>${shapeHtml(placed.data, b)} · ${b.kind}</p>
      ${op ? `<p>${escapeHtml(op.description)} <code>${escapeHtml(op.formula)}</code></p>` : ""}
      ${b.slabs ? `<p>colour scale: ±${b.scale.toPrecision(4)}</p>` : b.fetched === false
    ? `<p>no numbers: not fetched by the ${escapeHtml(placed.data.info.model.engine ?? "")} engine</p>` : "<p>no numbers: structure only</p>"}
      ${b.tile[0] * b.tile[1] > 1 ? `<p>shown downsampled: ${tileText(b)} (${b.rows} × ${b.cols} cells)</p>` : ""}`;
    offerNeuron(panel, hit);  // a cell of one MLP neuron: "What does neuron L.i do?"
    if (!cannot(placed.data.info.model.name, "embedding_map")) offerMap(panel, placed.data.info.model.name, b.map);  // "Map these vectors"
  }
  app.view!.requestRender();
}

/** Unselect the block and close its description, if either is there (a new scene forgets app.selected before the
 * panel goes). True: something was. */
export function deselect(): boolean {
  const was = !!app.selected || !$<HTMLDivElement>("#selection").hidden;
  if (was) select(null);
  return was;
}

/** The readout, the map, the legend and (on a first visit) the intro card, for what is on screen now. */
export function updatePanels() {
  deselect();  // a new scene: the old one's block description goes (a link's block comes after)
  const one = app.placed.length === 1 ? app.placed[0].data.info : undefined;
  keepNeuronFor(one?.model.name);  // the neuron panel goes with its model
  const readout = $<HTMLDivElement>("#readout");
  readout.innerHTML = one ? readoutHtml(one) : "";
  readout.hidden = readout.innerHTML === "";
  $<HTMLDivElement>("#map-body").innerHTML = one ? overviewHtml(one.sections) : "";
  $<HTMLButtonElement>("#map-toggle").hidden = !one;
  if (!one) $<HTMLDivElement>("#map").hidden = true;
  const canGenerate = !!one?.model.has_weights;  // a structure-only model has no numbers to draw tokens from
  $<HTMLButtonElement>("#gen-toggle").hidden = !canGenerate;
  $<HTMLButtonElement>("#ins-toggle").hidden = !canGenerate;  // the panel's views all need the numbers
  if (!canGenerate && app.insights?.active) app.insights.close();
  if (!canGenerate) $<HTMLDivElement>("#gen").hidden = true;
  const opened = document.querySelector<HTMLDetailsElement>("#legend-box")?.open === true;  // a new view keeps it so
  $<HTMLDivElement>("#legend").innerHTML = legendHtml(app.placed[0]?.data.info);
  ($<HTMLDetailsElement>("#legend-box")).open = opened && !narrow();
  const intro = $<HTMLDivElement>("#intro");
  intro.hidden = !one || introDismissed();
  if (!intro.hidden && one) intro.innerHTML = introHtml(one, matchMedia("(pointer: coarse)").matches, app.models);
}

/** In the scale view: the models' table (their shapes, parameter counts on a log scale and where the parameters
 * live; a click on a row flies to its model), and nano-gpt, too small to see beside GPT-3, enlarged in its own inset. */
export function scaleBars() {
  const box = $<HTMLDivElement>("#scalebars");
  const scale = app.placed.length > 1;
  box.hidden = !scale;
  document.body.classList.toggle("scale-view", scale);  // (on a phone, the notice moves out of the table's way)
  // (a phone walking through the scale view: its few pixels for the models the camera flies to, not the inset)
  const inset = scale && !(narrow() && document.body.classList.contains("walking"));
  $<HTMLDivElement>("#inset-label").hidden = !inset;
  app.view!.inset = inset ? { box: wholeBox(app.placed[0]), width: 220, height: 170, only: app.placed[0].built.group } : null;
  if (!scale) return;
  box.innerHTML = scaleTableHtml(app.placed.map((p) => scaleRow(p.data.info.model)), { fly: true });
  const big = app.placed[app.placed.length - 1].data.info.model, nano = app.placed[0].data.info.model;
  $<HTMLDivElement>("#inset-label").textContent = `${nano.name}, enlarged: ${formatCount(nano.n_params)} parameters, ` +
    `1/${formatCount(Math.round(big.n_params / nano.n_params))} of ${big.name}`;
}

export function syncControls() {
  const s = app.state;
  const shown = precisionOf(app.models, s.model ?? "");  // (a served model in another precision: its own entry)
  const info = app.models.find((m) => m.name === s.model) ?? shown?.model;
  const select_ = $<HTMLSelectElement>("#model");
  select_.value = s.view === "scale" ? "__scale" : shown?.model.name ?? s.model ?? "";  // the scale view has its own entry
  const input = $<HTMLInputElement>("#prompt");
  const canType = s.view !== "scale" && !!info?.has_weights;
  $<HTMLFormElement>("#run").hidden = !canType;
  if (canType && s.input !== undefined) input.value = s.input;
  const hint = info && canType ? taskHint(info.name, info.config) : "";
  input.placeholder = hint || "type an input";
  input.title = hint;
  $<HTMLSpanElement>("#task").textContent = hint;
  $<HTMLButtonElement>("#scale").setAttribute("aria-pressed", String(s.view === "scale"));
  $<HTMLButtonElement>("#heads").setAttribute("aria-pressed", String(s.heads === "stack"));
}
