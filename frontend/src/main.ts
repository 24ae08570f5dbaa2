// The app: pick a model, type an input, and see every tensor of its forward pass as blocks in 3D.
import * as THREE from "three";
import { fetchExplanation, fetchModels, fetchScene, sceneFrom, type EarlyResponse, type ModelInfo } from "./api";
import { Highlights, cellRegion } from "./highlight";
import { escapeHtml } from "./html";
import { explanationHtml, structureHtml, type Explanation } from "./tooltip";
import { buildModel, pick, type BuiltModel } from "./blocks";
import { FAMILIES, KINDS, MASKED } from "./colors";
import { LabelLayer, type Label } from "./labels";
import { type BlockInfo, type SceneData } from "./scenedata";
import { formatCount } from "./trace";
import { formatState, parseState, type ViewState } from "./urlstate";
import { View } from "./view";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const SCALE_MODELS = ["nano-gpt", "gpt2", "gpt2-xl", "gpt3"];

interface Placed { data: SceneData; built: BuiltModel; offsetX: number }

const app = {
  view: null as View | null,
  labels: null as LabelLayer | null,
  models: [] as ModelInfo[],
  placed: [] as Placed[],
  state: parseState(location.search) as ViewState,
  selected: null as { placed: Placed; block: number } | null,
  firstFrameMs: null as number | null,
  loadSeq: 0,
  highlights: new Highlights(),
  hover: { seq: 0, key: "", pinned: null as CellRef | null, lastMs: null as number | null, pendingEvent: null as PointerEvent | null },
  explained: new Map<string, Explanation>(),
};

interface CellRef { placed: Placed; block: number; slab: number; col: number; row: number }

function showError(message: string) {
  const box = $<HTMLDivElement>("#error");
  box.textContent = message;
  box.hidden = message === "";
}

/** "H × T × A = 3 × 6 × 16", each axis letter in its axis colour. */
function shapeHtml(data: SceneData, b: BlockInfo): string {
  const ax = data.info.axes;
  const letters = b.dims.map(([a]) => `<span style="color:${ax[a].color}">${escapeHtml(ax[a].label)}</span>`);
  return `${letters.join(" × ")} = ${b.dims.map(([, n]) => n).join(" × ")}`;
}

/** "max |value| per 1×99 tile": rows × columns of the tensor behind each displayed cell. */
function tileText(b: BlockInfo): string {
  return `max |value| per ${b.tile[1]}×${b.tile[0]} tile`;
}

function blockLabels(p: Placed): Label[] {
  const { data, offsetX } = p;
  const info = data.info;
  const out: Label[] = [];
  const tokensText = info.token_strs ? ` <span class="tokens">${escapeHtml(info.token_strs.slice(0, 24).join(" "))}` +
    `${info.token_strs.length > 24 ? " …" : ""}</span>` : "";
  info.blocks.forEach((b) => {
    const sampled = b.tile[0] * b.tile[1] > 1 ? ` <span class="tile">${tileText(b)}</span>` : "";
    const short = `<b>${escapeHtml(b.short)}</b>${b.kind === "input" ? tokensText : ""}`;  // the input row says what it holds
    const input = b.kind === "input";  // the input row's label goes under it, clear of the section title
    out.push({ anchor: new THREE.Vector3(b.x + offsetX, input ? b.y - b.rows - 0.3 : b.y + 0.3, b.z),
      worldSize: Math.max(b.cols, 1.5), minPixels: 14, compact: short, fullPixels: 110,
      html: `${short} ${shapeHtml(data, b)}${sampled}`, cls: `block kind-${b.kind}`, above: !input, priority: input ? 3 : 0,
      data: { tensor: b.tensor } });
    if (b.depth > 1 && b.tensor.endsWith("hook_q")) {  // one note per layer: heads stack front to back
      const text = b.merged ? `${b.depth} heads (front: head 0)` : `heads 0–${b.depth - 1}, front to back`;
      out.push({ anchor: new THREE.Vector3(b.x + offsetX - 0.6, b.y - b.rows / 2, b.z), worldSize: b.rows,
        minPixels: 30, html: text, cls: "head" });
    }
  });
  for (const s of info.sections) {
    out.push({ anchor: new THREE.Vector3(s.x0 + offsetX - 3, s.y0 + 3, 1), worldSize: s.x1 - s.x0, minPixels: 60,
      html: escapeHtml(s.title), cls: `section section-${s.title.split(" ")[0].toLowerCase()}`, above: true, priority: 1 });
  }
  const tok = info.blocks.find((b) => b.kind === "input");
  if (tok && info.token_strs) {
    info.token_strs.forEach((t, i) => out.push({ anchor: new THREE.Vector3(tok.x + offsetX + i + 0.5, tok.y + 1.6, 0),
      worldSize: 1, minPixels: 16, html: `${escapeHtml(t)}<small>${info.tokens![i]}</small>`, cls: "token", above: true }));
  }
  const probs = info.blocks.find((b) => b.tensor === "probs");
  if (probs && info.predicted) {
    info.predicted.forEach((t, i) => out.push({ anchor: new THREE.Vector3(probs.x + offsetX + i + 0.5, probs.y - probs.rows - 1, 0),
      worldSize: 1, minPixels: 16, html: `→ ${escapeHtml(t)}`, cls: "token predicted" }));
  }
  const [x0, , x1] = info.bounds;
  const m = info.model;
  out.push({ anchor: new THREE.Vector3(x0 + offsetX, 12 + (x1 - x0) * 0.12, 0), worldSize: x1 - x0, minPixels: 0,
    html: `${escapeHtml(m.name)}<br><small>${formatCount(m.n_params)} parameters${m.has_weights ? "" : " · structure only"}</small>`,
    cls: "model-title", above: true, priority: 2 });
  return out;
}

function clearScene() {
  for (const p of app.placed) {
    app.view!.scene.remove(p.built.group);
    p.built.dispose();
  }
  app.placed = [];
  app.selected = null;
  unpin();
}

function place(datas: SceneData[]) {
  clearScene();
  let x = 0;
  for (const data of datas) {
    const [bx0, , bx1] = data.info.bounds;
    const p = { data, built: buildModel(data, x - bx0), offsetX: x - bx0 };
    app.view!.scene.add(p.built.group);
    app.placed.push(p);
    x += bx1 - bx0 + Math.max(40, (bx1 - bx0) * 0.25);
  }
  app.labels!.set(app.placed.flatMap(blockLabels));
}

/** The first view of one model: its first section (the tokens and their embeddings) and what follows just below. */
function homeBox(p: Placed): THREE.Box3 {
  const s = p.data.info.sections[0];
  if (!s) return topBox(p);
  const h = s.y0 - s.y1;
  return new THREE.Box3(new THREE.Vector3(s.x0 + p.offsetX - 4, s.y1 - h * 0.9, -4), new THREE.Vector3(s.x1 + p.offsetX + 4, s.y0 + 8, 1));
}

/** The part of a model to show first: its top, about as tall as it is wide. */
function topBox(p: Placed): THREE.Box3 {
  const [x0, y0, x1, y1] = p.data.info.bounds;
  const h = Math.min(y0 - y1, (x1 - x0) * 0.75);
  return new THREE.Box3(new THREE.Vector3(x0 + p.offsetX, y0 - h, -4),
    new THREE.Vector3(x1 + p.offsetX, y0 + 14 + (x1 - x0) * 0.14, 1));
}

function updateNotice() {
  const notice = $<HTMLDivElement>("#notice");
  const bare = app.placed.filter((p) => !p.data.info.model.has_weights).map((p) => p.data.info.model.name);
  notice.hidden = bare.length === 0;
  notice.textContent = bare.length
    ? `${bare.join(", ")}: structure only: no weights loaded, so no numbers are shown (${app.state.view === "scale" ? "" : "layout for "}` +
      `${app.placed[0].data.info.n_pos} positions)`
    : "";
}

function writeUrl() {
  const v = app.view!;
  const s = app.state;
  s.camera = [...v.camera.position.toArray(), ...v.controls.target.toArray()] as ViewState["camera"];
  s.block = app.selected ? app.selected.placed.data.info.blocks[app.selected.block].tensor : undefined;
  history.replaceState(null, "", formatState(s) || location.pathname);
}

function select(hit: { placed: Placed; block: number } | null) {
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
    panel.hidden = false;
    panel.innerHTML = `<h3>${escapeHtml(b.title)}</h3><code>${escapeHtml(b.tensor)}</code>
      <p>${shapeHtml(placed.data, b)} · ${b.kind}</p>
      ${op ? `<p>${escapeHtml(op.description)} <code>${escapeHtml(op.formula)}</code></p>` : ""}
      ${b.slabs ? `<p>colour scale: ±${b.scale.toPrecision(4)}</p>` : "<p>no numbers: structure only</p>"}
      ${b.tile[0] * b.tile[1] > 1 ? `<p>shown downsampled: ${tileText(b)} (${b.rows} × ${b.cols} cells)</p>` : ""}`;
  }
  app.view!.requestRender();
}

function findBlock(tensor: string): { placed: Placed; block: number } | null {
  for (const p of app.placed) {
    const i = p.data.info.blocks.findIndex((b) => b.tensor === tensor);
    if (i >= 0) return { placed: p, block: i };
  }
  return null;
}

function pickAt(clientX: number, clientY: number): (CellRef & { distance: number }) | null {
  const ray = app.view!.rayAt(clientX, clientY);
  let best: (CellRef & { distance: number }) | null = null;
  for (const p of app.placed) {
    const hit = pick(p.built, p.data, ray, p.offsetX);
    if (hit && (!best || hit.distance < best.distance)) best = { placed: p, ...hit };
  }
  return best;
}

// ---- Hover: the value of one cell and where it came from ----

function tooltipEl(): HTMLDivElement {
  return $<HTMLDivElement>("#tooltip");
}

function placeTooltip(clientX: number, clientY: number) {
  const tip = tooltipEl(), stage = $<HTMLDivElement>("#stage").getBoundingClientRect();
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let x = clientX - stage.left + 18, y = clientY - stage.top + 18;
  if (x + w > stage.width - 4) x = Math.max(4, clientX - stage.left - w - 18);
  if (y + h > stage.height - 4) y = Math.max(4, stage.height - h - 4);
  tip.style.left = `${x}px`;
  tip.style.top = `${y}px`;
}

function hideTooltip() {
  tooltipEl().hidden = true;
  app.highlights.clear();
  app.hover.key = "";
  app.view?.requestRender();
}

function unpin() {
  app.hover.pinned = null;
  tooltipEl().classList.remove("pinned");
  hideTooltip();
}

/** Explain a cell: ask the server (once per cell), then show the tooltip and highlight its sources. */
async function showCell(c: CellRef, clientX: number, clientY: number, t0: number, pinned: boolean) {
  const b = c.placed.data.info.blocks[c.block];
  const info = c.placed.data.info;
  const key = `${info.model.name}|${b.tensor}|${c.slab}|${c.col}|${c.row}|${pinned}`;
  if (key === app.hover.key) return;
  app.hover.key = key;
  const seq = ++app.hover.seq;
  const tip = tooltipEl();
  let regions: Explanation["sources"] = [];
  if (!info.model.has_weights || !info.tokens) {
    tip.innerHTML = structureHtml(info, b);
    tip.dataset.tensor = b.tensor;
    delete tip.dataset.index;
  } else {
    const region = cellRegion(b, c.slab, c.col, c.row);
    const ckey = `${info.model.name}|${info.tokens.join(",")}|${b.tensor}|${JSON.stringify(region)}`;
    let e = app.explained.get(ckey);
    if (!e) {
      try {
        e = await fetchExplanation({ model: info.model.name, tokens: info.tokens, tensor: b.tensor, region });
      } catch (err) {
        if (seq === app.hover.seq) showError((err as Error).message);
        return;
      }
      if (app.explained.size > 2000) app.explained.clear();
      app.explained.set(ckey, e);
    }
    if (seq !== app.hover.seq) return; // the pointer has moved on
    tip.innerHTML = explanationHtml(e, pinned);
    tip.dataset.tensor = e.tensor;
    tip.dataset.index = JSON.stringify(e.index.map((a) => a.i));
    regions = [...e.sources, e.target];
  }
  tip.classList.toggle("pinned", pinned);
  tip.hidden = false;
  placeTooltip(clientX, clientY);
  const find = (tensor: string) => {
    const i = info.blocks.findIndex((x) => x.tensor === tensor);
    return i < 0 ? null : { block: info.blocks[i], offsetX: c.placed.offsetX };
  };
  app.highlights.set(regions.length ? regions : [{ tensor: b.tensor, ranges: cellRegion(b, c.slab, c.col, c.row), role: "target" }], find);
  const v = app.view!;
  const previous = v.onRender;
  v.onRender = () => {  // the latency ends when the frame with the highlights is drawn
    v.onRender = previous;
    previous();
    if (seq === app.hover.seq) {
      app.hover.lastMs = performance.now() - t0;
      tip.dataset.latency = app.hover.lastMs.toFixed(1);
    }
  };
  v.requestRender();
}

function onHover(e: PointerEvent) {
  if (app.hover.pinned || e.buttons !== 0 || e.pointerType === "touch") return;
  const first = app.hover.pendingEvent === null;
  app.hover.pendingEvent = e;
  if (!first) return;
  requestAnimationFrame(() => {  // at most one pick per frame, for the latest position
    const ev = app.hover.pendingEvent!;
    app.hover.pendingEvent = null;
    const hit = pickAt(ev.clientX, ev.clientY);
    if (!hit) hideTooltip();
    else void showCell(hit, ev.clientX, ev.clientY, ev.timeStamp, false);
  });
}

/** Shift+arrows move the pinned cell; Shift+PageUp/PageDown change head. */
function movePinned(key: string): boolean {
  const c = app.hover.pinned;
  if (!c) return false;
  const b = c.placed.data.info.blocks[c.block];
  const grid = b.slabs?.[c.slab] ? [b.slabs[c.slab][2], b.slabs[c.slab][3]] : [b.cols, b.rows];
  const d: Record<string, [number, number, number]> = { ArrowLeft: [-1, 0, 0], ArrowRight: [1, 0, 0], ArrowUp: [0, -1, 0],
    ArrowDown: [0, 1, 0], PageUp: [0, 0, -1], PageDown: [0, 0, 1] };
  if (!d[key]) return false;
  const slabs = b.merged ? 1 : b.depth;
  const next = { ...c, col: Math.min(grid[0] - 1, Math.max(0, c.col + d[key][0])),
    row: Math.min(grid[1] - 1, Math.max(0, c.row + d[key][1])), slab: Math.min(slabs - 1, Math.max(0, c.slab + d[key][2])) };
  app.hover.pinned = next;
  const r = tooltipEl().getBoundingClientRect();
  void showCell(next, r.left - 18, r.top - 18, performance.now(), true);
  return true;
}

async function loadView(early?: Promise<SceneData>) {
  const seq = ++app.loadSeq;
  const s = app.state;
  const status = $<HTMLSpanElement>("#status");
  status.textContent = "computing…";
  showError("");
  try {
    let datas: SceneData[];
    if (s.view === "scale") {
      const nano = await fetchScene({ model: "nano-gpt" });
      const rest = await Promise.all(SCALE_MODELS.slice(1).filter((m) => app.models.some((x) => x.name === m))
        .map((m) => fetchScene({ model: m, n_pos: nano.info.n_pos })));
      datas = [nano, ...rest];
    } else {
      const info = app.models.find((m) => m.name === s.model) ?? app.models[0];
      s.model = info.name;
      const text = info.has_weights ? (s.input ?? info.example ?? undefined) : undefined;
      if (info.has_weights && text !== undefined) s.input = text;
      else delete s.input;
      datas = [await (early ?? fetchScene({ model: info.name, text }))];
    }
    if (seq !== app.loadSeq) return;
    place(datas);
    app.view!.ready = true;
    updateNotice();
    flyButtons();
    syncControls();
    const v = app.view!;
    const home = app.placed.length > 1
      ? v.framing(app.placed.map(topBox).reduce((a, b) => a.union(b)))
      : v.framing(homeBox(app.placed[0]));
    v.setHome(...home);
    if (s.camera) {
      v.flyTo(new THREE.Vector3(...s.camera.slice(0, 3)), new THREE.Vector3(...s.camera.slice(3)), 0);
    } else v.goHome(false);
    if (s.block) select(findBlock(s.block));
    writeUrl();
    status.textContent = "";
    v.onRender = () => {
      app.labels!.update();
      if (app.firstFrameMs === null) {
        app.firstFrameMs = performance.now(); // since navigation start
        document.body.dataset.ready = "true";
      }
    };
    v.renderNow(); // the first frame of a new scene does not wait for the next animation frame
  } catch (e) {
    if (seq !== app.loadSeq) return;
    status.textContent = "";
    showError((e as Error).message);
  }
}

/** In the scale view, one button per model that flies the camera to it. */
function flyButtons() {
  const box = $<HTMLDivElement>("#flyto");
  box.hidden = app.placed.length < 2;
  box.replaceChildren(...(app.placed.length < 2 ? [] : app.placed.map((p) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${p.data.info.model.name} · ${formatCount(p.data.info.model.n_params)}`;
    b.addEventListener("click", () => app.view!.flyTo(...app.view!.framing(topBox(p)), 1200));
    return b;
  })));
}

function syncControls() {
  const s = app.state;
  const info = app.models.find((m) => m.name === s.model);
  $<HTMLSelectElement>("#model").value = s.view === "scale" ? "" : s.model ?? "";
  const input = $<HTMLInputElement>("#prompt");
  const canType = s.view !== "scale" && !!info?.has_weights;
  $<HTMLFormElement>("#run").hidden = !canType;
  if (canType && s.input !== undefined) input.value = s.input;
  $<HTMLButtonElement>("#scale").setAttribute("aria-pressed", String(s.view === "scale"));
}

function legend(data: SceneData | undefined) {
  const kinds = KINDS.filter((k) => k !== "input").map((k) => {
    const f = FAMILIES[k];
    return `<div class="legend-row"><span class="bar" style="background:linear-gradient(90deg, ${f.negative}, #fff, ${f.positive})"></span>${f.label}</div>`;
  });
  kinds.push(`<div class="legend-row"><span class="bar masked" style="background:${MASKED}"></span>masked: a future position</div>`);
  kinds.push(`<div class="legend-note">each block: −scale · 0 · +scale (click a block for its scale)</div>`);
  const axes = data ? Object.entries(data.info.axes).map(([name, a]) =>
    `<span class="axis" title="${escapeHtml(a.description)}"><span style="color:${a.color}">■ ${escapeHtml(a.label)}</span> ${name}</span>`) : [];
  $<HTMLDivElement>("#legend").innerHTML = kinds.join("") + `<div class="axes">${axes.join("")}</div>`;
}

function onKey(ev: KeyboardEvent) {
  if ((ev.target as HTMLElement).closest("input, select, textarea")) return;
  if (ev.shiftKey && movePinned(ev.key)) {
    ev.preventDefault();
    return;
  }
  if (ev.key === "Escape" && app.hover.pinned) {
    unpin();
    return;
  }
  if (ev.key === "Enter" && ev.target === app.view!.canvas) {  // keyboard: explain the cell in the middle
    const r = app.view!.canvas.getBoundingClientRect();
    const hit = pickAt(r.left + r.width / 2, r.top + r.height / 2);
    if (hit) {
      app.hover.key = "";
      app.hover.pinned = hit;
      void showCell(hit, r.left + r.width / 2, r.top + r.height / 2, ev.timeStamp, true);
    }
    return;
  }
  const v = app.view!;
  const step = 0.1;
  const keys: Record<string, () => void> = {
    ArrowLeft: () => v.pan(-step, 0), a: () => v.pan(-step, 0), ArrowRight: () => v.pan(step, 0), d: () => v.pan(step, 0),
    ArrowUp: () => v.pan(0, step), w: () => v.pan(0, step), ArrowDown: () => v.pan(0, -step), s: () => v.pan(0, -step),
    "+": () => v.zoom(0.8), "=": () => v.zoom(0.8), "-": () => v.zoom(1.25), _: () => v.zoom(1.25),
    Home: () => v.goHome(), Escape: () => select(null),
  };
  const fn = keys[ev.key];
  if (fn) {
    ev.preventDefault();
    fn();
    writeUrl();
  }
}

function webgl2Available(): boolean {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch {
    return false;
  }
}

function fatal(message: string) {
  const box = $<HTMLDivElement>("#fatal");
  box.textContent = message;
  box.hidden = false;
}

async function start() {
  if (!webgl2Available()) {
    fatal("This browser cannot draw the 3D view: it has no WebGL2. Try a current Chrome, Firefox, Edge or Safari, " +
      "or turn on hardware acceleration.");
    return;
  }
  const canvas = $<HTMLCanvasElement>("#view");
  canvas.addEventListener("webglcontextlost", (e) => {
    e.preventDefault();
    fatal("The 3D view lost its graphics context (the GPU was reset or ran out of memory). Reload the page to draw it again.");
  });
  const view = (app.view = new View(canvas));
  app.labels = new LabelLayer($<HTMLDivElement>("#labels"), view);
  view.onCameraEnd = writeUrl;
  // The first scene is requested at once, beside the model list (the server picks its first model if the
  // link names none), so the first frame waits for one round trip, not two.
  const s0 = app.state;
  const { __earlyScene: started, __earlyModels: startedModels } =
    window as { __earlyScene?: Promise<EarlyResponse>; __earlyModels?: Promise<Response> };
  const early = s0.view === "scale" ? undefined : started ? sceneFrom(started) : fetchScene({ model: s0.model, text: s0.input });
  early?.catch(() => {});
  try {
    app.models = await fetchModels(startedModels);
  } catch (e) {
    showError(`Could not reach the llmviz server: ${(e as Error).message}`);
    return;
  }
  const select_ = $<HTMLSelectElement>("#model");
  select_.replaceChildren(...app.models.map((m) => Object.assign(document.createElement("option"), {
    value: m.name, textContent: `${m.name} · ${formatCount(m.n_params)}${m.has_weights ? "" : " · structure only"}`,
  })));
  select_.addEventListener("change", () => {
    app.state = { model: select_.value };
    void loadView();
  });
  $<HTMLFormElement>("#run").addEventListener("submit", (ev) => {
    ev.preventDefault();
    app.state = { model: app.state.model, input: $<HTMLInputElement>("#prompt").value };
    void loadView();
  });
  $<HTMLButtonElement>("#scale").addEventListener("click", () => {
    app.state = app.state.view === "scale" ? { model: "nano-gpt" } : { view: "scale" };
    void loadView();
  });
  $<HTMLButtonElement>("#home").addEventListener("click", () => view.goHome());
  window.addEventListener("keydown", onKey);
  let down = { x: 0, y: 0 };
  canvas.addEventListener("pointerdown", (e) => (down = { x: e.clientX, y: e.clientY }));
  canvas.addEventListener("click", (e) => {
    if (Math.hypot(e.clientX - down.x, e.clientY - down.y) > 4) return; // a drag, not a click
    const hit = pickAt(e.clientX, e.clientY);
    select(hit);
    writeUrl();
    // A click (or a tap) pins the cell's tooltip; a click on nothing unpins it.
    app.hover.key = "";
    app.hover.pinned = hit;
    if (hit) void showCell(hit, e.clientX, e.clientY, e.timeStamp, true);
    else unpin();
  });
  canvas.addEventListener("pointermove", onHover);
  canvas.addEventListener("pointerleave", () => {
    if (!app.hover.pinned) hideTooltip();
  });
  tooltipEl().addEventListener("click", (e) => {
    const button = (e.target as HTMLElement).closest(".tt-copy") as HTMLButtonElement | null;
    if (!button) return;
    const code = tooltipEl().querySelector(".tt-code code")?.textContent ?? "";
    void navigator.clipboard?.writeText(code).then(() => (button.textContent = "copied"),
      () => (button.textContent = "select the code to copy"));
  });
  view.scene.add(app.highlights.mesh);
  canvas.addEventListener("dblclick", (e) => {
    const hit = pickAt(e.clientX, e.clientY);
    if (!hit) return;
    const box = hit.placed.built.boxes[hit.block];
    view.flyTo(...view.framing(box, 1.6));
  });
  legend(undefined);
  const known = !s0.model || app.models.some((m) => m.name === s0.model);
  await loadView(known ? early : undefined);
  if (app.placed[0]) legend(app.placed[0].data);
}

// For tests and benchmarks: what is drawn, and how fast.
Object.assign(window, {
  __llmviz: {
    stats: () => {
      const info = app.view?.renderer.info;
      return {
        blocks: app.placed.reduce((n, p) => n + p.data.info.blocks.length, 0),
        instances: app.placed.reduce((n, p) => n + p.built.slabs.length, 0),
        drawCalls: info?.render.calls ?? 0, triangles: info?.render.triangles ?? 0, frames: app.view?.frames ?? 0,
        models: app.placed.map((p) => p.data.info.model.name), selected: app.selected ? app.selected.placed.data.info.blocks[app.selected.block].tensor : null,
        firstFrameMs: app.firstFrameMs,
      };
    },
    /** Orbit the camera for `n` frames, drawing each; resolves to the mean milliseconds per frame. */
    measureFrames: (n: number) => new Promise<number>((resolve) => {
      const v = app.view!;
      const t0 = performance.now();
      let i = 0;
      const step = () => {
        v.controls.target.x += 0.001;
        v.camera.position.applyAxisAngle(new THREE.Vector3(0, 1, 0), 0.01);
        v.controls.update();
        v.renderer.render(v.scene, v.camera);
        v.renderer.getContext().finish();
        if (++i < n) requestAnimationFrame(step);
        else resolve((performance.now() - t0) / n);
      };
      requestAnimationFrame(step);
    }),
    blockScreenPoint: (tensor: string, slab = 0, col = 0, row = 0) => {
      const hit = findBlock(tensor);
      if (!hit) return null;
      const b = hit.placed.data.info.blocks[hit.block];
      const grid = b.slabs?.[slab] ? [b.slabs[slab][2], b.slabs[slab][3]] : [b.cols, b.rows];
      const p = new THREE.Vector3(b.x + hit.placed.offsetX + (col + 0.5) * b.cols / grid[0],
        b.y - (row + 0.5) * b.rows / grid[1], b.merged ? b.z : b.z - slab * b.z_step);
      const s = app.view!.project(p);
      const r = app.view!.canvas.getBoundingClientRect();
      return s ? { x: s.x + r.left, y: s.y + r.top } : null;
    },
    camera: () => [...app.view!.camera.position.toArray(), ...app.view!.controls.target.toArray()],
    hoverMs: () => app.hover.lastMs,
    highlighted: () => app.highlights.count,
    /** Draw now and read the canvas: the RGB at a client point, or with no point the share of pixels that differ
     * from the background. */
    readPixels: (clientX?: number, clientY?: number) => {
      const v = app.view!;
      v.renderer.render(v.scene, v.camera);
      const gl = v.renderer.getContext();
      const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
      if (clientX !== undefined && clientY !== undefined) {
        const r = v.canvas.getBoundingClientRect();
        const x = Math.floor((clientX - r.left) * w / r.width), y = h - 1 - Math.floor((clientY - r.top) * h / r.height);
        const px = new Uint8Array(4);
        gl.readPixels(x, y, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
        return [px[0], px[1], px[2]];
      }
      const all = new Uint8Array(w * h * 4);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, all);
      const bg = [0xf8, 0xf9, 0xfa];
      let differ = 0;
      for (let i = 0; i < all.length; i += 4) {
        if (Math.abs(all[i] - bg[0]) + Math.abs(all[i + 1] - bg[1]) + Math.abs(all[i + 2] - bg[2]) > 12) differ++;
      }
      return differ / (w * h);
    },
    flyToBlock: (tensor: string) => {
      const hit = findBlock(tensor);
      if (hit) app.view!.flyTo(...app.view!.framing(hit.placed.built.boxes[hit.block], 1.6), 0);
    },
  },
});

void start();
