// App state: what is loaded and shown, what is selected and pinned, and the page's small shared helpers.
import { Highlights } from "./highlight";
import type { ModelInfo } from "./api";
import type { Placed } from "./framing";
import type { Generator } from "./generate";
import type { LabelLayer } from "./labels";
import type { Explanation } from "./tooltip";
import { embedded } from "./transport";
import { formatState, parseState, type ViewState } from "./urlstate";
import type { View } from "./view";
import type { Walkthrough } from "./walkthrough";
import type { Insights } from "./insights";
import type { Pulse } from "./pulse";

export const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;

export const app = {
  view: null as View | null,
  labels: null as LabelLayer | null,
  models: [] as ModelInfo[],
  placed: [] as Placed[],
  // Embedded in a notebook widget, the page's URL is the host's: the widget hands in its own.
  state: parseState((window as { __llmvizSearch?: string }).__llmvizSearch ?? location.search) as ViewState,
  selected: null as { placed: Placed; block: number } | null,
  firstFrameMs: null as number | null,
  loadSeq: 0,
  highlights: new Highlights(),
  editMarks: new Highlights(),  // where an edited pass's edits were made (outlined while it is shown)
  hover: { seq: 0, key: "", pinned: null as CellRef | null, lastMs: null as number | null, pendingEvent: null as PointerEvent | null,
    lit: false /* the highlights are a hovered cell's */ },
  explained: new Map<string, Explanation>(),
  gen: null as Generator | null,
  walk: null as Walkthrough | null,
  insights: null as Insights | null,
  pulse: null as Pulse | null,
};

export interface CellRef { placed: Placed; block: number; slab: number; col: number; row: number }

export function showError(message: string) {
  const box = $<HTMLDivElement>("#error");
  box.textContent = message;
  box.hidden = message === "";
}

/** A narrow screen (a phone): one panel at a time. */
export function narrow(): boolean {
  return window.innerWidth <= 640;
}

/** The URL follows the view: model, input, camera, selected block and pinned cell. */
export function writeUrl(push = false) {
  const v = app.view!;
  const s = app.state;
  // In the walkthrough the step decides the camera: a link names the step, not a camera.
  s.camera = s.step ? undefined : [...v.camera.position.toArray(), ...v.controls.target.toArray()] as ViewState["camera"];
  s.block = app.selected ? app.selected.placed.data.info.blocks[app.selected.block].tensor : undefined;
  const c = app.hover.pinned;
  s.cell = c ? { tensor: c.placed.data.info.blocks[c.block].tensor, slab: c.slab, col: c.col, row: c.row } : undefined;
  if (embedded()) return;  // a widget's page has no address of its own
  // A walkthrough step names its model and input: the view it is on (the scale view, a generation step) comes with it.
  const walk = s.step && app.walk?.subject;
  const url = formatState(walk ? { model: walk.model, input: walk.input ?? undefined, heads: s.heads, step: s.step, insights: s.insights } : s)
    || location.pathname;
  if (push && url !== location.search) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}
