// The app: pick a model, type an input, and see every tensor of its forward pass as blocks in 3D.
import * as THREE from "three";
import { fetchExplanation, fetchModels, fetchScene, sceneFrom, type EarlyResponse, type ModelInfo } from "./api";
import { Highlights, cellRegion } from "./highlight";
import { escapeHtml } from "./html";
import { explanationHtml, structureHtml, type Explanation } from "./tooltip";
import { buildModel, pick, slabGeometry } from "./blocks";
import { allBox, homeBox, sectionBox, wholeBox, withTitles, type Placed, type Screen } from "./framing";
import { Generator } from "./generate";
import { dismissIntro, introDismissed, introHtml } from "./intro";
import { LabelLayer } from "./labels";
import { legendHtml } from "./legend";
import { overviewHtml } from "./overview";
import { readoutHtml, taskHint } from "./readout";
import { sceneLabels, shapeHtml, tileText } from "./scenelabels";
import { type SceneData } from "./scenedata";
import { formatCount } from "./trace";
import { formatState, parseState, type ViewState } from "./urlstate";
import { View } from "./view";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const SCALE_MODELS = ["nano-gpt", "gpt2", "gpt2-xl", "gpt3"];


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
  gen: null as Generator | null,
};

interface CellRef { placed: Placed; block: number; slab: number; col: number; row: number }

function showError(message: string) {
  const box = $<HTMLDivElement>("#error");
  box.textContent = message;
  box.hidden = message === "";
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
  // Side by side, each model a tenth of the tallest one's height from the next, so that at full height they
  // stand apart and their titles (in staggered rows) do not cover one another.
  const tallest = Math.max(...datas.map((d) => d.info.bounds[1] - d.info.bounds[3]));
  let x = 0;
  for (const data of datas) {
    const [bx0, , bx1] = data.info.bounds;
    const p = { data, built: buildModel(data, x - bx0), offsetX: x - bx0 };
    app.view!.scene.add(p.built.group);
    app.placed.push(p);
    x += bx1 - bx0 + Math.max(40, (bx1 - bx0) * 0.25, datas.length > 1 ? tallest * 0.1 : 0);
  }
  app.labels!.set(app.placed.flatMap((p, i) => sceneLabels(p.data, p.offsetX, app.placed.length > 1 ? i : 0)));
}


function screen(): Screen {
  return { aspect: app.view!.camera.aspect, height: app.view!.canvas.clientHeight, models: app.placed.length };
}

/** Every placed model whole, with room for the titles. */
function everything(): THREE.Box3 {
  return withTitles(allBox(app.placed), screen());
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
  const c = app.hover.pinned;
  s.cell = c ? { tensor: c.placed.data.info.blocks[c.block].tensor, slab: c.slab, col: c.col, row: c.row } : undefined;
  history.replaceState(null, "", formatState(s) || location.pathname);
}

/** A narrow screen (a phone): one panel at a time. */
function narrow(): boolean {
  return window.innerWidth <= 640;
}

/** On a narrow screen, opening one panel closes the others. */
function onlyPanel(keep: string) {
  if (!narrow()) return;
  for (const id of ["#selection", "#map", "#tooltip", "#intro", "#gen"]) if (id !== keep) $<HTMLElement>(id).hidden = true;
  const legend = document.querySelector<HTMLDetailsElement>("#legend-box");
  if (legend && keep !== "#legend") legend.open = false;
  if (keep !== "#tooltip" && app.hover.pinned) unpin();
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
    if (narrow()) {  // a phone shows the tapped cell's tooltip, which names the block too: one panel at a time
      app.view!.requestRender();
      return;
    }
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

/** Hide the tooltip and its highlights; an explanation still on its way is for a cell no longer wanted. */
function hideTooltip() {
  app.hover.seq++;
  app.hover.key = "";
  if (tooltipEl().hidden && !app.highlights.count) return;  // nothing shown: nothing to undo (camera moves)
  tooltipEl().hidden = true;
  app.highlights.clear();
  for (const p of app.placed) p.built.focus(null);
  app.view?.requestRender();
}

function unpin() {
  app.hover.pinned = null;
  tooltipEl().classList.remove("pinned");
  hideTooltip();
}

/** The camera moved: the cell under the pointer is another one, so an unpinned tooltip goes; a pinned one
 * follows its cell. */
function onCameraMove() {
  const c = app.hover.pinned;
  if (!c) {
    hideTooltip();
    return;
  }
  const p = cellScreenPoint(c);
  if (p) placeTooltip(p.x, p.y);
}

/** Where a displayed cell is on screen, in client pixels (null: behind the camera). */
function cellScreenPoint(c: CellRef): { x: number; y: number } | null {
  const b = c.placed.data.info.blocks[c.block];
  const grid = b.slabs?.[c.slab] ? [b.slabs[c.slab][2], b.slabs[c.slab][3]] : [b.cols, b.rows];
  const g = slabGeometry(b, c.slab);
  const s = app.view!.project(new THREE.Vector3(g.x + c.placed.offsetX + (c.col + 0.5) * b.cols / grid[0],
    b.y - (c.row + 0.5) * b.rows / grid[1], g.z));
  const r = app.view!.canvas.getBoundingClientRect();
  return s ? { x: s.x + r.left, y: s.y + r.top } : null;
}

/** A link's pinned cell: pinned again, its tooltip shown beside it. */
function pinCellFromState(cell: NonNullable<ViewState["cell"]>) {
  const hit = findBlock(cell.tensor);
  if (!hit) return;
  const b = hit.placed.data.info.blocks[hit.block];
  const grid = b.slabs?.[cell.slab] ? [b.slabs[cell.slab][2], b.slabs[cell.slab][3]] : [b.cols, b.rows];
  if (cell.slab >= (b.merged ? 1 : b.depth) || cell.col >= grid[0] || cell.row >= grid[1]) return;
  const c = { ...hit, slab: cell.slab, col: cell.col, row: cell.row };
  app.hover.pinned = c;
  const p = cellScreenPoint(c) ?? { x: 40, y: 80 };
  void showCell(c, p.x, p.y, performance.now(), true);
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
    const tokens = info.past ? info.context! : info.tokens;  // a generation step: its whole context, and where it starts
    const ckey = `${info.model.name}|${tokens.join(",")}|${info.past ?? 0}|${b.tensor}|${JSON.stringify(region)}`;
    let e = app.explained.get(ckey);
    if (!e) {
      try {
        e = await fetchExplanation({ model: info.model.name, tokens, tensor: b.tensor, region, past: info.past || undefined });
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
  if (pinned) onlyPanel("#tooltip");
  tip.hidden = false;
  placeTooltip(clientX, clientY);
  const find = (tensor: string) => {
    const i = info.blocks.findIndex((x) => x.tensor === tensor);
    return i < 0 ? null : { block: info.blocks[i], offsetX: c.placed.offsetX };
  };
  const shown = regions.length ? regions : [{ tensor: b.tensor, ranges: cellRegion(b, c.slab, c.col, c.row), role: "target" }];
  app.highlights.set(shown, find);
  // The blocks the number came from stay; the rest fade, so the sources stand out at any zoom.
  const sources = new Set(shown.map((r) => info.blocks.findIndex((x) => x.tensor === r.tensor)));
  for (const p of app.placed) p.built.focus(p === c.placed ? sources : new Set());
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
    const ev = app.hover.pendingEvent;
    app.hover.pendingEvent = null;
    if (!ev || app.hover.pinned) return;  // the pointer left, or a cell was pinned meanwhile
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

/** Load and show the view the state names. A link with an unknown model or an input the model refuses says
 * so, keeps the input field to correct it, and shows the model's own example instead of nothing. A failure
 * after the first view keeps the view as it was. */
async function loadView(early?: Promise<SceneData>) {
  const seq = ++app.loadSeq;
  const s = app.state;
  const status = $<HTMLSpanElement>("#status");
  status.textContent = "computing…";
  showError("");
  const problems: string[] = [];
  const heads = s.heads ?? "side";
  try {
    let datas: SceneData[];
    if (s.view === "scale") {
      const nano = await fetchScene({ model: "nano-gpt", heads });
      const rest = await Promise.all(SCALE_MODELS.slice(1).filter((m) => app.models.some((x) => x.name === m))
        .map((m) => fetchScene({ model: m, n_pos: nano.info.n_pos, heads })));
      datas = [nano, ...rest];
    } else {
      let info = app.models.find((m) => m.name === (s.model ?? app.models[0].name));
      if (!info) {  // a link to a model this server does not have
        problems.push(`unknown model '${s.model}': this server has ${app.models.map((m) => m.name).join(", ")}; showing ${app.models[0].name}`);
        info = app.models[0];
        early = undefined;
        delete s.input;
      }
      s.model = info.name;
      const text = info.has_weights ? (s.input ?? info.example ?? undefined) : undefined;
      if (info.has_weights && text !== undefined) s.input = text;
      else delete s.input;
      syncControls();  // the input field is there to correct, whatever happens next
      try {
        datas = [await (early ?? fetchScene({ model: info.name, text, heads, past: s.past }))];
      } catch (e) {
        if (app.placed.length || !info.has_weights || text === info.example) throw e;
        // A first view whose input is refused: say why, and show the model's example meanwhile.
        problems.push(`${(e as Error).message} (showing the example ${info.example} instead)`);
        datas = [await fetchScene({ model: info.name, text: info.example ?? undefined, heads })];
      }
    }
    if (seq !== app.loadSeq) return;
    place(datas);
    app.view!.ready = true;
    updateNotice();
    scaleBars();
    syncControls();
    updatePanels();
    const v = app.view!;
    const home = v.framing(app.placed.length > 1 ? everything() : homeBox(app.placed[0], screen()), 1.05);
    v.setHome(...home);
    const target = s.block ? findBlock(s.block) : null;
    if (s.camera) {
      v.flyTo(new THREE.Vector3(...s.camera.slice(0, 3)), new THREE.Vector3(...s.camera.slice(3)), 0);
    } else if (target) {
      v.flyTo(...v.framing(target.placed.built.boxes[target.block], 1.6), 0);  // a link to a block shows it
    } else v.goHome(false);
    if (target) select(target);
    status.textContent = "";
    v.onRender = () => {
      app.labels!.update();
      if (app.firstFrameMs === null) {
        app.firstFrameMs = performance.now(); // since navigation start
        document.body.dataset.ready = "true";
      }
    };
    v.renderNow(); // the first frame of a new scene does not wait for the next animation frame
    if (s.cell) pinCellFromState(s.cell);
    writeUrl();
    showError(problems.join(" · "));
  } catch (e) {
    if (seq !== app.loadSeq) return;
    status.textContent = "";
    showError([...problems, (e as Error).message].join(" · "));
  }
}

/** The readout, the map, the legend and (on a first visit) the intro card, for what is on screen now. */
function updatePanels() {
  const one = app.placed.length === 1 ? app.placed[0].data.info : undefined;
  const readout = $<HTMLDivElement>("#readout");
  readout.innerHTML = one ? readoutHtml(one) : "";
  readout.hidden = readout.innerHTML === "";
  $<HTMLDivElement>("#map-body").innerHTML = one ? overviewHtml(one.sections) : "";
  $<HTMLButtonElement>("#map-toggle").hidden = !one;
  if (!one) $<HTMLDivElement>("#map").hidden = true;
  const canGenerate = !!one?.model.has_weights;  // a structure-only model has no numbers to draw tokens from
  $<HTMLButtonElement>("#gen-toggle").hidden = !canGenerate;
  if (!canGenerate) $<HTMLDivElement>("#gen").hidden = true;
  $<HTMLDivElement>("#legend").innerHTML = legendHtml(app.placed[0]?.data.info);
  if (narrow()) ($<HTMLDetailsElement>("#legend-box")).open = false;
  const intro = $<HTMLDivElement>("#intro");
  intro.hidden = !one || introDismissed();
  if (!intro.hidden && one) intro.innerHTML = introHtml(one, matchMedia("(pointer: coarse)").matches);
}

/** In the scale view: each model's parameter count as a bar on a log scale (a click flies to the model), and
 * nano-gpt, too small to see beside GPT-3, enlarged in its own inset. */
function scaleBars() {
  const box = $<HTMLDivElement>("#scalebars");
  const scale = app.placed.length > 1;
  box.hidden = !scale;
  $<HTMLDivElement>("#inset-label").hidden = !scale;
  app.view!.inset = scale ? { box: wholeBox(app.placed[0]), width: 220, height: 170, only: app.placed[0].built.group } : null;
  if (!scale) return;
  const counts = app.placed.map((p) => p.data.info.model.n_params);
  const lo = Math.floor(Math.log10(Math.min(...counts))), hi = Math.ceil(Math.log10(Math.max(...counts)));
  const rows = app.placed.map((p, i) => {
    const m = p.data.info.model, w = ((Math.log10(m.n_params) - lo + 0.3) / (hi - lo + 0.3)) * 100;
    return `<button type="button" class="bar-row" data-model="${i}"><span class="bar-name">${escapeHtml(m.name)}</span>
      <span class="bar-track"><span class="bar-fill" style="width:${w.toFixed(1)}%"></span></span>
      <span class="bar-count">${formatCount(m.n_params)}</span></button>`;
  });
  box.innerHTML = `<div class="bars-title">parameters (log scale: each step is ×10)</div>${rows.join("")}`;
  const big = app.placed[app.placed.length - 1].data.info.model, nano = app.placed[0].data.info.model;
  $<HTMLDivElement>("#inset-label").textContent = `${nano.name}, enlarged: ${formatCount(nano.n_params)} parameters, ` +
    `1/${formatCount(Math.round(big.n_params / nano.n_params))} of ${big.name}`;
}

function syncControls() {
  const s = app.state;
  const info = app.models.find((m) => m.name === s.model);
  const select_ = $<HTMLSelectElement>("#model");
  select_.value = s.view === "scale" ? "__scale" : s.model ?? "";  // the scale view has its own entry
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
  view.onCameraMove = onCameraMove;
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
  })), Object.assign(document.createElement("option"), { value: "__scale", textContent: "scale view" }));
  select_.addEventListener("change", () => {
    app.state = select_.value === "__scale" ? { view: "scale" } : { model: select_.value, heads: app.state.heads };
    app.gen!.forget();
    void loadView();
  });
  $<HTMLFormElement>("#run").addEventListener("submit", (ev) => {
    ev.preventDefault();
    app.state = { model: app.state.model, input: $<HTMLInputElement>("#prompt").value, heads: app.state.heads };
    app.gen!.forget();
    void loadView();
  });
  app.gen = new Generator($<HTMLDivElement>("#gen"), {
    model: () => app.state.model ?? app.models[0].name,
    input: () => $<HTMLInputElement>("#prompt").value,
    load: (text, past) => {
      app.state = { model: app.state.model, input: text, heads: app.state.heads, past };
      return loadView();
    },
    error: showError,
    tokenRect: () => document.querySelector(".label.block.kind-input")?.getBoundingClientRect() ?? null,
  });
  app.gen.render();
  $<HTMLButtonElement>("#gen-toggle").addEventListener("click", () => {
    const gen = $<HTMLDivElement>("#gen");
    gen.hidden = !gen.hidden;
    if (!gen.hidden) onlyPanel("#gen");
  });
  $<HTMLButtonElement>("#scale").addEventListener("click", () => {
    app.state = app.state.view === "scale" ? { model: "nano-gpt" } : { view: "scale" };
    void loadView();
  });
  $<HTMLButtonElement>("#heads").addEventListener("click", () => {
    const { model, input, view: v } = app.state;
    app.state = { model, input, view: v, heads: app.state.heads === "stack" ? undefined : "stack" };
    void loadView();
  });
  $<HTMLButtonElement>("#home").addEventListener("click", () => view.goHome());
  $<HTMLButtonElement>("#fit").addEventListener("click", () => app.placed.length && view.flyTo(...view.framing(everything(), 1.05)));
  $<HTMLButtonElement>("#menu").addEventListener("click", () => document.body.classList.toggle("menu-open"));
  $<HTMLButtonElement>("#map-toggle").addEventListener("click", () => {
    const map = $<HTMLDivElement>("#map");
    map.hidden = !map.hidden;
    if (!map.hidden) onlyPanel("#map");
  });
  $<HTMLDivElement>("#map").addEventListener("click", (e) => {
    const key = (e.target as HTMLElement).closest<HTMLElement>("[data-section]")?.dataset.section;
    const p = app.placed[0];
    if (!key || !p) return;
    const box = key === "*" ? everything() : sectionBox(p, key);
    if (box) view.flyTo(...view.framing(box, 1.1));
    if (narrow()) $<HTMLDivElement>("#map").hidden = true;
  });
  $<HTMLDivElement>("#intro").addEventListener("click", (e) => {
    const action = (e.target as HTMLElement).closest<HTMLElement>("[data-intro]")?.dataset.intro;
    if (!action) return;
    dismissIntro();
    $<HTMLDivElement>("#intro").hidden = true;
    if (action === "all" && app.placed.length) view.flyTo(...view.framing(everything(), 1.05));
  });
  $<HTMLDivElement>("#scalebars").addEventListener("click", (e) => {
    const i = (e.target as HTMLElement).closest<HTMLElement>("[data-model]")?.dataset.model;
    if (i !== undefined) view.flyTo(...view.framing(wholeBox(app.placed[Number(i)])), 1200);
  });
  $<HTMLDivElement>("#legend").addEventListener("toggle", (e) => {
    if ((e.target as HTMLDetailsElement).open) onlyPanel("#legend");
  }, true);
  const touch = matchMedia("(pointer: coarse)").matches;
  $<HTMLDivElement>("#help").textContent = touch
    ? "tap a cell: its value and formula · drag: pan · pinch: zoom · two fingers: rotate · Map: go anywhere"
    : "hover a cell: its value and formula · click or Enter: pin · drag: pan · right-drag: rotate · wheel: zoom · " +
      "double-click: fly to a block · arrows/WASD, +/−, Home";
  window.addEventListener("keydown", onKey);
  let down = { x: 0, y: 0 };
  canvas.addEventListener("pointerdown", (e) => (down = { x: e.clientX, y: e.clientY }));
  canvas.addEventListener("click", (e) => {
    if (Math.hypot(e.clientX - down.x, e.clientY - down.y) > 4) return; // a drag, not a click
    const hit = pickAt(e.clientX, e.clientY);
    select(hit);
    // A click (or a tap) pins the cell's tooltip; a click on nothing unpins it.
    app.hover.key = "";
    app.hover.pinned = hit;
    if (hit) void showCell(hit, e.clientX, e.clientY, e.timeStamp, true);
    else unpin();
    writeUrl();
  });
  canvas.addEventListener("pointermove", onHover);
  canvas.addEventListener("pointerleave", () => {
    app.hover.pendingEvent = null;  // a pick already scheduled is for a pointer no longer here
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
    unpin();  // the double-click's clicks pinned a tooltip: a fly-to is not a pin
    writeUrl();
    if (!hit) return;
    const box = hit.placed.built.boxes[hit.block];
    view.flyTo(...view.framing(box, 1.6));
  });
  $<HTMLDivElement>("#legend").innerHTML = legendHtml(undefined);
  const known = !s0.model || app.models.some((m) => m.name === s0.model);
  await loadView(known ? early : undefined);
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
      return hit ? cellScreenPoint({ ...hit, slab, col, row }) : null;
    },
    /** The screen rectangle of all placed models' bounds (client pixels). */
    modelScreenBox: () => {
      const box = allBox(app.placed), r = app.view!.canvas.getBoundingClientRect();
      const pts = [box.min.x, box.max.x].flatMap((x) => [box.min.y, box.max.y].map((y) => app.view!.project(new THREE.Vector3(x, y, 0))));
      if (pts.some((p) => !p)) return null;
      const xs = pts.map((p) => p!.x + r.left), ys = pts.map((p) => p!.y + r.top);
      return { left: Math.min(...xs), right: Math.max(...xs), top: Math.min(...ys), bottom: Math.max(...ys) };
    },
    camera: () => [...app.view!.camera.position.toArray(), ...app.view!.controls.target.toArray()],
    hoverMs: () => app.hover.lastMs,
    stepMs: () => app.gen?.lastStepMs ?? null,
    highlighted: () => app.highlights.count,
    /** Draw now and read the canvas: the RGB at a client point, or with no point the share of pixels that differ
     * from the background (within a client rectangle, if given). */
    readPixels: (clientX?: number, clientY?: number, rect?: { left: number; top: number; right: number; bottom: number }) => {
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
      const r = v.canvas.getBoundingClientRect(), sx = w / r.width, sy = h / r.height;
      const [x0, x1] = rect ? [(rect.left - r.left) * sx, (rect.right - r.left) * sx] : [0, w];
      const [y0, y1] = rect ? [h - (rect.bottom - r.top) * sy, h - (rect.top - r.top) * sy] : [0, h];
      let differ = 0, n = 0;
      for (let y = Math.max(0, Math.floor(y0)); y < Math.min(h, y1); y++) {
        for (let x = Math.max(0, Math.floor(x0)); x < Math.min(w, x1); x++) {
          const i = (y * w + x) * 4;
          n++;
          if (Math.abs(all[i] - bg[0]) + Math.abs(all[i + 1] - bg[1]) + Math.abs(all[i + 2] - bg[2]) > 12) differ++;
        }
      }
      return differ / Math.max(n, 1);
    },
    flyToBlock: (tensor: string) => {
      const hit = findBlock(tensor);
      if (hit) app.view!.flyTo(...app.view!.framing(hit.placed.built.boxes[hit.block], 1.6), 0);
    },
  },
});

void start();
