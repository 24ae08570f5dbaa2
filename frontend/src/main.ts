// The app: pick a model, type an input, and see every tensor of its forward pass as blocks in 3D.
import * as THREE from "three";
import { fetchModels, fetchScene, sceneFrom, type EarlyResponse } from "./api";
import { homeBox, sectionAt, sectionBox, withLayerTitles, ZOOM_OUT } from "./framing";
import { Generator } from "./generate";
import { onCameraMove, onHover, pinCellFromState, showCell, tooltipEl, unpin, hideTooltip } from "./hover";
import { dismissIntro, introDismissed, offerPath } from "./intro";
import { Pulse } from "./pulse";
import { cannot, knowModels, syncOffers } from "./engine";
import { isCancelled, setUpProgress, watch } from "./progress";
import { onKey } from "./keyboard";
import { escapeCloses } from "./panelkeys";
import { LabelLayer } from "./labels";
import { legendHtml } from "./legend";
import { deselect, notify, onlyPanel, scaleBars, select, syncControls, updateNotice, updatePanels, withUnlisted } from "./panels";
import * as scene from "./scene";
import { everything, findBlock, freeRect, pickAt, place, screen } from "./scene";
import type { BlockInfo, SceneData, SceneInfo } from "./scenedata";
import { app, narrow, showError, writeUrl, $ } from "./state";
import { EditMenu, editsPanelHtml, wireEditsPanel, type EditHost } from "./editmenu";
import type { Edit } from "./edits";
import { cellRegion } from "./highlight";
import { formatCount } from "./trace";
import { linkProblems, parseState, type ViewState } from "./urlstate";
import { embedded, tellHost } from "./transport";
import { exported, savedInputs, storedStep } from "./exported";
import { View } from "./view";
import { Insights } from "./insights";
import { closeEmbedMap, embedMap } from "./embedmap";
import { Walkthrough } from "./walkthrough";
import { Training } from "./training";
import { mountDigitPad, updateDigitPad } from "./digitpad";
import { isLearnerName, mountNeuronPlot, updateNeuronPlot } from "./neuronplot";
import { LearningPath } from "./learningpath";
import { isQuantized, precisionOf, quantView, syncPrecision } from "./precision";
import { Compare, sharedScales } from "./compare";

const SCALE_MODELS = ["nano-gpt", "gpt2", "gpt2-xl", "gpt3"];
let compare: Compare | null = null;  // the Compare precisions panel (a served page's)
let path: LearningPath | null = null;  // the learning path's entry (a served page's: not an export's or a widget's)

/** The scale view's models that this server serves (nano-gpt first, whose positions the others are laid out for);
 * none when it does not serve nano-gpt and at least one more: then there is no scale view. */
function scaleModels(): string[] {
  const served = SCALE_MODELS.filter((m) => app.models.some((x) => x.name === m));
  return served[0] === "nano-gpt" && served.length > 1 && !exported() ? served : [];
}

/** Mark the saved input on show (an export's buttons). */
function markSaved(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>("#saved button")) {
    b.setAttribute("aria-current", String(b.value === app.state.input && !app.state.past));
  }
}


/** An edited pass: its edits listed in the panel and outlined where they were made, and its cells coloured by how
 * much they changed (or, asked for, by their values). A clean pass: no panel, no outlines, values. */
function showEdits() {
  const p = app.placed.length === 1 ? app.placed[0] : null;
  const edits = p?.data.info.edits ?? [];
  const colour = app.state.show === "values" ? "values" : "change";
  const grads = p?.data.info.loss != null;  // (a scene asked for with gradients: shown by them)
  const compared = !!p?.data.info.compare;  // (a comparison of two precisions: coloured by the difference, as an edit)
  for (const q of app.placed) q.built.colourBy(edits.length || compared ? colour : grads ? "gradients" : p?.data.info.quant_error != null ? "error" : "values");
  if (compared && colour === "change") p!.built.restyle(sharedScales(p!.data.info));  // (one scale: the differences compare)
  const toggle = $<HTMLButtonElement>("#grad-toggle");  // (a whole clean pass of a model with weights, served)
  const info = p?.data.info;
  toggle.hidden = !info?.model.has_weights || !!info.past || edits.length > 0 || compared || !!exported();
  toggle.setAttribute("aria-pressed", String(grads));
  const panel = $<HTMLDivElement>("#edits");
  panel.innerHTML = editsPanelHtml(edits, colour);
  panel.hidden = !edits.length;
  const blocks = p?.data.info.blocks ?? [];
  app.editMarks.set(edits.map((e) => ({ tensor: e.tensor, ranges: e.where, role: "edit" })), (tensor) => {
    const b = blocks.find((x) => x.tensor === tensor);
    return b && p ? { block: b, offsetX: p.offsetX } : null;
  });
  app.view?.requestRender();
}

/** Why a block of this view cannot be edited ("": it can). */
function editBlocked(info: SceneInfo, b: BlockInfo): string {
  if (exported()) return "Edits need llmviz serve: this saved page has no server to run the edited pass.";
  if (!info.model.has_weights) return "This model is structure only: no weights are loaded, so there is no pass to edit.";
  if (cannot(info.model.name, "edit")) return cannot(info.model.name, "edit");  // (its engine's: nnsight)
  if (app.state.view === "scale") return "Edits are made on one model's view: choose a model to leave the scale view.";
  if (info.past) return "Edits are made on a whole pass: turn off the KV-cache view (in Generate) first.";
  if (b.kind === "weight") return "Weights are not edited here: edit an activation that reads this weight, such as the block below it.";
  if (b.kind === "input") return "These are the input's tokens: type another input, or patch an activation from another input.";
  return "";
}

/** Add an edit: the edited pass is asked for first, so that an edit the server refuses leaves the view as it was
 * (and says why). */
function addEdit(edit: Edit) {
  return setEdits([...(app.state.edits ?? []), edit]);
}

/** Make the view the pass with these edits (asked for first: an edit the server refuses leaves the view as it was). */
async function setEdits(next: Edit[]) {
  const s = app.state;
  const status = $<HTMLSpanElement>("#status");
  status.textContent = "computing the edited pass…";
  try {
    const data = await fetchScene({ model: s.model, text: s.input, heads: s.heads ?? "side", edits: next });
    s.edits = next;
    await loadView(Promise.resolve(data), { here: true });
  } catch (e) {
    status.textContent = "";
    if (!isCancelled(e)) showError(`Could not make this edit: ${(e as Error).message}`);
  }
}

/** Remove an edit (-1: the last one; null: all of them). */
function removeEdit(i: number | null): Promise<void> {
  const list = [...(app.state.edits ?? [])];
  if (i === null) list.length = 0;
  else list.splice(i < 0 ? list.length - 1 : i, 1);
  app.state.edits = list.length ? list : undefined;
  if (!list.length) delete app.state.show;
  return loadView(undefined, { here: true });
}

/** What the first view's link asked for that this page cannot show (an export's scale view, say): said in the
 * notice with the first view's other such notes. */
const linkNotes: string[] = [];

/** Where the camera goes after a reload that changes the layout but not what is looked at (Stack heads): the same
 * section re-framed, Home, where it is now (an edit: the same layout, other numbers), or (null) the camera as the
 * state says. */
type Keep = { section: string } | { home: true } | { here: true } | null;

/** The state of the view on screen: what a cancelled load goes back to (progress.ts's Cancel). */
let shownState: ViewState | null = null;

/** Load and show the view the state names. A link with an unknown model or an input the model refuses says
 * so, keeps the input field to correct it, and shows the model's own example instead of nothing. A failure
 * after the first view keeps the view as it was. */
async function loadView(early?: Promise<SceneData>, keep?: Keep) {
  const seq = ++app.loadSeq;
  const s = app.state;
  // The camera this view was asked with: a camera move that ends while the pass is computed (the last view's
  // flight) writes the URL, and with it s.camera, but is not what was asked for (Generate's Reset).
  const camera = s.camera;
  const status = $<HTMLSpanElement>("#status");
  status.textContent = "computing…";
  showError("");
  const problems: string[] = [];
  const notes: string[] = linkNotes.splice(0);  // what the link asked for and the view shows without: the notice
  const heads = s.heads ?? "side";
  try {
    let datas: SceneData[];
    if (s.view === "scale") {
      // (each model a tower of layers: side by side, their heights compare their depths)
      const nano = await fetchScene({ model: "nano-gpt", heads, tower: true });
      const rest = await Promise.all(scaleModels().slice(1).map((m) => fetchScene({ model: m, n_pos: nano.info.n_pos, heads,
        tower: true })));
      datas = [nano, ...rest];
    } else {
      let info = app.models.find((m) => m.name === (s.model ?? app.models[0].name));
      let why = "";
      const stored = !info && s.model ? precisionOf(app.models, s.model) : null;  // a served model in another precision
      if (stored) info = { ...stored.model, name: s.model! };  // (nano-gpt:q4_0: the precision selector's)
      if (!info && s.model) {  // a training run's snapshot (nano-gpt@1200): not in the list, found by its name
        // (or a neuron of the learner's weights, neuron~1.5,-0.8,0.2: the neuron's plot names it)
        const found = await withUnlisted(s.model, app.models, $<HTMLSelectElement>("#model"),
          ...(isLearnerName(s.model) ? ["learner", "your weights"] : ["snapshot", "snapshot"]) as [string, string]);
        ({ models: app.models, why } = found);
        info = found.info ?? undefined;
      }
      if (!info) {  // a link to a model this server does not have
        problems.push(`${why || `unknown model '${s.model}': this server has ${app.models.map((m) => m.name).join(", ")}`}; showing ${app.models[0].name}`);
        info = app.models[0];
        early = undefined;
        delete s.input;
      }
      s.model = info.name;
      const text = info.has_weights ? (s.input ?? info.example ?? undefined) : undefined;
      if (info.has_weights && text !== undefined) s.input = text;
      else delete s.input;
      syncControls();  // the input field is there to correct, whatever happens next
      if (!early && s.past === undefined && text !== undefined) s.past = await storedStep(text);  // (an export's)
      let got: SceneData | null = null, failure: unknown = null;
      const edits = s.past === undefined && info.has_weights ? s.edits : undefined;
      const gradients = s.show === "gradients" && s.past === undefined && !edits?.length && info.has_weights ? true : undefined;
      // (a quantized model's weights coloured by their error: its whole clean pass)
      const quant_error = quantView.error && !gradients && s.past === undefined && !edits?.length && isQuantized(app.models, info.name) ? true : undefined;
      try {
        got = await (early ?? fetchScene({ model: info.name, text, heads, past: s.past, edits, gradients, quant_error }));
      } catch (e) {
        failure = e;
      }
      if (isCancelled(failure)) throw failure;
      if (failure && edits?.length) {
        // Edits this input cannot take (a link's, or kept from the input before): say why, and show the clean pass.
        notes.push(`The edits could not be made on this input: ${(failure as Error).message}. Showing the clean pass`);
        delete s.edits;
        failure = null;
        try {
          got = await fetchScene({ model: info.name, text, heads, past: s.past });
        } catch (e) {
          failure = e;
        }
      }
      if (failure && s.past !== undefined && !app.placed.length) {
        // A link to a KV-cache view this input has no step for: say so, and show the input's whole pass.
        notes.push(`The link's KV-cache view (past=${s.past}) cannot be shown for ${text}: ${(failure as Error).message}. ` +
          "Showing the whole pass instead");
        delete s.past;
        failure = null;
        try {
          got = await fetchScene({ model: info.name, text, heads });
        } catch (e) {
          failure = e;
        }
      }
      if (failure) {
        if (app.placed.length || !info.has_weights || text === info.example || isCancelled(failure)) throw failure;
        // A first view whose input is refused: say why, and show the model's example meanwhile.
        problems.push(`${(failure as Error).message} (showing the example ${info.example} instead)`);
        got = await fetchScene({ model: info.name, text: info.example ?? undefined, heads });
      }
      datas = [got!];
    }
    if (seq !== app.loadSeq) return;
    place(datas);
    showEdits();
    syncPrecision(app.models, app.placed.length === 1 ? app.placed[0].data.info : undefined, $<HTMLSelectElement>("#precision"),
      $<HTMLElement>("#precision-field"), $<HTMLButtonElement>("#qerr-toggle"));
    $<HTMLButtonElement>("#cmp-toggle").hidden = !!exported() || $<HTMLElement>("#precision-field").hidden;  // (no formats)
    syncOffers(app.placed.length === 1 ? app.placed[0].data.info.model.name : undefined);  // (an nnsight model's: engine.ts)
    app.view!.ready = true;
    updateNotice();
    scaleBars();
    syncControls();
    markSaved();
    updatePanels();
    updateDigitPad(app.placed.length === 1 ? app.placed[0].data.info : undefined);  // an image model's input
    updateNeuronPlot(app.placed.length === 1 ? app.placed[0].data.info : undefined);  // a neuron's decision line
    compare?.update(app.placed.length === 1 ? app.placed[0].data.info : undefined);  // a comparison's numbers
    const v = app.view!;
    // (the scale view's models below its table: scaleBars drew it above)
    const home = app.placed.length > 1 ? v.framing(everything(), 1.05, undefined, freeRect())
      : v.framing(homeBox(app.placed[0], screen()), 1.05);
    v.setHome(...home);
    v.setZoomLimit(everything(), ZOOM_OUT);  // zoomed out, the whole model stays a good part of the view
    // A link's block or cell that this view does not have: say so, and show the rest.
    const where = s.view === "scale" ? "the scale view" : s.model ?? "";
    const bad = linkProblems(s, (tensor) => {
      const hit = findBlock(tensor);
      if (!hit) return null;
      const b = hit.placed.data.info.blocks[hit.block];
      return { slabs: b.merged ? 1 : b.depth, grid: (k) => (b.slabs?.[k] ? [b.slabs[k][2], b.slabs[k][3]] : [b.cols, b.rows]) };
    }, where);
    if (bad.block) {
      notes.push(bad.block);
      delete s.block;
    }
    if (bad.cell) {
      notes.push(bad.cell);
      delete s.cell;
    }
    const target = s.block ? findBlock(s.block) : null;
    const section = keep && "section" in keep ? sectionBox(app.placed[0], keep.section) : null;
    if (keep && "here" in keep) { /* the camera stays */ }
    else if (keep && "home" in keep) v.goHome(false);
    else if (section) v.flyTo(...v.framing(section, 1.1), 0);  // the same section, in the new layout
    else if (camera) {
      v.flyTo(new THREE.Vector3(...camera.slice(0, 3)), new THREE.Vector3(...camera.slice(3)), 0);
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
    shownState = JSON.parse(JSON.stringify(app.state));
    showError(problems.join(" · "));
    notify(notes.join(" · "));
    path?.render();  // (its "you are here")
  } catch (e) {
    if (seq !== app.loadSeq) return;
    status.textContent = "";
    if (isCancelled(e)) {  // the learner cancelled a long pass: the view, and the state it shows, stay as they were
      if (shownState) {
        app.state = JSON.parse(JSON.stringify(shownState));
        syncControls();
        writeUrl();
      } else showError("Cancelled: nothing is shown yet. Press Run, or choose another model, to compute a view.");
      return;
    }
    showError([...notes, ...problems, (e as Error).message].join(" · "));
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
  const view = new View(canvas);
  app.view = view;
  app.labels = new LabelLayer($<HTMLDivElement>("#labels"), view, undefined, () => {  // none under the toolbar or table
    const c = canvas.getBoundingClientRect();
    return ["#toolbar", "#scalebars"].map((s) => $<HTMLElement>(s).getBoundingClientRect()).filter((r) => r.height)
      .map((r) => [r.left - c.left, r.top - c.top, r.right - c.left, r.bottom - c.top]);
  });
  view.onCameraEnd = writeUrl;
  view.onCameraMove = onCameraMove;
  // The first scene is requested at once, beside the model list (the server picks its first model if the
  // link names none), so the first frame waits for one round trip, not two.
  const s0 = app.state;
  const { __earlyScene: sent, __earlyModels: startedModels, __earlyTask: task } =
    window as { __earlyScene?: Promise<EarlyResponse>; __earlyModels?: Promise<Response>;
      __earlyTask?: { task: string; at: number; controller: AbortController } };
  setUpProgress();  // (a long first scene shows its progress, and can be cancelled)
  const started = sent && task ? watch(task.task, task.controller, task.at, sent) : sent;
  // (index.html asks for the default layout's whole pass: a link to stacked heads or a KV-cache step asks here)
  const plain = s0.view !== "scale" && !s0.heads && s0.past === undefined && !s0.edits && !s0.show;
  const early = plain ? (started ? sceneFrom(started) : fetchScene({ model: s0.model, text: s0.input })) : undefined;
  early?.catch(() => {});
  try {
    app.models = await fetchModels(startedModels);
    knowModels(app.models);  // (engine.ts: what a model's engine cannot offer)
  } catch (e) {
    showError(`Could not reach the llmviz server: ${(e as Error).message}`);
    return;
  }
  const select_ = $<HTMLSelectElement>("#model");
  select_.replaceChildren(...app.models.map((m) => Object.assign(document.createElement("option"), {
    value: m.name, textContent: `${m.name} · ${formatCount(m.n_params)}${m.has_weights ? "" : " · structure only"}`,
  })), ...(scaleModels().length ? [Object.assign(document.createElement("option"), { value: "__scale", textContent: "scale view" })] : []));
  // A static export holds its model's views of its inputs, laid out side by side: not the scale view or stacked heads
  // (and a server of other models than nano-gpt and the presets has no scale view).
  if (exported()) $<HTMLButtonElement>("#heads").hidden = true;
  if (!scaleModels().length) $<HTMLButtonElement>("#scale").hidden = true;
  if (!scaleModels().length && s0.view === "scale") {  // (the export's page names its model and first input in any address)
    linkNotes.push(exported() ? `The scale view is not part of this export (run llmviz serve for it): showing ${app.models[0].name}`
      : `This server has no scale view (it needs nano-gpt and the presets): showing ${app.models[0].name}`);
    delete s0.view;
  }
  if (exported() && s0.heads) {
    linkNotes.push("Stacked heads are not part of this export (run llmviz serve for them): the heads are side by side");
    delete s0.heads;
  }
  select_.addEventListener("change", async () => {
    deselect();  // another model: the block description goes now (see runInput)
    const at = app.walk!.at;
    app.state = select_.value === "__scale" ? { view: "scale" } : { model: select_.value, heads: app.state.heads };
    app.gen!.forget();
    if (at && app.state.view === "scale") app.walk!.close();  // the scale view has no forward pass to walk through
    await loadView();
    if (at && app.state.view !== "scale") await app.walk!.open(at);  // the same step, told for the new model
  });

  const runInput = async (text: string) => {
    deselect();  // a new input: the old view's block description goes now, not after the pass (a camera move
    // meanwhile would write it back into the state, and the new view would select it again)
    const step = app.walk!.at ?? undefined;
    const { edits, show } = app.state;  // the edits stay, if the new input takes them (loadView)
    app.state = { model: app.state.model, input: text, heads: app.state.heads, step, edits, show };
    app.gen!.forget();
    const before = app.placed[0]?.data;
    await loadView();
    if (step) await app.walk!.open(step);  // the walkthrough's numbers follow the new input
    else if (app.placed[0] && app.placed[0].data !== before) app.pulse!.start();  // the new numbers, computed in order
    app.insights!.refresh();
  };
  mountDigitPad($<HTMLDivElement>("#digitpad"), (text) => {  // a digit drawn: the model's input, run
    $<HTMLInputElement>("#prompt").value = text;
    void runInput(text);
  });
  mountNeuronPlot($<HTMLDivElement>("#neuronplot"), {  // a neuron's weights dragged or stepped: its view, camera and input kept
    load: async (name) => {
      app.gen!.forget();
      const { input, heads } = app.state, step = app.walk!.at ?? undefined;
      app.state = { model: name, input, heads, step };
      await loadView(undefined, { here: true });
      if (step) await app.walk!.open(step);  // (the walkthrough's numbers follow the weights)
    },
    run: (text) => {  // a point clicked: the input, run
      $<HTMLInputElement>("#prompt").value = text;
      void runInput(text);
    },
  });
  // An export holds a few inputs: each is a button, the one shown marked.
  const saved = $<HTMLSpanElement>("#saved");
  void savedInputs().then((inputs) => {
    if (!inputs.length) return;
    saved.replaceChildren("saved inputs:", ...inputs.map((t) => Object.assign(document.createElement("button"), {
      type: "button", textContent: t, title: `show ${t}`, value: t })));
    saved.hidden = false;
    markSaved();
  });
  saved.addEventListener("click", (e) => {
    const t = (e.target as HTMLElement).closest("button")?.value;
    if (t === undefined) return;
    $<HTMLInputElement>("#prompt").value = t;
    void runInput(t);
  });
  $<HTMLFormElement>("#run").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void runInput($<HTMLInputElement>("#prompt").value);
  });
  window.addEventListener("message", (e) => {  // a notebook widget's host: Python set widget.text
    if (embedded() && e.source === window.parent && e.data?.llmviz === "input") void runInput(String(e.data.text));
  });
  app.insights = new Insights($<HTMLElement>("#insights"), {
    model: () => app.state.model ?? app.models[0].name,
    text: () => app.state.input ?? "",
    flyTo: (tensor, head) => {  // (a phone's panel covers the view: it steps aside, one panel at a time)
      if (narrow()) app.insights!.close();
      scene.flyToRegion({ tensor, ranges: { head: [head, head] }, role: "target" });
    },
    flyToCells: (tensor, ranges) => {
      if (narrow()) app.insights!.close();
      scene.flyToRegion({ tensor, ranges, role: "target" });
    },
    tokens: () => app.placed[0]?.data.info.tokens ?? null,
    load: (text) => {
      const { model, heads, insights, branch } = app.state;
      app.state = { model, input: text, heads, insights, branch };
      return loadView();
    },
    focused: (ids) => {
      app.state.branch = ids.length ? ids : undefined;
      writeUrl();
    },
    reducedMotion: () => matchMedia("(prefers-reduced-motion: reduce)").matches,
    shown: (tab) => {
      app.state.insights = tab ?? undefined;
      if (tab !== "branches") app.state.branch = undefined;
      writeUrl();
    },
  });
  $<HTMLButtonElement>("#ins-toggle").addEventListener("click", () => {
    if (app.insights!.active) app.insights!.close();
    else void app.insights!.open();
  });
  app.walk = new Walkthrough($<HTMLElement>("#walk"), {
    model: () => app.state.model ?? app.models[0].name,
    input: () => app.state.input,
    load: (text) => {
      app.state = { model: app.state.model, input: text, heads: app.state.heads, step: app.state.step };
      return loadView();
    },
    moved: (at, push) => {
      app.state.step = at ?? undefined;
      writeUrl(push);
      tellHost("step", at ? at.join(".") : "");
      path?.walked(app.walk?.subject?.model ?? app.state.model ?? "", at);
    },
    elsewhere: () => app.state.view === "scale" || app.state.past !== undefined,
    show: (want, model, input) => {
      const s = app.state, step = s.step;
      // whether the view on screen is this model's pass of this text (on a KV cache of `past` positions)
      let grads = want?.kind === "gradients";  // (a step on the loss's gradients: the pass shown by them)
      if (grads && exported()) {  // (an export holds no backward pass: the step is told on the values)
        notify("The gradients are not part of this export (run llmviz serve to see them): this step's view shows the " +
          "values instead", "walk");
        grads = false;
      }
      const shows = (text: string | undefined, past?: number) => s.view !== "scale" && s.model === model && s.input === text &&
        s.past === past && !s.edits?.length && (s.show === "gradients") === grads;
      if (want?.kind === "scale") {
        if (!scaleModels().length) {  // (an export, or a server of other models: the step is told on the model's view)
          notify(exported() ? "The scale view is not part of this export (run llmviz serve to fly through it): the table " +
            "and the models side by side are not shown here" : "This server has no scale view (it needs nano-gpt and the " +
            "presets, which llmviz serve serves unless --model names others): the models side by side are not shown here", "walk");
          return null;
        }
        if (s.view === "scale") return null;
        app.gen!.forget();
        app.state = { view: "scale", step };
        return loadView();
      }
      if (want?.kind === "generated" ? shows(want.text, want.past) : shows(input ?? undefined)) return null;
      return (async () => {
        app.gen!.forget();
        if (!shows(input ?? undefined)) {
          app.state = { model, input: input ?? undefined, heads: s.heads, step, insights: s.insights, ...(grads ? { show: "gradients" } : {}) };
          await loadView();  // the walkthrough's own input first: the generator's prompt
        }
        if (want?.kind !== "generated") return;
        $<HTMLInputElement>("#gen-kv").checked = true;  // its view: the step on the KV cache
        if (!(await app.gen!.step(performance.now(), { temperature: 0 })) && app.state.input !== want.text) {
          throw new Error($<HTMLDivElement>("#error").textContent || "the generator could not take its step");
        }
      })();
    },
    insights: (tab) => {
      if (tab !== "map") closeEmbedMap();
      if (tab === "map") app.insights!.close();  // (the embedding map: one panel on the right at a time)
      if (tab === "map") void embedMap().open(app.state.model ?? app.models[0].name);
      else if (tab) void app.insights!.open(tab);
      else app.insights!.close();
    },
    cache: () => app.gen!.cache,
    intervene: (edits) => (edits ? setEdits(edits) : removeEdit(null)),
    edits: () => app.state.edits ?? [],
  });
  $<HTMLButtonElement>("#walk-toggle").addEventListener("click", () => {
    if (app.walk!.active) app.walk!.close();
    else void app.walk!.open();
  });
  window.addEventListener("popstate", () => {  // the back button: the walkthrough's previous step, or closed
    const step = parseState(location.search).step;
    if (step) void app.walk!.open(step);
    else if (app.walk!.active) app.walk!.close();
  });
  app.gen = new Generator($<HTMLDivElement>("#gen"), {
    model: () => app.state.model ?? app.models[0].name,
    input: () => $<HTMLInputElement>("#prompt").value,
    load: (text, past, camera) => {
      const { model, heads, step, insights } = app.state;  // (the walkthrough's step may be what took it)
      app.state = { model, input: text, heads, past, camera: camera as ViewState["camera"], step, insights };
      return loadView();
    },
    camera: () => [...view.camera.position.toArray(), ...view.controls.target.toArray()],
    error: showError,
    tokenRect: () => document.querySelector(".label.block.kind-input")?.getBoundingClientRect() ?? null,
  });
  app.gen.render();
  const clearOfPanel = () => {  // from the start view: the whole model, clear of the panel, every weight block in sight
    if (!view.atHome() || !app.placed.length || narrow()) return;  // (a phone: the panel sheet covers the top)
    view.flyTo(...view.framing(withLayerTitles(everything(), screen()), 1.05, undefined, freeRect(["#train", "#digitpad"])), 0);
  };
  const training = new Training($<HTMLDivElement>("#train"), {  // the view behind shows a snapshot, the camera kept
    show: async (name, keep) => {  // (not keep: another model's input and place: its own example, framed anew)
      app.gen!.forget();
      const { input, heads } = app.state;
      app.state = { model: name, input: keep ? input : undefined, heads };
      if (keep) return loadView(undefined, { here: true });
      await loadView(undefined, { home: true });
      clearOfPanel();
    },
    current: () => app.state.model ?? app.models[0].name,
    opened: clearOfPanel,
  });
  $<HTMLButtonElement>("#train-toggle").hidden = !!exported() || embedded();  // (training runs in llmviz serve)
  $<HTMLButtonElement>("#train-toggle").addEventListener("click", () => {
    if (training.active) return training.close();
    if (app.walk!.active) app.walk!.close();
    path?.close();  // (the learning path's panel shares its place)
    void training.open();
  });
  const cmpToggle = $<HTMLButtonElement>("#cmp-toggle");
  cmpToggle.hidden = !!exported();  // (two passes computed by the server)
  compare = new Compare($<HTMLDivElement>("#compare"), cmpToggle, {
    model: () => app.state.model ?? app.models[0].name,
    formats: () => precisionOf(app.models, app.state.model ?? app.models[0].name)?.model.precisions ?? [],
    input: () => app.state.input,
    show: (scene) => {  // a comparison's scene (the other format's pass), or the plain pass again; the camera stays
      delete app.state.edits;
      delete app.state.show;
      delete app.state.past;
      return loadView(scene, { here: true });
    },
    opened: () => {
      if (training.active) training.close();
      onlyPanel("#compare");
    },
  });
  cmpToggle.addEventListener("click", () => (compare!.active ? compare!.close() : void compare!.open()));
  escapeCloses(() => !!compare?.active, () => compare!.close());
  $<HTMLButtonElement>("#gen-toggle").addEventListener("click", () => {
    const gen = $<HTMLDivElement>("#gen");
    gen.hidden = !gen.hidden;
    if (!gen.hidden) onlyPanel("#gen");
  });
  escapeCloses(() => !!app.gen?.open, () => app.gen!.close());  // (the generation panel first)
  const pathToggle = $<HTMLButtonElement>("#path-toggle");
  pathToggle.hidden = !!exported() || embedded();  // (its steps are other models, opened by a server)
  offerPath(!pathToggle.hidden);
  if (!pathToggle.hidden) {
    path = new LearningPath($<HTMLDivElement>("#path"), $<HTMLDivElement>("#walk-next"), {
      current: () => (app.state.view === "scale" ? null : app.state.model ?? app.models[0].name),
      open: async (model, at) => {  // the step's model, and its walkthrough at its first step
        deselect();
        app.gen!.forget();
        if (!at && app.walk!.active) app.walk!.close();
        app.state = { model, heads: app.state.heads };
        await loadView();
        if (at && app.state.model === model) await app.walk!.open(at);
      },
      opened: () => {
        if (training.active) training.close();
        $<HTMLDivElement>("#intro").hidden = true;
        onlyPanel("#path");
      },
    });
    pathToggle.addEventListener("click", () => (path!.active ? path!.close() : void path!.open()));
    escapeCloses(() => !!path?.active, () => path!.close());
  }
  $<HTMLButtonElement>("#scale").addEventListener("click", () => {
    app.state = app.state.view === "scale" ? { model: "nano-gpt" } : { view: "scale" };
    void loadView();
  });
  $<HTMLButtonElement>("#heads").addEventListener("click", () => {
    const { model, input, view: v, past, camera } = app.state;
    // The camera stays on what it looks at: Home, or the section it frames (re-framed, as stacking changes the
    // layout), or, looking at more than one section, where it is.
    const at = view.controls.target, d = view.camera.position.distanceTo(at);
    const h = 2 * d * Math.tan(THREE.MathUtils.degToRad(view.camera.fov) / 2);
    const p = app.placed.length === 1 ? app.placed[0] : null;
    const key = p ? sectionAt(p.data.info.sections, p.offsetX, at.x, at.y, h * view.camera.aspect, h) : null;
    const keep: Keep = view.atHome() ? { home: true } : key ? { section: key } : null;
    app.state = { model, input, view: v, past, camera, heads: app.state.heads === "stack" ? undefined : "stack" };
    void loadView(undefined, keep);
  });
  // Home, the whole model, a jump on the map or to a model in the scale view change the view: a block description
  // pinned in the old one would stand over the readout, so it goes (a new model or input: updatePanels).
  const leave = () => deselect() && writeUrl();
  $<HTMLButtonElement>("#home").addEventListener("click", () => {
    leave();
    view.goHome();
  });
  $<HTMLButtonElement>("#fit").addEventListener("click", () => {
    leave();
    if (app.placed.length) view.flyTo(...scene.wholeFraming());
  });
  $<HTMLButtonElement>("#faceon").addEventListener("click", () => view.flyTo(...view.faceOn()));
  $<HTMLSelectElement>("#precision").addEventListener("change", async (e) => {  // the weights stored in another format
    const { input, heads } = app.state, step = app.walk!.at ?? undefined;  // (the camera, the input and the step stay)
    app.gen!.forget();
    app.state = { model: (e.target as HTMLSelectElement).value, input, heads, step };
    await loadView(undefined, { here: true });
    if (step) await app.walk!.open(step);  // (the walkthrough's numbers follow the weights)
  });
  $<HTMLButtonElement>("#qerr-toggle").addEventListener("click", () => {  // a quantized model's weights: values ⇄ errors
    quantView.error = !quantView.error;
    void loadView(undefined, { here: true });
  });
  $<HTMLButtonElement>("#grad-toggle").addEventListener("click", () => {  // values ⇄ the loss's gradients
    app.state.show = app.state.show === "gradients" ? undefined : "gradients";
    void loadView(undefined, { here: true });
  });
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
    leave();
    const box = key === "*" ? null : sectionBox(p, key);
    if (box) view.flyTo(...view.framing(box, 1.1, undefined, freeRect()));
    else if (key === "*") view.flyTo(...scene.wholeFraming());
    if (narrow()) $<HTMLDivElement>("#map").hidden = true;
  });
  $<HTMLDivElement>("#intro").addEventListener("click", (e) => {
    const action = (e.target as HTMLElement).closest<HTMLElement>("[data-intro]")?.dataset.intro;
    if (!action) return;
    if (action === "model") {  // another model: the selector switches (the card stays, told for that model)
      select_.value = (e.target as HTMLElement).closest<HTMLElement>("[data-model]")!.dataset.model!;
      select_.dispatchEvent(new Event("change"));
      return;
    }
    dismissIntro();
    $<HTMLDivElement>("#intro").hidden = true;
    if (action === "all") leave();
    if (action === "all" && app.placed.length) view.flyTo(...scene.wholeFraming());
    if (action === "walk") void app.walk!.open(null, true);
    if (action === "path") void path?.open();
  });
  $<HTMLDivElement>("#scalebars").addEventListener("click", (e) => {
    const i = (e.target as HTMLElement).closest<HTMLElement>("[data-model]")?.dataset.model;
    if (i === undefined) return;
    const to = scene.framingOfModel(Number(i));  // the model whole with its title above it, clear of the table
    leave();
    if (to) view.flyTo(...to, 1200);
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
  // A right-click on a cell (not the end of a right-drag, which rotates): the edit menu.
  const editHost: EditHost = {
    add: (edit) => void addEdit(edit),
    remove: (i) => void removeEdit(i),
    colourBy: (what) => {
      app.state.show = what === "values" ? "values" : undefined;
      showEdits();
      writeUrl();
    },
    input: () => app.state.input ?? "",
  };
  const menu = new EditMenu($<HTMLDivElement>("#edit-menu"), editHost);
  wireEditsPanel($<HTMLDivElement>("#edits"), editHost);
  // (on release, not on the contextmenu event, which some systems send as the button goes down: a right-drag rotates)
  const openMenu = (x: number, y: number) => {
    const hit = pickAt(x, y);
    if (!hit) return;
    const info = hit.placed.data.info, b = info.blocks[hit.block];
    unpin();
    menu.show(info, b, cellRegion(b, hit.slab, hit.col, hit.row), x, y, editBlocked(info, b));
  };
  let rightDown = { x: 0, y: 0 }, touched = false;
  canvas.addEventListener("pointerdown", (e) => {
    touched = e.pointerType === "touch";
    if (e.button === 2) rightDown = { x: e.clientX, y: e.clientY };
    if (menu.open) menu.close();
  });
  canvas.addEventListener("pointerup", (e) => {
    if (e.button === 2 && Math.hypot(e.clientX - rightDown.x, e.clientY - rightDown.y) <= 4) openMenu(e.clientX, e.clientY);
  });
  canvas.addEventListener("contextmenu", (e) => {
    e.preventDefault();
    if (touched) openMenu(e.clientX, e.clientY);  // a long press on a touch screen
  });
  window.addEventListener("keydown", (ev) => {  // Ctrl+Z (⌘Z): undo the last edit
    if (!(ev.ctrlKey || ev.metaKey) || ev.key.toLowerCase() !== "z" || !app.state.edits?.length) return;
    if ((ev.target as HTMLElement).closest("input, select, textarea")) return;
    ev.preventDefault();
    void removeEdit(-1);
  });
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
  view.scene.add(app.highlights.mesh, app.editMarks.mesh);
  canvas.addEventListener("dblclick", (e) => {
    const hit = pickAt(e.clientX, e.clientY);
    unpin();  // the double-click's clicks pinned a tooltip: a fly-to is not a pin
    writeUrl();
    if (!hit) return;
    const box = hit.placed.built.boxes[hit.block];
    view.flyTo(...view.framing(box, 1.6, undefined, freeRect()));
  });
  $<HTMLDivElement>("#legend").innerHTML = legendHtml(undefined);
  const known = !s0.model || app.models.some((m) => m.name === s0.model);
  const { step, insights, branch } = s0;
  app.pulse = new Pulse(scene.pulseAt, () => matchMedia("(prefers-reduced-motion: reduce)").matches);
  // A first visit to a plain link opens on the whole model, as a solid, and the pulse runs through it once.
  const first = !introDismissed() && !step && !insights && !s0.block && !s0.cell && !s0.camera && s0.view !== "scale";
  await loadView(known ? early : undefined);
  if (first && app.placed.length === 1) {
    view.flyTo(...scene.wholeFraming(), 0);
    app.pulse.start();
  }
  if (step && app.placed.length) await app.walk.open(step);  // a link into the walkthrough
  if (insights && app.placed.length) await app.insights.open(insights, branch ?? []);
}

// The app hands itself to whatever listens (the test hooks, a page that embeds the view).
window.dispatchEvent(new CustomEvent("llmviz:app", { detail: { app, scene } }));
void start();
