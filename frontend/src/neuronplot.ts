// The neuron's plot (the learning path's first step), beside the scene of a model whose config.arch is "neuron": the
// task's points in the plane, coloured by class, and the neuron's decision line W[0] x₁ + W[1] x₂ + b = 0 with W as an
// arrow toward class 1's side. Three sliders set W[0], W[1] and b: the line moves at once (its geometry is drawn from
// the sliders), and the view loads the learner's own neuron by its name (`neuron~W0,W1,b`), whose numbers, loss and
// accuracy the server computes (GET /api/models/{name}/decision). Step loads the weights one step of gradient descent
// makes (the server's `next`); Train keeps stepping. Clicking in the plot makes that point the input.
import { check } from "./api";
import type { components } from "./api-schema";
import { formatG } from "./pyformat";
import type { SceneInfo } from "./scenedata";
import { request } from "./transport";

export type Decision = components["schemas"]["Decision"];
type Pt = [number, number];

const SET = "~";  // a learner's neuron: "<model>~<W[0]>,<W[1]>,<b>" (views/decision.py's SET)
const SIZE = 320;  // the plot's side, in SVG units
const ARROW = 0.9;  // W's arrow: its length in the plot's units (it shows W's direction)
const MAX_STEPS = 200;  // Train stops after this many steps,
const MIN_FALL = 1e-4;  // or when a step makes the loss fall by less than this
export const CLASS_COLOURS = ["#1c7ed6", "#e8590c"];  // class 0, class 1

// ---- pure functions (frontend/test/neuronplot.test.ts) ----

/** Whether a model name is a learner's neuron (`neuron~1.5,-0.8,0.2`). */
export function isLearnerName(name: string | undefined): boolean {
  return !!name?.includes(SET);
}

/** The name of `base` with these weights and bias, each as Python's format(v, ".4g") writes it (views/decision.py's
 * weights_name): the name the server gives the same neuron. */
export function learnerName(base: string, w: number[], b: number): string {
  return `${base}${SET}${[...w, b].map((v) => formatG(v === 0 ? 0 : v, 4)).join(",")}`;
}

/** A point of the plane (x₁, x₂) in the plot's units: x₁ rightwards, x₂ upwards, ±extent at the edges. */
export function toPlot([x, y]: Pt, extent: number, size = SIZE): Pt {
  return [((x + extent) / (2 * extent)) * size, ((extent - y) / (2 * extent)) * size];
}

/** The point of the plane under a plot position (the inverse of toPlot). */
export function fromPlot([px, py]: Pt, extent: number, size = SIZE): Pt {
  return [(px / size) * 2 * extent - extent, extent - (py / size) * 2 * extent];
}

/** The input text of a point: its two coordinates rounded to 2 decimals ("1.2 -0.35"). */
export function pointText([x, y]: Pt): string {
  const r = (v: number) => String(Math.round(v * 100) / 100 || 0);
  return `${r(x)} ${r(y)}`;
}

/** The point an input text names (two numbers, spaces or a comma between), or null. */
export function parsePoint(text: string | null | undefined): Pt | null {
  const parts = (text ?? "").replace(/,/g, " ").trim().split(/\s+/).map(Number);
  return parts.length === 2 && parts.every(Number.isFinite) ? [parts[0], parts[1]] : null;
}

/** The square [−e, e]² cut by the line w·p + b = 0: the part where w·p + b ≥ 0 (sign 1) or ≤ 0 (sign −1), as a
 * polygon (empty when the line leaves none of the square to that side). */
export function halfPlane(w: number[], b: number, extent: number, sign: 1 | -1): Pt[] {
  const e = extent, square: Pt[] = [[-e, -e], [e, -e], [e, e], [-e, e]];
  const f = (p: Pt) => sign * (w[0] * p[0] + w[1] * p[1] + b);
  const out: Pt[] = [];
  square.forEach((p, i) => {
    const q = square[(i + 1) % 4], fp = f(p), fq = f(q);
    if (fp >= 0) out.push(p);
    if ((fp >= 0) !== (fq >= 0)) {
      const t = fp / (fp - fq);
      out.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
    }
  });
  return out;
}

/** Where the line w·p + b = 0 crosses the square [−e, e]²: its two ends, or null if it misses the square (or W = 0). */
export function lineSegment(w: number[], b: number, extent: number): [Pt, Pt] | null {
  if (w[0] === 0 && w[1] === 0) return null;
  const e = extent, square: Pt[] = [[-e, -e], [e, -e], [e, e], [-e, e]];
  const f = (p: Pt) => w[0] * p[0] + w[1] * p[1] + b;
  const ends: Pt[] = [];
  square.forEach((p, i) => {
    const q = square[(i + 1) % 4], fp = f(p), fq = f(q);
    if (fp === 0) ends.push(p);
    else if (fp * fq < 0) {
      const t = fp / (fp - fq);
      ends.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
    }
  });
  if (ends.length < 2) return null;
  const far = ends.slice(1).reduce((a, c) => (Math.hypot(c[0] - ends[0][0], c[1] - ends[0][1]) >
    Math.hypot(a[0] - ends[0][0], a[1] - ends[0][1]) ? c : a));
  return Math.hypot(far[0] - ends[0][0], far[1] - ends[0][1]) > 1e-9 ? [ends[0], far] : null;
}

/** W's arrow: from the middle of the line's visible part, ARROW long in W's direction (toward class 1's side). */
export function weightArrow(w: number[], b: number, extent: number): [Pt, Pt] | null {
  const seg = lineSegment(w, b, extent);
  if (!seg) return null;
  const n = Math.hypot(w[0], w[1]);
  const m: Pt = [(seg[0][0] + seg[1][0]) / 2, (seg[0][1] + seg[1][1]) / 2];
  return [m, [m[0] + (ARROW * w[0]) / n, m[1] + (ARROW * w[1]) / n]];
}

/** "loss 0.213 · 57 of 60 points on their side" (the server's loss and accuracy). */
export function scoreText(d: Pick<Decision, "loss" | "accuracy" | "points">): string {
  const n = d.points.length;
  return `loss ${d.loss.toFixed(3)} · ${Math.round(d.accuracy * n)} of ${n} points on their side`;
}

/** A number as the panel writes it: 3 significant digits, a true minus sign. */
export function num(v: number, digits = 3): string {
  return formatG(v, digits).replace(/^-/, "−");
}

/** The formula with the weights: "z = 3.8·x₁ + 1.84·x₂ + 1.01" (a negative one as "− 0.8·x₂"). */
export function formulaText(w: number[], b: number): string {
  const term = (v: number, s: string, first: boolean) =>
    `${first ? (v < 0 ? "−" : "") : v < 0 ? " − " : " + "}${formatG(Math.abs(v), 4)}${s}`;
  return `z = ${term(w[0], "·x₁", true)}${term(w[1], "·x₂", false)}${term(b, "", false)}`;
}

/** Whether Train stops after a step from loss `before` to `after` (its `steps`-th): the loss fell by less than
 * MIN_FALL, or MAX_STEPS were taken. */
export function trainStops(before: number, after: number, steps: number): string {
  if (!(before - after > MIN_FALL)) return `the loss fell by less than ${MIN_FALL} in a step`;
  return steps >= MAX_STEPS ? `${MAX_STEPS} steps` : "";
}

/** The sparkline of the losses so far: an SVG polyline's points in a width × height box (the highest loss at the top). */
export function sparkPoints(losses: number[], width: number, height: number): string {
  if (losses.length < 2) return "";
  const hi = Math.max(...losses), lo = Math.min(...losses), span = hi - lo || 1;
  return losses.map((l, i) => `${((i / (losses.length - 1)) * width).toFixed(1)},${(2 + ((hi - l) / span) * (height - 4)).toFixed(1)}`).join(" ");
}

// ---- the panel ----

export interface PlotHost {
  /** Show this model in the view, keeping the camera and the input. */
  load(name: string): Promise<void>;
  /** Make this text the input and run it (as typing it and Run). */
  run(text: string): void;
}

const decisions = new Map<string, Decision>();  // by the name asked for and the server's name

/** The server's plot of a neuron (asked once per name). */
export async function fetchDecision(name: string): Promise<Decision> {
  const known = decisions.get(name);
  if (known) return known;
  const d = (await (await check(await request(`/api/models/${encodeURIComponent(name)}/decision`))).json()) as Decision;
  decisions.set(name, d);
  decisions.set(d.model, d);
  if (decisions.size > 600) decisions.delete(decisions.keys().next().value as string);
  return d;
}

class NeuronPlot {
  private d: Decision | null = null;  // the server's plot drawn: points, their probabilities, loss, gradient
  private weights: number[] = [0, 0, 0];  // the line drawn: W[0], W[1], b (the sliders' while dragging)
  private input: Pt | null = null;
  private model = "";  // the model the view shows
  private wanted = "";  // the neuron last asked for (a drag, a step)
  private busy: Promise<void> | null = null;
  private failed = false;
  private training = false;  // Train's steps run
  private halt: string | null = null;  // Train asked to end after its step: why ("": a drag or Reset, said nowhere)
  private losses: number[] = [];  // the losses of the steps so far (the sparkline)
  private note = "";

  constructor(private root: HTMLElement, private host: PlotHost) {
    root.innerHTML = `<div class="np-head"><b>One neuron: its decision line</b>
      <button type="button" class="np-fold" aria-expanded="true" title="Hide or show the plot">−</button></div>
      <div class="np-body">
      <div class="np-how">Drag a weight below: the line moves. Click the plot: that point becomes the input.</div>
      <svg class="np-plot" viewBox="0 0 ${SIZE} ${SIZE}" role="img" aria-label="the task's points and the neuron's decision line; click to make a point the input"></svg>
      <div class="np-legend"><span><i style="background:${CLASS_COLOURS[0]}"></i>class 0</span>
        <span><i style="background:${CLASS_COLOURS[1]}"></i>class 1</span>
        <span><i class="np-hollow"></i>on the wrong side</span><span class="np-cross">⊕ the input</span>
        <span class="np-shade">shading: the class the neuron gives each side of the line</span></div>
      <div class="np-formula" title="the neuron's sum: σ(z) is the probability of class 1; the line is where z = 0 (σ = 50 %)"></div>
      <div class="np-sliders">${["W[0]", "W[1]", "b"].map((n, i) => `<label><span class="np-name">${n}</span>
        <input type="range" step="0.01" data-w="${i}" aria-label="${n}"><output></output></label>`).join("")}</div>
      <div class="np-score" aria-live="polite"></div>
      <div class="np-buttons"><button type="button" data-np="step" title="One step of gradient descent on all the points">Step</button>
        <button type="button" data-np="train" title="Step until the loss stops falling (or ${MAX_STEPS} steps)">Train</button>
        <button type="button" data-np="reset" title="Back to the trained neuron">Reset</button>
        <span class="np-sparkbox" title="the loss after each step"><svg class="np-spark" viewBox="0 0 100 28" aria-label="the loss over the steps"><polyline /></svg>loss</span></div>
      <div class="np-grad"></div>
      <div class="np-note"></div>
      <div class="np-error" role="alert" hidden></div></div>`;
    const svg = root.querySelector(".np-plot") as SVGSVGElement;
    svg.addEventListener("click", (e) => {
      if (!this.d) return;
      const r = svg.getBoundingClientRect();
      const p = fromPlot([((e.clientX - r.left) / r.width) * SIZE, ((e.clientY - r.top) / r.height) * SIZE], this.d.extent);
      const text = pointText(p);
      this.input = parsePoint(text);
      this.draw();
      this.host.run(text);
    });
    root.addEventListener("input", (e) => {
      const s = (e.target as HTMLElement).closest<HTMLInputElement>("input[data-w]");
      if (!s || !this.d) return;
      if (this.training) this.halt = "";
      this.losses = [];
      this.note = "";
      this.weights[Number(s.dataset.w)] = Number(s.value);
      this.draw();
      void this.ask(learnerName(this.d.base, this.weights.slice(0, 2), this.weights[2]));
    });
    root.addEventListener("click", (e) => {
      const action = (e.target as HTMLElement).closest<HTMLElement>("[data-np]")?.dataset.np;
      if (action === "step") void this.step();
      else if (action === "train" && this.training) {
        this.halt = "you stopped it";
        this.draw();
      } else if (action === "train") void this.train();
      else if (action === "reset" && this.d) {
        if (this.training) this.halt = "";
        this.losses = [];
        this.note = "";
        void this.ask(this.d.base).then(() => this.adopt());
      }
    });
    root.querySelector(".np-fold")?.addEventListener("click", (e) => {
      const body = root.querySelector(".np-body") as HTMLElement, b = e.currentTarget as HTMLButtonElement;
      body.hidden = !body.hidden;
      b.textContent = body.hidden ? "+" : "−";
      b.setAttribute("aria-expanded", String(!body.hidden));
    });
  }

  /** The view shows this scene: the panel for a neuron with weights (its plot, from the server), hidden for any other. */
  update(info: SceneInfo | undefined): void {
    const on = info?.model.config.arch === "neuron" && !!info.model.has_weights;
    this.root.hidden = !on;
    document.body.classList.toggle("neuron-model", on);
    if (!on || !info) {
      if (this.training) this.halt = "";  // (another model: Train ends, silently)
      return;
    }
    this.input = parsePoint(info.text);
    const name = info.model.name;
    if (name === this.model || this.busy) {  // (the same neuron, or the panel's own load: its plot is drawn)
      this.model = name;
      this.draw();
      return;
    }
    this.model = name;
    this.losses = [];
    void fetchDecision(name).then((d) => {
      if (this.model !== name) return;
      this.d = d;
      this.wanted = d.model;
      this.adopt();
    }, (e) => this.error((e as Error).message));
  }

  /** The sliders and the line take the weights of the plot drawn. */
  private adopt(): void {
    if (!this.d) return;
    this.weights = [...this.d.line.w, this.d.line.b];
    this.draw();
  }

  /** Ask for this neuron (the latest wins, one at a time): its plot from the server, then its view. */
  private ask(name: string): Promise<void> {
    this.wanted = name;
    if (!this.busy) {
      this.busy = this.run().finally(() => {
        this.busy = null;
        this.draw();  // (the sliders: the weights drawn, now that no drag waits)
      });
    }
    return this.busy;
  }

  private async run(): Promise<void> {
    let done = "";
    while (this.wanted !== done) {
      const name = this.wanted;
      done = name;
      try {
        const d = await fetchDecision(name);
        this.error("");
        this.d = d;
        if (name === this.wanted) this.weights = [...d.line.w, d.line.b];
        this.draw();
        if (name === this.wanted && d.model !== this.model) {
          await this.host.load(d.model);
          this.model = d.model;
        }
      } catch (e) {
        this.error((e as Error).message);
        if (name === this.wanted) this.adopt();  // the line goes back to the weights drawn
      }
    }
  }

  /** One step of gradient descent: the server's `next`. Returns the losses before and after, or null (nothing done). */
  private async step(): Promise<[number, number] | null> {
    if (this.busy) await this.busy;
    const from = this.d;
    if (!from) return null;
    if (!this.losses.length) this.losses.push(from.loss);
    await this.ask(from.next.name);
    if (this.failed || this.d?.model !== from.next.name) return null;  // (refused, or a drag came after it)
    this.losses.push(this.d!.loss);
    this.note = `${this.training ? `Train, step ${this.losses.length - 1}` : "last step"}: ` +
      `loss ${from.loss.toFixed(4)} → ${this.d!.loss.toFixed(4)}`;
    this.draw();
    return [from.loss, this.d!.loss];
  }

  /** Step until the loss stops falling, MAX_STEPS, or a click on Stop (each step once the last one is shown). */
  private async train(): Promise<void> {
    this.training = true;
    this.halt = null;
    this.losses = [];
    const first = this.d?.loss;
    let steps = 0, why = "";
    this.draw();
    while (!why) {
      const r = this.halt === null ? await this.step() : null;
      if (r) steps++;
      why = this.halt ?? (r ? trainStops(r[0], r[1], steps) : "a step failed");
    }
    this.training = false;
    if (this.halt !== "") {
      this.note = `trained ${steps} step${steps === 1 ? "" : "s"}: loss ${first?.toFixed(4)} → ${this.d?.loss.toFixed(4)}` +
        ` (stopped: ${why})`;
    }
    this.halt = null;
    this.draw();
  }

  private error(message: string): void {
    const box = this.root.querySelector(".np-error") as HTMLElement;
    box.textContent = message;
    box.hidden = !message;
    this.failed = !!message;
  }

  /** Draw the plot, the sliders, the formula, the score and the buttons from the plot and the weights. */
  private draw(): void {
    const d = this.d;
    if (!d) return;
    const e = d.extent, [w0, w1, b] = this.weights, w = [w0, w1];
    const at = (p: Pt) => toPlot(p, e).map((v) => v.toFixed(1)).join(",");
    const poly = (ps: Pt[], cls: string) => (ps.length ? `<polygon class="${cls}" points="${ps.map(at).join(" ")}"/>` : "");
    const parts: string[] = [
      poly(halfPlane(w, b, e, -1), "np-side0"), poly(halfPlane(w, b, e, 1), "np-side1"),
    ];
    for (let k = -Math.floor(e); k <= Math.floor(e); k++) {  // the grid: a line per unit, the axes darker
      const [x] = toPlot([k, 0], e), [, y] = toPlot([0, k], e);
      parts.push(`<line class="${k ? "np-grid" : "np-axis"}" x1="${x}" y1="0" x2="${x}" y2="${SIZE}"/>`,
        `<line class="${k ? "np-grid" : "np-axis"}" x1="0" y1="${y}" x2="${SIZE}" y2="${y}"/>`);
    }
    parts.push(`<text class="np-label" x="${SIZE - 4}" y="${toPlot([0, 0], e)[1] - 4}" text-anchor="end">x₁</text>`,
      `<text class="np-label" x="${toPlot([0, 0], e)[0] + 4}" y="12">x₂</text>`);
    const seg = lineSegment(w, b, e);
    if (seg) {
      const [p, q] = [toPlot(seg[0], e), toPlot(seg[1], e)];
      parts.push(`<line class="np-line" x1="${p[0]}" y1="${p[1]}" x2="${q[0]}" y2="${q[1]}">` +
        "<title>the decision line: z = 0, σ(z) = 50 %</title></line>");
    }
    d.points.forEach((p, i) => {
      const [x, y] = toPlot(p as Pt, e), c = d.labels[i], wrong = d.probs[i] > 0.5 !== (c === 1);
      parts.push(`<circle class="np-point${wrong ? " np-wrong" : ""}" data-class="${c}" cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${wrong ? 4 : 4.5}" ` +
        `style="${wrong ? `fill:none;stroke:${CLASS_COLOURS[c]}` : `fill:${CLASS_COLOURS[c]}`}"><title>(${p.join(", ")}): class ${c}, ` +
        `σ(z) = ${(100 * d.probs[i]).toFixed(1)} %${wrong ? ", on the wrong side" : ""}</title></circle>`);
    });
    const arrow = weightArrow(w, b, e);
    if (arrow) {
      const [p, q] = [toPlot(arrow[0], e), toPlot(arrow[1], e)];
      const [ux, uy] = [(q[0] - p[0]) / Math.hypot(q[0] - p[0], q[1] - p[1]), (q[1] - p[1]) / Math.hypot(q[0] - p[0], q[1] - p[1])];
      const head = [[q[0], q[1]], [q[0] - 9 * ux - 5 * uy, q[1] - 9 * uy + 5 * ux], [q[0] - 9 * ux + 5 * uy, q[1] - 9 * uy - 5 * ux]];
      parts.push(`<g class="np-arrow"><title>W = [${num(w0)}, ${num(w1)}]: across the line, toward class 1's side</title>` +
        `<line x1="${p[0]}" y1="${p[1]}" x2="${q[0] - 6 * ux}" y2="${q[1] - 6 * uy}"/>` +
        `<polygon points="${head.map((h) => h.map((v) => v.toFixed(1)).join(",")).join(" ")}"/>` +
        `<text x="${(q[0] + 10 * ux).toFixed(1)}" y="${(q[1] + 10 * uy + 4).toFixed(1)}" text-anchor="middle">W</text></g>`);
    }
    if (this.input) {
      const [x, y] = toPlot(this.input, e);
      parts.push(`<g class="np-input" transform="translate(${x.toFixed(1)},${y.toFixed(1)})"><title>the input (${this.input.join(", ")})</title>` +
        '<circle r="7"/><line x1="-9" y1="0" x2="9" y2="0"/><line x1="0" y1="-9" x2="0" y2="9"/></g>');
    }
    const svg = this.root.querySelector(".np-plot") as SVGSVGElement;
    svg.innerHTML = parts.join("");
    this.root.querySelectorAll<HTMLInputElement>("input[data-w]").forEach((s, i) => {
      s.min = String(-d.limit);
      s.max = String(d.limit);
      if (document.activeElement !== s || !this.busy) s.value = String(this.weights[i]);
      (s.nextElementSibling as HTMLOutputElement).textContent = num(this.weights[i], 4);
    });
    (this.root.querySelector(".np-formula") as HTMLElement).textContent = `${formulaText(w, b)}\np = σ(z): the probability of class 1`;
    const score = this.root.querySelector(".np-score") as HTMLElement;
    score.textContent = scoreText(d);
    this.root.dataset.model = d.model;
    this.root.dataset.loss = String(d.loss);
    const g = d.grad;
    (this.root.querySelector(".np-grad") as HTMLElement).innerHTML = `∂loss/∂W = [${g.w.map((v) => num(v)).join(", ")}], ` +
      `∂loss/∂b = ${num(g.b)}<br>Step: W ← W − ${num(d.lr)} · ∂loss/∂W, b ← b − ${num(d.lr)} · ∂loss/∂b`;
    (this.root.querySelector(".np-note") as HTMLElement).textContent = this.note;
    const train = this.root.querySelector("[data-np=train]") as HTMLButtonElement;
    train.textContent = this.training ? "Stop" : "Train";
    train.disabled = this.halt !== null;  // (stopping: the step under way ends first)
    train.setAttribute("aria-pressed", String(this.training));
    (this.root.querySelector("[data-np=step]") as HTMLButtonElement).disabled = this.training;
    const spark = this.root.querySelector(".np-spark") as SVGSVGElement;
    spark.querySelector("polyline")?.setAttribute("points", sparkPoints(this.losses, 100, 28));
    (spark.parentElement as HTMLElement).style.visibility = this.losses.length > 1 ? "visible" : "hidden";
    this.root.dataset.steps = String(Math.max(this.losses.length - 1, 0));
    this.root.dataset.training = String(this.training);
  }
}

let plot: NeuronPlot | null = null;

/** Set up the panel in `root` (hidden until a scene of a neuron). */
export function mountNeuronPlot(root: HTMLElement, host: PlotHost): void {
  plot = new NeuronPlot(root, host);
}

/** Show the panel for a scene of a neuron with weights, with its plot; hide it for any other. */
export function updateNeuronPlot(info: SceneInfo | undefined): void {
  plot?.update(info);
}
