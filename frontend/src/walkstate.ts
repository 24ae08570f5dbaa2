// The walkthrough's timeline: what the view shows at (step, time within the step), as a pure function. The
// player (walkthrough.ts) applies it to the scene; nothing here touches the page, so scrubbing back, stepping
// forward or arriving by a link all give the same picture.
import type { components } from "./api-schema";
import type { Explanation, Region } from "./tooltip";

type Schemas = components["schemas"];
export type SoftmaxEntry = Schemas["SoftmaxEntry"];
export type TemperatureAction = Schemas["TemperatureAction"];

/** What a step does to the view, as the server sends it (generated types: api-schema.ts); a cell it explains (a dot
 * or a tooltip) gets its explanation here, computed by the page (explain.ts) once the step's view is shown. */
type Explained<A> = A extends { type: "dot" | "tooltip" } ? A & { explain?: Explanation } : A;
export type WalkAction = Explained<Schemas["WalkStep"]["actions"][number]>;

/** The view a step is shown on: the input's pass (null); generation's next step, `text` = the input and its
 * prediction, computed on a KV cache of the input's `past` positions; or the scale view. */
export type WalkView = Schemas["WalkStep"]["view"];

/** Whether two steps are shown on the same view (the same blocks are on screen). */
export function sameView(a: WalkView | undefined, b: WalkView | undefined): boolean {
  return (a?.kind ?? null) === (b?.kind ?? null) && (a?.kind !== "generated" || (b?.kind === "generated" && a.text === b.text));
}

export type WalkStep = Omit<Schemas["WalkStep"], "actions"> & { actions: WalkAction[] };
export type WalkChapter = Omit<Schemas["WalkChapter"], "steps"> & { steps: WalkStep[] };
export type Walk = Omit<Schemas["Walk"], "chapters"> & { chapters: WalkChapter[] };

/** One step of the walkthrough in reading order, with where it sits. */
export interface Place { chapter: number; step: number; c: WalkChapter; s: WalkStep }

export const PAUSE = 0.6; // seconds of reading before the first action
export const SLOT = 1.0;  // seconds each action takes

export function places(w: Walk): Place[] {
  return w.chapters.flatMap((c) => c.steps.map((s, i) => ({ chapter: c.number, step: i + 1, c, s })));
}

/** Where chapter.step is in reading order: an exact match, else the chapter's first step, else the first. */
export function indexOf(all: Place[], chapter: number, step: number): number {
  const exact = all.findIndex((p) => p.chapter === chapter && p.step === step);
  if (exact >= 0) return exact;
  const first = all.findIndex((p) => p.chapter >= chapter);
  return Math.max(0, first);
}

/** What a link to chapter.step that is not in the walkthrough should say ("" when it is there): what was not found,
 * what there is instead, and the step shown (the one indexOf picks). */
export function missingStep(all: Place[], chapter: number, step: number): string {
  if (!all.length || all.some((p) => p.chapter === chapter && p.step === step)) return "";
  const at = all[indexOf(all, chapter, step)];
  const showing = `Showing ${at.chapter}.${at.step}.`;
  const steps = all.filter((p) => p.chapter === chapter).length;
  if (steps) return `There is no step ${chapter}.${step}: chapter ${chapter} has ${steps} step${steps === 1 ? "" : "s"}. ${showing}`;
  const numbers = [...new Set(all.map((p) => p.chapter))];
  const runs: string[] = [];  // each run of consecutive numbers as "a to b" ("1 to 14 and 19")
  for (let i = 0; i < numbers.length;) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j] + 1) j++;
    runs.push(j > i ? `${numbers[i]} to ${numbers[j]}` : String(numbers[i]));
    i = j + 1;
  }
  const list = numbers.length === 1 ? `only chapter ${numbers[0]}`
    : `chapters ${runs.length === 1 ? runs[0] : `${runs.slice(0, -1).join(", ")} and ${runs[runs.length - 1]}`}`;
  return `There is no chapter ${chapter}: this walkthrough has ${list}. ${showing}`;
}

/** How far the timeline moves in one animation frame: the real time since the last frame (times the speed), so a
 * slow frame (a software GPU draws a few a second) does not stretch the step beyond its duration; at most a second,
 * so a page hidden for a while does not jump to the end. */
export function advance(lastMs: number, nowMs: number, speed: number): number {
  return Math.min(1, Math.max(0, (nowMs - lastMs) / 1000)) * speed;
}

export function duration(s: WalkStep): number {
  return PAUSE + Math.max(1, s.actions.length) * SLOT;
}

const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

/** Smooth in and out: quick in the middle, gentle at both ends. */
export function ease(x: number): number {
  const t = clamp01(x);
  return t < 0.5 ? 2 * t * t : 1 - (-2 * t + 2) ** 2 / 2;
}

/** How far action k of a step is at time t: 0 before it starts, 1 once done. */
export function progress(t: number, k: number): number {
  return clamp01((t - PAUSE - k * SLOT) / SLOT);
}

/** The step whose @frame holds at the end of step `index`: itself, else the last one before it with a @frame, on
 * the same view (another view's blocks are not on screen). */
function framingStep(all: Place[], index: number): number | null {
  const view = all[index].s.view;
  for (let i = index; i >= 0 && sameView(all[i].s.view, view); i--) if (all[i].s.actions.some((a) => a.type === "frame")) return i;
  return null;
}

/** The tensors framed at the end of step `index`: its own @frame, else the last one before it (null: none yet). */
export function framedAt(all: Place[], index: number): string[] | null {
  const i = framingStep(all, index);
  const f = i === null ? undefined : [...all[i].s.actions].reverse().find((a) => a.type === "frame");
  return f && f.type === "frame" ? f.tensors : null;
}

/** The framing step adds up a dot product: its few lit cells matter more than the blocks around them (frame close). */
export function closeUp(all: Place[], index: number): boolean {
  const i = framingStep(all, index);
  return i !== null && all[i].s.actions.some((a) => a.type === "dot");
}

/** The cells the framing step lights by its end (the camera keeps them in view beside the framed blocks). */
export function framedRegionsAt(all: Place[], index: number): Region[] {
  const i = framingStep(all, index);
  return i === null ? [] : visualAt(all, i, duration(all[i].s), true, true).regions;
}

export interface Card { kind: "dot" | "softmax" | "code" | "mask" | "add" | "guess" | "temperature" | "generate" | "edit"; action: WalkAction; p: number }

export interface Visual {
  camera: { from: string[] | null; to: string[] | null; p: number };
  regions: Region[];
  reveal: { tensor: string; along: "rows" | "cols" | "mask"; fraction: number } | null;
  cards: Card[];
  tooltip: { cell: Region; explain: Explanation } | null;
  travel: { token: string; from: Region; to: Region; p: number } | null;
  /** A guess is asked and not yet answered: nothing on screen may give its answer away. */
  guessing: boolean;
  /** A lookup and the weight it copies a row of, drawn on one colour scale in one palette (null: each its own). */
  sameScale: { weight: string; copy: string } | null;
  /** The scale view's camera: flying from one model to another (from null: from where it is). */
  fly: { from: string | null; to: string; p: number } | null;
  /** The scale view's table: the models the camera reached so far, then the step's @table (null: none). */
  table: string[] | null;
  /** The Across-layers panel's tab the step opens (null: the panel is not the step's). */
  open: "lens" | "attention" | "map" | null;  // (map: the embedding map)
}

/** The lookups: an activation that is a row of a weight, picked by the token (or position) at each position. */
export const LOOKUPS: Record<string, string> = { hook_embed: "embed.W_E", hook_pos_embed: "pos_embed.W_pos" };

/** The step shows a lookup as a copy (it lights the weight's row and the activation together): draw both alike. */
export function lookupOf(step: WalkStep): { weight: string; copy: string } | null {
  for (const a of step.actions) {
    if (a.type !== "highlight") continue;
    const lit = new Set(a.regions.map((r) => r.tensor));
    for (const [copy, weight] of Object.entries(LOOKUPS)) if (lit.has(copy) && lit.has(weight)) return { weight, copy };
  }
  return null;
}

const lit = (r: Region): Region => ({ ...r, role: "input" });  // filled: what a sum reads, or a guess's row, hidden
const outlined = (r: Region): Region => ({ ...r, role: "target" });  // framed: the numbers stay readable
const whole = (tensor: string, role: string): Region => ({ tensor, ranges: {}, role });
const covered = (r: Region): Region => ({ ...r, role: "cover" });  // opaque: a guess's row, its answer unseen

/** The one cell of a row at index i along `axis`, outlined: a guess's answer. */
export function cellOf(row: Region, axis: string, i: number): Region {
  return { tensor: row.tensor, ranges: { ...row.ranges, [axis]: [i, i] }, role: "target" };
}

/** Everything the view shows at time t of step `index`. With reduced motion, each action is already done.
 * answered: the learner has made this step's guess (until then, the guess's row is covered). */
export function visualAt(all: Place[], index: number, t: number, reduced = false, answered = false): Visual {
  const step = all[index].s;
  const before = index > 0 && sameView(all[index - 1].s.view, step.view);  // (from another view: no flight)
  const v: Visual = { camera: { from: before ? framedAt(all, index - 1) : null, to: framedAt(all, index), p: 1 },
    regions: [], reveal: null, cards: [], tooltip: null, travel: null, guessing: false, sameScale: lookupOf(step),
    fly: null, table: null, open: null };
  // The scale view's camera starts where the step before left it (its last @model), on the same view.
  const lastModel = before ? [...all[index - 1].s.actions].reverse().find((a) => a.type === "model") : undefined;
  let flewFrom: string | null = lastModel?.type === "model" ? lastModel.name : null;
  step.actions.forEach((a, k) => {
    const p = reduced ? 1 : progress(t, k);
    if (a.type === "frame") {
      v.camera.p = ease(p);
      return;
    }
    if (a.type === "guess") {  // from the step's first frame: the row covered until the learner picks, then lit
      if (answered) v.regions.push(lit(a.row), cellOf(a.row, a.axis, a.answer));  // and its largest cell outlined
      else v.regions.push(covered(a.row), ...(a.hides ?? []).map(covered));
      v.guessing ||= !answered;
    }
    if (a.type === "model" && p <= 0 && !v.fly) v.fly = { from: flewFrom, to: a.name, p: 0 };  // (at its start: still there)
    if (p <= 0) return;
    switch (a.type) {
      case "highlight":
        v.regions.push(...a.regions.map((r) => (r.role === "kept" ? r : outlined(r))));  // (@light: kept, outlined)
        break;
      case "reveal":
        v.reveal = { tensor: a.tensor, along: a.along, fraction: p };
        break;
      case "mask":
        v.reveal = { tensor: a.tensor, along: "mask", fraction: p };
        v.cards.push({ kind: "mask", action: a, p });
        break;
      case "add":
        v.regions.push(...a.inputs.map((x) => whole(x, "input")));
        if (p >= 0.5) v.regions.push(whole(a.tensor, "target"));
        v.cards.push({ kind: "add", action: a, p });
        break;
      case "dot":
        if (a.explain) v.regions.push(...a.explain.sources, a.explain.target);
        v.cards.push({ kind: "dot", action: a, p });
        break;
      case "softmax":  // the row of scores it reads lit, the row it makes outlined
        v.regions.push({ ...a.row, tensor: a.of, role: "input" }, { ...a.row, role: "target" });
        v.cards.push({ kind: "softmax", action: a, p });
        break;
      case "tooltip":
        if (p >= 0.5 && a.explain) v.tooltip = { cell: a.cell, explain: a.explain };
        break;
      case "travel":
        v.travel = { token: a.token, from: a.from, to: a.to, p: ease(p) };
        break;
      case "code":
        v.cards.push({ kind: "code", action: a, p });
        break;
      case "guess":
        v.cards.push({ kind: "guess", action: a, p });
        break;
      case "temperature":  // the row it reads lit, the row it redraws outlined
        v.regions.push({ ...a.row, tensor: a.of, role: "input" }, { ...a.row, role: "target" });
        v.cards.push({ kind: "temperature", action: a, p });
        break;
      case "generate":
        v.cards.push({ kind: "generate", action: a, p });
        break;
      case "edit":  // a button that makes the step's edits to the view's pass
        v.cards.push({ kind: "edit", action: a, p });
        break;
      case "open":
        v.open = a.tab;
        break;
      case "model":  // one flight per model; its row joins the table as the camera arrives
        v.fly = { from: flewFrom, to: a.name, p: ease(p) };
        flewFrom = a.name;
        v.table = [...(v.table ?? []).filter((m) => m !== a.name), a.name];
        break;
      case "table":
        v.table = [...(v.table ?? []).filter((m) => !a.models.includes(m)), ...a.models];
        break;
    }
  });
  if (!step.actions.some((a) => a.type === "frame")) v.camera.from = v.camera.to;  // no flight: the camera stays
  // What the step is about is its subject: a halo around its cells (a hovered cell keeps its thin outline).
  v.regions = v.regions.map((r) => (r.role === "target" ? { ...r, role: "subject" } : r));
  return v;
}

/** How many of a dot product's terms are shown at progress p, largest first (then the rest, then the result). */
export function termsShown(n: number, p: number): number {
  return Math.min(n, Math.floor(p * (n + 1)));
}

/** The softmax's phase at progress p: the scores and their max, then exp(x − max), then the sum, then ÷ sum. */
export function softmaxPhase(p: number): 0 | 1 | 2 | 3 {
  return p < 0.25 ? 0 : p < 0.5 ? 1 : p < 0.75 ? 2 : 3;
}

/** The tensors a step is about at this moment: those it frames, lights, reveals or explains. Their labels show and
 * the camera keeps them in view. */
export function subjectsOf(v: Visual): string[] {
  const out = new Set<string>(v.camera.to ?? []);
  for (const r of v.regions) out.add(r.tensor);
  if (v.reveal) out.add(v.reveal.tensor);
  if (v.tooltip) out.add(v.tooltip.cell.tensor);
  return [...out];
}
