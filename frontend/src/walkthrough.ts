// The walkthrough player: the chapters the server compiled for this model and input, played step by step on
// the scene's public API (scene.ts) only. What is shown at each moment comes from walkstate.ts (a pure function of step and
// time); this module turns it into camera, highlights, cards and controls.
import { fetchWalkthrough } from "./api";
import type { Edit } from "./edits";
import { explainInScene } from "./cells";
import { FAMILIES, type Kind } from "./colors";
import { escapeHtml as esc } from "./html";
import { deselect, notify } from "./panels";
import { closeTooltip, findBlock, framingOf, framingOfModel, highlight, labelSubjects, openTooltip, regionScreenPoint, reveal, setCamera, shareScale } from "./scene";
import { codeCard } from "./codecard";
import { temperatureBars, temperatureCard, temperatureSays } from "./walkcards";
import { num } from "./tooltip";
import {
  advance, closeUp, duration, framedRegionsAt, indexOf, missingStep, places, sameView, softmaxPhase, subjectsOf, termsShown, visualAt, type Card,
  type Place, type TemperatureAction, type Visual, type Walk, type WalkAction, type WalkView,
} from "./walkstate";

type Explained = Extract<WalkAction, { type: "dot" | "tooltip" }>;

export interface WalkHost {
  model(): string;
  input(): string | undefined;
  /** Show this input in the view (the walkthrough's numbers are for it). */
  load(input: string): Promise<void>;
  /** The walkthrough moved to chapter.step (null: closed); push: a new history entry. */
  moved(at: [number, number] | null, push: boolean): void;
  /** Show the view a step is on (null: the walkthrough's own model and input): null when it is shown already,
   * else a promise that resolves once the new view is drawn (the generated view: the Generator takes its step). */
  show(view: WalkView, model: string, input: string | null): Promise<void> | null;
  /** Whether the view on screen is another than a model's pass (a step's: the scale view, the generator's step), so
   * that the walkthrough's model and input are its own, not the view's. */
  elsewhere(): boolean;
  /** Open the Across-layers panel on this tab, or the embedding map (null: close whichever a step opened). */
  insights(tab: "lens" | "attention" | "map" | null): void;
  /** The generator's KV cache in numbers, as the Generate panel shows it ("" before its step). */
  cache(): string;
  /** Make these edits to the view's pass, instead of any it has (null: back to the clean pass). */
  intervene(edits: Edit[] | null): Promise<void>;
  /** The edits of the view's pass (none: a clean pass). */
  edits(): Edit[];
}

export class Walkthrough {
  private walk: Walk | null = null;
  private all: Place[] = [];
  private index = 0;
  private t = 0;
  private playing = false;   // moving through the step's timeline
  private autoplay = false;  // and on to the next step
  private hold = 0;          // seconds left to read at the end of a step before autoplay moves on
  private speed = 1;
  private last = 0;
  private guessed = new Map<string, number>();
  private temps = new Map<string, number>();  // a temperature step's slider stop, per step
  private applying = false;
  private switching: Promise<void> | null = null;  // the view a step is on is being loaded
  private explaining: Promise<void> | null = null;  // the cells the steps on this view explain are being explained
  private asked = new WeakSet<WalkAction>();  // (each cell once)
  private opened: "lens" | "attention" | "map" | null = null;  // the Across-layers tab (or the map) a step opened
  private reducedPref = matchMedia("(prefers-reduced-motion: reduce)");
  private $ = <T extends HTMLElement>(sel: string) => this.panel.querySelector(sel) as T;

  constructor(private panel: HTMLElement, private host: WalkHost) {
    panel.addEventListener("click", (e) => this.onClick(e));
    const close = this.$<HTMLButtonElement>("[data-walk=close]");
    close.title = "Close the walkthrough (Esc)";
    close.setAttribute("aria-keyshortcuts", "Escape");
    this.$<HTMLInputElement>("#walk-time").addEventListener("input", (e) => {
      this.pause();
      this.t = (Number((e.target as HTMLInputElement).value) / 1000) * duration(this.all[this.index].s);
      this.apply();
    });
    this.$<HTMLSelectElement>("#walk-speed").addEventListener("change", (e) => (this.speed = Number((e.target as HTMLSelectElement).value)));
    this.$<HTMLInputElement>("#walk-reduced").checked = this.reducedPref.matches;
    this.$<HTMLInputElement>("#walk-reduced").addEventListener("change", () => this.go(this.index, false));
    panel.addEventListener("input", (e) => {  // a temperature step's slider: the bars redraw in place
      const el = e.target as HTMLInputElement;
      if (el.matches("[data-temperature]")) this.temperature(Number(el.value));
    });
    this.$<HTMLFormElement>("#walk-try").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.tryInput(this.$<HTMLInputElement>("#walk-input").value);
    });
    // Two-way links: a term lights its block; a hovered block lights its terms.
    panel.addEventListener("pointerover", (e) => {
      const term = (e.target as HTMLElement).closest<HTMLElement>(".term[data-tensor]");
      if (term && this.active) highlight([{ tensor: term.dataset.tensor!, ranges: {}, role: "input" }]);
    });
    panel.addEventListener("pointerout", (e) => {
      if ((e.target as HTMLElement).closest(".term[data-tensor]") && this.active) this.apply();
    });
    // The view resized (the panel opened, a phone turned): frame the step again for the new shape.
    const stage = document.querySelector("#view")?.parentElement;
    if (stage) new ResizeObserver(() => this.active && this.apply()).observe(stage);
    document.addEventListener("llmviz:hover", (e) => {
      const tensor = (e as CustomEvent<string | null>).detail;
      for (const t of panel.querySelectorAll<HTMLElement>(".term[data-tensor]")) t.classList.toggle("lit", t.dataset.tensor === tensor);
      if (tensor === null && this.active && !this.applying) this.apply();  // a hover's highlights went: ours come back
    });
  }

  get active(): boolean {
    return !this.panel.hidden && this.walk !== null;
  }

  get reduced(): boolean {
    return this.$<HTMLInputElement>("#walk-reduced").checked;
  }

  /** The model and input the walkthrough is told for (a link to a step names these, whatever view the step is on). */
  get subject(): { model: string; input: string | null } | null {
    return this.active && this.walk ? { model: this.walk.model, input: this.walk.input } : null;
  }

  /** Whether no step's view is still loading (the scale view, the generator's step) and its cells are explained:
   * the scene is the step's. */
  get settled(): boolean {
    return !this.switching && !this.explaining;
  }

  /** Where the walkthrough is, for the URL: chapter and step from 1. */
  get at(): [number, number] | null {
    const p = this.all[this.index];
    return this.active && p ? [p.chapter, p.step] : null;
  }

  /** Open at chapter.step (default: the start), fetching the chapters for the view's model and input. The
   * picture is the step's last frame, exactly as when its animation has played. */
  /** Open at step `at` (chapter, step, from 1; null: the first step of this model's walkthrough, whatever its
   * chapter's number: a learning-path model's own chapters are not chapter 1). */
  async open(at: [number, number] | null = null, animate = false): Promise<void> {
    this.panel.hidden = false;
    if (!document.body.classList.contains("walking")) {  // opening: the legend stays, folded, beside the steps
      const legend = document.querySelector<HTMLDetailsElement>("#legend-box");
      if (legend) legend.open = false;
    }
    document.body.classList.add("walking");
    const model = this.host.model(), input = this.host.input();
    const own = this.walk && this.host.elsewhere();  // a step's other view: the walkthrough is for its own input
    if (!this.walk || (!own && (this.walk.model !== model || (this.walk.input ?? undefined) !== input))) {
      this.$<HTMLDivElement>("#walk-text").textContent = "loading the walkthrough…";
      try {
        this.walk = await fetchWalkthrough(model, input);
      } catch (e) {
        this.message((e as Error).message);
        return;
      }
      this.all = places(this.walk);
      this.map();
    }
    this.$<HTMLInputElement>("#walk-input").value = this.walk.input ?? "";
    this.$<HTMLFormElement>("#walk-try").hidden = this.walk.input === null;
    this.$<HTMLDivElement>("#walk-note").textContent = this.walk.note;
    this.$<HTMLDivElement>("#walk-note").hidden = !this.walk.note;
    this.go(at ? indexOf(this.all, ...at) : 0, animate, false);
    const missing = at ? missingStep(this.all, ...at) : "";  // a link to a step that is not there says so (go cleared the last one)
    if (missing) notify(missing, "walk");
    requestAnimationFrame(() => (this.panel.dataset.shownMs = performance.now().toFixed(0)));  // since navigation start
  }

  close(): void {
    this.pause();
    this.autoplay = false;
    this.panel.hidden = true;
    document.body.classList.remove("walking", "guessing");
    highlight(null);
    reveal(null);
    shareScale(null);
    labelSubjects(null);
    closeTooltip();
    this.travelChip(null);
    if (this.opened) this.host.insights(null);
    this.opened = null;
    notify("", "walk");
    this.host.moved(null, true);
  }

  /** Go to step `index`: animate it from its start, or show its end at once. */
  go(index: number, animate = true, push = true): void {
    if (!this.all.length) return;
    this.index = Math.max(0, Math.min(this.all.length - 1, index));
    const p = this.all[this.index];
    notify("", "walk");  // a step was found: whatever a link could not find is old news
    deselect();  // a block description pinned before stays no longer than the view it was for
    this.t = animate && !this.reduced ? 0 : duration(p.s);
    this.hold = 0;
    this.renderText();
    this.view(p);
    this.apply();
    this.host.moved([p.chapter, p.step], push);
    if (animate && !this.reduced) this.play(this.autoplay);
    else this.playing = false;
    this.controls();
  }

  /** The step's view: loaded if it is not the one on screen; the step is drawn once it is. */
  private view(p: Place): void {
    const loading = this.host.show(p.s.view ?? null, this.walk!.model, this.walk!.input);
    if (!loading) {
      this.explainView(p);
      return;
    }
    this.message("");
    const done: Promise<void> = loading.then(() => {
      if (this.switching !== done) return;
      this.switching = null;
      this.explainView(p);
      this.apply();
    }, (e: Error) => {
      if (this.switching !== done) return;
      this.switching = null;
      this.message(e.message);
      this.apply();
    });
    this.switching = done;
  }

  /** Explain the cells that the steps on this step's view explain (@dot, @tooltip), all at once (their numbers in one
   * request), in the page as hover does; the step is drawn once they are. */
  private explainView(p: Place): void {
    const actions = this.all.filter((q) => sameView(q.s.view, p.s.view)).flatMap((q) => q.s.actions)
      .filter((a): a is Explained => (a.type === "dot" || a.type === "tooltip") && !a.explain && !this.asked.has(a));
    const info = actions.length ? findBlock(actions[0].cell.tensor)?.placed.data.info : undefined;
    if (!info) return;
    for (const a of actions) this.asked.add(a);
    const done: Promise<void> = explainInScene(info, actions.map((a) => ({ tensor: a.cell.tensor, index: a.index })))
      .then((es) => {
        for (const [i, e] of es.entries()) actions[i].explain = e;
      }, (e: Error) => this.message(e.message))
      .then(() => {
        if (this.explaining !== done) return;
        this.explaining = null;
        this.apply();
      });
    this.explaining = done;
  }

  next(): void {
    if (this.index < this.all.length - 1) this.go(this.index + 1);
  }

  prev(): void {
    if (this.index > 0) this.go(this.index - 1);
  }

  /** Space: play through the steps, or pause. */
  toggle(): void {
    if (this.playing) this.pause();
    else {
      if (this.t >= duration(this.all[this.index].s)) {
        if (this.index < this.all.length - 1) {
          this.autoplay = true;
          this.go(this.index + 1);
          return;
        }
        this.t = 0;
      }
      this.play(true);
    }
  }

  private play(auto: boolean): void {
    this.autoplay = auto;
    if (this.playing) return;
    this.playing = true;
    this.last = performance.now();
    requestAnimationFrame((now) => this.tick(now));
    this.controls();
  }

  private pause(): void {
    this.playing = false;
    this.autoplay = false;
    this.controls();
  }

  private tick(now: number): void {
    if (!this.playing || !this.active) return;
    const dt = this.switching || this.explaining ? 0 : advance(this.last, now, this.speed);  // the step's view first
    this.last = now;
    const end = duration(this.all[this.index].s);
    if (this.t < end) {
      this.t = Math.min(end, this.t + dt);
      this.apply();
    } else if (this.autoplay && this.index < this.all.length - 1) {
      this.hold += dt;  // time to read the text before the next step
      if (this.hold >= this.readingTime()) {
        this.go(this.index + 1);
        return;
      }
    } else {
      this.playing = false;
      this.controls();
      return;
    }
    requestAnimationFrame((n) => this.tick(n));
  }

  private readingTime(): number {
    const words = (this.$<HTMLDivElement>("#walk-text").textContent ?? "").split(/\s+/).length;
    return Math.max(2, words / 4);  // about 240 words a minute
  }

  /** Draw the state at the current step and time. */
  apply(): void {
    if (!this.active || this.switching || this.explaining) return;
    this.applying = true;
    try {
      const v = visualAt(this.all, this.index, this.t, this.reduced, this.guessed.has(this.key()));
      this.camera(v);
      highlight(v.regions);
      shareScale(v.sameScale && [v.sameScale.weight, v.sameScale.copy]);  // a lookup: the same numbers, the same colours
      labelSubjects(subjectsOf(v));  // what the step frames or lights is named, whatever else wants the place
      document.body.classList.toggle("guessing", v.guessing);  // the scene's "→ A next" waits for the guess too
      reveal(v.reveal?.tensor ?? null, v.reveal?.along, v.reveal?.fraction);
      if (v.open !== this.opened) this.host.insights(v.open);  // a step's Across-layers tab, closed after it
      this.opened = v.open;
      this.cards(v.cards, v.sameScale);
      this.scaleRows(v);
      if (!v.tooltip || !openTooltip(v.tooltip.explain, v.tooltip.cell)) closeTooltip();
      this.travelChip(v.travel);
      const time = this.$<HTMLInputElement>("#walk-time");
      time.value = String(Math.round((this.t / duration(this.all[this.index].s)) * 1000));
    } finally {
      this.applying = false;
    }
  }

  private camera(v: Visual): void {
    if (v.fly) {  // the scale view: from one model to the next
      const to = framingOfModel(v.fly.to), from = (v.fly.from && framingOfModel(v.fly.from)) || to;
      if (to && from) setCamera(from[0].clone().lerp(to[0], v.fly.p), from[1].clone().lerp(to[1], v.fly.p));
      return;
    }
    // The framed blocks whole, and the cells their step lights elsewhere (a weight's column, μ beside the rows).
    const at = (i: number) => [framedRegionsAt(this.all, i), closeUp(this.all, i)] as const;
    const to = v.camera.to && framingOf(v.camera.to, 1.3, ...at(this.index));
    if (!to) return;
    const same = v.camera.from === v.camera.to;
    const from = (!same && v.camera.from && framingOf(v.camera.from, 1.3, ...at(this.index - 1))) || to;
    const p = v.camera.p;
    setCamera(from[0].clone().lerp(to[0], p), from[1].clone().lerp(to[1], p));
  }

  private key(): string {
    const p = this.all[this.index];
    return `${p.chapter}.${p.step}`;
  }

  private renderText(): void {
    const p = this.all[this.index];
    const chapters = this.walk!.chapters;  // (counted in this model's walkthrough; a link names the chapter's file number)
    const nth = chapters.findIndex((c) => c.number === p.chapter) + 1;
    this.$<HTMLElement>("#walk-where").textContent = `Chapter ${nth} of ${chapters.length} · step ${p.step} of ${p.c.steps.length}`;
    this.$<HTMLElement>("#walk-chapter").textContent = p.c.title;
    this.$<HTMLElement>("#walk-title").textContent = p.s.title;
    const text = this.$<HTMLDivElement>("#walk-text");
    text.innerHTML = p.s.html;  // the server's HTML: its text is escaped there
    for (const t of text.querySelectorAll<HTMLElement>(".term[data-kind]")) {  // a tensor in its kind's colour
      t.style.setProperty("--term", FAMILIES[t.dataset.kind as Kind]?.positive ?? "inherit");
    }
    for (const b of this.panel.querySelectorAll<HTMLElement>("#walk-map [data-chapter]")) {
      b.classList.toggle("here", Number(b.dataset.chapter) === p.chapter);
      b.setAttribute("aria-current", String(Number(b.dataset.chapter) === p.chapter));
    }
  }

  /** The table of contents: the architecture's stages in reading order, each with its chapters (a stage the
   * tour comes back to appears again, so the numbers always run in order). */
  private map(): void {
    const nth = (n: number) => this.walk!.chapters.findIndex((c) => c.number === n) + 1;  // its place in this walkthrough
    const stages: { name: string; chapters: { number: number; title: string }[] }[] = [];
    for (const c of this.walk!.chapters) {
      const last = stages[stages.length - 1];
      if (last?.name === c.stage) last.chapters.push({ number: c.number, title: c.title });
      else stages.push({ name: c.stage, chapters: [{ number: c.number, title: c.title }] });
    }
    this.$<HTMLElement>("#walk-map").innerHTML = stages.map((s) => `<div class="walk-stage"><span>${esc(s.name)}</span>${
      s.chapters.map((c) => `<button type="button" data-chapter="${c.number}" title="${esc(c.title)}">${nth(c.number)}</button>`).join("")}</div>`)
      .join('<span class="walk-arrow" aria-hidden="true">→</span>');
  }

  private cards(cards: Card[], same: Visual["sameScale"]): void {
    const html = this.cardsHtml(cards, same);
    const box = this.$<HTMLDivElement>("#walk-card");
    // Compared with what was last written, not with innerHTML: an unfolded <details> (open="") stays open.
    if (box.dataset.html !== html) {
      box.innerHTML = html;
      box.dataset.html = html;
    }
  }

  private cardsHtml(cards: Card[], same: Visual["sameScale"]): string {
    return (same ? `<div class="walk-card walk-same">${this.named(same.copy)} is a copy of a row of ${this.named(same.weight)}: both are
      drawn here in one palette on one colour scale, so the same number has the same colour</div>` : "") + cards.map((c) => this.card(c)).join("");
  }

  /** The scale view's table (panels.ts draws it): the rows of the models the step has reached lit, the one the camera
   * is at marked. */
  private scaleRows(v: Visual): void {
    for (const row of document.querySelectorAll<HTMLElement>("#scalebars [data-name]")) {
      const name = row.dataset.name!;
      row.classList.toggle("walk-lit", !!v.table?.includes(name));
      row.classList.toggle("walk-here", v.fly?.to === name);
    }
  }

  /** A tensor as the scene labels it (its block's short name). */
  private named(tensor: string): string {
    const hit = findBlock(tensor);
    return `<b>${esc(hit ? hit.placed.data.info.blocks[hit.block].short : tensor)}</b>`;
  }

  private card(c: Card): string {
    const a = c.action;
    if (a.type === "dot") {
      if (!a.explain) return "";
      const f = a.explain.formula!;
      const terms = f.terms?.shown ?? [];
      const k = termsShown(terms.length, c.p);
      let run = 0;
      const rows = terms.slice(0, k).map((x) => {
        run += x.product;
        return `<tr><td>${num(x.x)} × ${num(x.w)}</td><td>${num(x.product)}</td><td>${num(run)}</td></tr>`;
      });
      const rest = f.terms && k === terms.length && c.p >= 1
        ? `<tr><td>the other ${f.terms.count - terms.length} terms</td><td>${num(f.terms.rest)}</td><td>${num(run + f.terms.rest)}</td></tr>` : "";
      return `<div class="walk-card"><b>${esc(a.explain.title)}</b>: the largest terms first
        <table><tr><th>term</th><th>product</th><th>running sum</th></tr>${rows.join("")}${rest}</table>
        ${c.p >= 1 ? `<div class="walk-result">${esc(f.text)}</div>` : ""}</div>`;
    }
    if (a.type === "softmax") {
      const phase = softmaxPhase(c.p);
      const rows = a.entries.map((e) => `<tr><td>${esc(e.name)}</td><td>${num(e.x)}</td>
        <td>${phase >= 1 ? num(e.exp) : ""}</td><td>${phase >= 3 ? num(e.p) : ""}</td></tr>`);
      const steps = [`max = ${num(a.max)}`, "exp(x − max)", `sum = ${num(a.sum)}`, "÷ sum"];
      return `<div class="walk-card"><b>softmax of one row</b>${a.n > a.entries.length ? ` (the ${a.entries.length} largest of ${a.n})` : ""}
        <div class="walk-phases">${steps.map((s, i) => `<span class="${i <= phase ? "on" : ""}">${s}</span>`).join(" → ")}</div>
        <table><tr><th></th><th>x</th><th>exp(x − max)</th><th>p</th></tr>${rows.join("")}</table></div>`;
    }
    if (a.type === "code") return codeCard(a);
    if (a.type === "temperature") return temperatureCard(a, this.temps.get(this.key()) ?? a.start, Math.min(1, c.p * 2));
    if (a.type === "generate") {
      const cache = this.host.cache();
      return `<div class="walk-card walk-gen"><b>Generate, one step</b>: <code>${esc(a.token)}</code> appended, its position computed on
        the KV cache${cache ? `<div class="walk-gen-cache">${cache}</div>` : ""}</div>`;
    }
    if (a.type === "edit") {
      const made = JSON.stringify(this.host.edits()) === JSON.stringify(a.edits);
      const k = this.all[this.index].s.actions.indexOf(a);  // (a step may have several)
      const at = `after position ${a.pos}: ${esc(a.before.token)} ${esc(a.before.percent)} → ${esc(a.after.token)} ${esc(a.after.percent)}`;
      return `<div class="walk-card walk-edit"><b>try it</b> ${made
        ? `<span class="walk-edit-made">${esc(a.label)}: ${at}</span> <button type="button" data-walk-edit="clean">back to the clean pass</button>`
        : `<button type="button" data-walk-edit="${k}">${esc(a.label)}</button> and watch what changes`}</div>`;
    }
    if (a.type === "mask") return `<div class="walk-card">future keys: −∞, hatched grey; their attention will be 0</div>`;
    if (a.type === "add") return `<div class="walk-card">${a.inputs.map((x) => `<code>${esc(x)}</code>`).join(" + ")}${
      c.p >= 0.5 ? ` = <code>${esc(a.tensor)}</code>` : ""}</div>`;
    if (a.type === "guess") {
      const g = this.guessed.get(this.key());
      const choices = a.choices.map((x) => `<button type="button" data-guess="${x.i}" class="${
        g === undefined ? "" : x.i === a.answer ? "right" : x.i === g ? "wrong" : ""}">${esc(x.name)}</button>`).join("");
      const answer = a.choices.find((x) => x.i === a.answer)?.name ?? String(a.answer);
      const said = g === undefined ? "your guess?" : g === a.answer ? `yes: ${esc(answer)}` : `no: it is ${esc(answer)} (outlined)`;
      return `<div class="walk-card walk-guess"><b>try it</b> ${said}<div>${choices}</div></div>`;
    }
    return "";
  }

  /** The temperature slider moved to stop k: its bars redraw where they are (the slider keeps the pointer). */
  private temperature(k: number): void {
    const a = this.all[this.index]?.s.actions.find((x): x is TemperatureAction => x.type === "temperature");
    const card = this.$<HTMLDivElement>("#walk-card");
    if (!a) return;
    this.temps.set(this.key(), k);
    card.querySelector(".walk-temp-bars")!.innerHTML = temperatureBars(a, k);
    card.querySelector(".walk-temp-says")!.textContent = `temperature ${temperatureSays(a.temperatures[k])}`;
    card.querySelector("[data-temperature]")!.setAttribute("aria-valuetext", `temperature ${a.temperatures[k]}`);
    const v = visualAt(this.all, this.index, this.t, this.reduced, this.guessed.has(this.key()));
    card.dataset.html = this.cardsHtml(v.cards, v.sameScale);  // what is drawn now: not drawn again
  }

  private travelChip(t: Visual["travel"]): void {
    let chip = document.querySelector<HTMLDivElement>("#walk-travel");
    const from = t && regionScreenPoint(t.from), to = t && regionScreenPoint(t.to);
    if (!t || !from || !to || t.p >= 1) {
      chip?.remove();
      return;
    }
    if (!chip) {
      chip = Object.assign(document.createElement("div"), { id: "walk-travel", className: "travel" });
      document.body.append(chip);
    }
    chip.textContent = t.token;
    chip.style.left = `${from.x + (to.x - from.x) * t.p}px`;
    chip.style.top = `${from.y + (to.y - from.y) * t.p}px`;
  }

  private controls(): void {
    const play = this.$<HTMLButtonElement>("[data-walk=play]");
    play.textContent = this.playing ? "Pause" : "Play";
    play.setAttribute("aria-pressed", String(this.playing));
    this.$<HTMLButtonElement>("[data-walk=prev]").disabled = this.index === 0;
    this.$<HTMLButtonElement>("[data-walk=next]").disabled = this.index >= this.all.length - 1;
  }

  private message(text: string): void {
    const m = this.$<HTMLDivElement>("#walk-message");
    m.textContent = text;
    m.hidden = !text;
  }

  private async tryInput(text: string): Promise<void> {
    const at = this.at ?? [1, 1];
    try {
      const w = await fetchWalkthrough(this.host.model(), text);  // a refused input changes nothing
      await this.host.load(text);
      this.walk = w;
      this.all = places(w);
      this.map();
      this.guessed.clear();
      this.message("");
      this.go(indexOf(this.all, ...at), false, false);
    } catch (e) {
      this.message((e as Error).message);
    }
  }

  private onClick(e: Event): void {
    const el = e.target as HTMLElement;
    const action = el.closest<HTMLElement>("[data-walk]")?.dataset.walk;
    if (action === "prev") this.prev();
    else if (action === "next") this.next();
    else if (action === "play") this.toggle();
    else if (action === "close") this.close();
    else if (action === "collapse") this.panel.classList.toggle("collapsed");
    const chapter = el.closest<HTMLElement>("[data-chapter]")?.dataset.chapter;
    if (chapter) this.go(indexOf(this.all, Number(chapter), 1));
    const edit = el.closest<HTMLElement>("[data-walk-edit]")?.dataset.walkEdit;
    if (edit) {
      const a = this.all[this.index]?.s.actions[Number(edit)];
      void this.host.intervene(a?.type === "edit" ? a.edits : null).then(() => this.apply());
    }
    const guess = el.closest<HTMLElement>("[data-guess]")?.dataset.guess;
    if (guess !== undefined) {
      this.guessed.set(this.key(), Number(guess));
      this.apply();
    }
  }
}
