// The training panel: a bundled model trained from random weights in the server (numpy, AdamW), watched as it
// learns: what it learns (the server's words), the settings, the loss curve, the task's scores at each snapshot (a share
// drawn from 0 to 100 %), when each head's attention pattern formed (a model without attention: nothing), and controls (pause, single step, speed, stop). The view behind shows the
// latest snapshot as it arrives, or the one the scrubber is on; any snapshot opens in the normal view by its name
// (nano-gpt@1200). The server decides everything shown here (routes/training.py); the page draws it.
import type { components } from "./api-schema";
import { escapeHtml } from "./html";
import { escapeCloses } from "./panelkeys";
import { formatG, thousands } from "./pyformat";
import { request } from "./transport";

export type TrainingState = components["schemas"]["TrainingState"];
type Snapshot = components["schemas"]["TrainingSnapshot"];

export interface TrainingHost {
  /** Show this model (a snapshot's name, or the model shown before the panel opened) in the view: with `keep`, on the
   * input the view shows now, the camera kept; else (another model's input and place) on its own example, framed anew. */
  show(name: string, keep: boolean): Promise<void>;
  /** The model the view shows now. */
  current(): string;
  /** The panel opened (the camera may make room for it). */
  opened(): void;
}

const $ = <T extends HTMLElement>(root: HTMLElement, sel: string) => root.querySelector(sel) as T;

async function call(method: string, url: string, body?: unknown): Promise<TrainingState> {
  const res = await request(url, { method, headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({ detail: `${res.status} ${res.statusText}` }));
  if (!res.ok) throw new Error(data.detail ?? `${res.status} ${res.statusText}`);
  return data as TrainingState;
}

/** A metric's value as read: a share in %, anything else to 4 significant digits. */
export function metricText(name: string, value: number, fractions: string[]): string {
  return fractions.includes(name) ? `${(100 * value).toFixed(1)} %` : formatG(value, 4);
}

/** One snapshot in words: its step, loss and scores. */
export function snapshotText(s: Snapshot, fractions: string[]): string {
  const parts = [`step ${thousands(s.step)}`, s.loss == null ? "initial weights" : `loss ${formatG(s.loss, 4)}`,
    ...Object.entries(s.metrics).map(([k, v]) => `${k} ${metricText(k, v, fractions)}`)];
  return parts.join(" · ");
}

/** The run's status line. */
export function statusText(st: TrainingState): string {
  if (st.status === "idle") return "No run yet: choose a model and Start.";
  const last = st.losses.length ? ` · loss ${formatG(st.losses[st.losses.length - 1], 4)}` : "";
  const snap = st.snapshots[st.snapshots.length - 1];
  const scores = snap ? Object.entries(snap.metrics).map(([k, v]) => ` · ${k} ${metricText(k, v, st.fractions)}`).join("") : "";
  const speed = st.status === "running" ? (st.speed ? ` · at most ${formatG(st.speed, 3)} steps/s` : " · full speed") : "";
  return `${st.model}: ${st.status} · step ${thousands(st.steps_done)} of ${thousands(st.steps)}${last}${scores}${speed}`;
}

const W = 400, H = 120, PAD = { left: 50, right: 8, top: 20, bottom: 22 };

interface Axis { lo: number; hi: number; log: boolean }

function scaleY(a: Axis, v: number): number {
  const f = a.log ? (Math.log10(v) - Math.log10(a.lo)) / (Math.log10(a.hi) - Math.log10(a.lo) || 1) : (v - a.lo) / (a.hi - a.lo || 1);
  return PAD.top + (1 - f) * (H - PAD.top - PAD.bottom);
}

function scaleX(total: number, step: number): number {
  return PAD.left + (step / Math.max(total, 1)) * (W - PAD.left - PAD.right);
}

/** The formation marks: a dashed line at each step where heads' patterns formed (after step 0); with `labels`, their
 * names (L0H2 …) above the plot, in the first of two rows with room (none if neither has: the line's tooltip names them). */
function marksSvg(st: TrainingState, labels: boolean): string {
  const at = new Map<number, string[]>();
  for (const f of st.formation) if (f.step != null && f.step > 0) at.set(f.step, [...(at.get(f.step) ?? []), f.label]);
  const ends = [-Infinity, -Infinity];  // each row's right end so far
  return [...at.entries()].sort((a, b) => a[0] - b[0]).map(([step, heads]) => {
    const x = scaleX(st.steps, step), text = heads.join(" "), width = 5.2 * text.length;
    const row = labels ? ends.findIndex((end) => x - width / 2 > end + 3) : -1;
    if (row >= 0) ends[row] = x + width / 2;
    return `<g class="tr-mark" data-step="${step}"><line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${PAD.top}" y2="${H - PAD.bottom}"/>` +
      (row >= 0 ? `<text x="${x.toFixed(1)}" y="${8 + 9 * row}" text-anchor="middle">${text}</text>` : "") +
      `<title>${heads.join(", ")}: pattern formed at step ${thousands(step)}</title></g>`;
  }).join("");
}

function frameSvg(st: TrainingState, a: Axis, label: string, fmtY: (v: number) => string, selected: number | null): string {
  const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
  const sel = selected === null ? "" : `<line class="tr-selected" x1="${scaleX(st.steps, selected).toFixed(1)}" ` +
    `x2="${scaleX(st.steps, selected).toFixed(1)}" y1="${y1}" y2="${y0}"/>`;
  return `<rect class="tr-plot" x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}"/>` +
    `<text class="tr-tick" x="${x0 - 3}" y="${y1 + 4}" text-anchor="end">${fmtY(a.hi)}</text>` +
    `<text class="tr-tick" x="${x0 - 3}" y="${y0}" text-anchor="end">${fmtY(a.lo)}</text>` +
    `<text class="tr-tick" x="${x0}" y="${H - 6}">0</text>` +
    `<text class="tr-tick" x="${x1}" y="${H - 6}" text-anchor="end">step ${thousands(st.steps)}</text>` +
    `<text class="tr-axis" x="${(x0 + x1) / 2}" y="${H - 6}" text-anchor="middle">${escapeHtml(label)}</text>` + sel;
}

/** The loss curve (log scale) over the run's steps, with the formation marks and the selected snapshot's step. */
export function lossSvg(st: TrainingState, selected: number | null): string {
  const ys = st.losses.filter((v) => v > 0);
  if (!ys.length) return `<svg class="tr-svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="loss curve: no step yet">` +
    `<text class="tr-axis" x="${W / 2}" y="${H / 2}" text-anchor="middle">the loss curve starts at the first step</text></svg>`;
  const a: Axis = { lo: Math.min(...ys), hi: Math.max(...ys), log: true };
  if (a.hi / a.lo < 1.5) a.hi = a.lo * 1.5;
  const points = st.loss_steps.map((s, i) => `${scaleX(st.steps, s).toFixed(1)},${scaleY(a, Math.max(st.losses[i], a.lo)).toFixed(1)}`);
  const last = st.losses[st.losses.length - 1], lastStep = st.loss_steps[st.loss_steps.length - 1];
  return `<svg class="tr-svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="loss curve">` +
    frameSvg(st, a, "loss (log scale)", (v) => formatG(v, 2), selected) +
    `<polyline class="tr-loss" data-n="${points.length}" points="${points.join(" ")}"/>` + marksSvg(st, true) +
    `<text class="tr-last" x="${W - PAD.right - 2}" y="${PAD.top + 12}" text-anchor="end" data-loss="${last}" ` +
    `data-step="${lastStep}">loss ${formatG(last, 4)} at step ${thousands(lastStep)}</text></svg>`;
}

/** A metric at each snapshot (a share: from 0 to 100 %), with the formation marks and the selected snapshot's step. */
export function metricSvg(st: TrainingState, name: string, selected: number | null): string {
  const snaps = st.snapshots.filter((s) => name in s.metrics);
  const share = st.fractions.includes(name);
  const vs = snaps.map((s) => s.metrics[name]);
  const a: Axis = share ? { lo: 0, hi: 1, log: false } : { lo: Math.min(...vs), hi: Math.max(...vs), log: false };
  if (a.hi === a.lo) a.hi = a.lo + 1;
  const points = snaps.map((s) => `${scaleX(st.steps, s.step).toFixed(1)},${scaleY(a, s.metrics[name]).toFixed(1)}`);
  const dots = points.map((p, i) => `<circle class="tr-dot" cx="${p.split(",")[0]}" cy="${p.split(",")[1]}" r="2">` +
    `<title>${escapeHtml(snapshotText(snaps[i], st.fractions))}</title></circle>`).join("");
  const last = snaps[snaps.length - 1];
  return `<svg class="tr-svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(name)} at each snapshot">` +
    frameSvg(st, a, `${name} at each snapshot`, (v) => (share ? `${Math.round(100 * v)} %` : formatG(v, 3)), selected) +
    `<polyline class="tr-metric" data-n="${points.length}" points="${points.join(" ")}"/>` + dots + marksSvg(st, false) +
    (last ? `<text class="tr-last" x="${W - PAD.right - 2}" y="${H - PAD.bottom - 5}" text-anchor="end" data-value="${last.metrics[name]}">` +
      `${escapeHtml(name)} ${metricText(name, last.metrics[name], st.fractions)} at step ${thousands(last.step)}</text>` : "") + "</svg>";
}

/** Each head and the step its pattern formed at (a button: the scrubber goes to that snapshot), a row per layer. */
export function headsHtml(st: TrainingState): string {
  if (!st.formation.length) return "";
  const ended = !["running", "paused"].includes(st.status);
  const heads = Math.max(...st.formation.map((f) => f.head)) + 1;
  const cell = (f: TrainingState["formation"][number]) => f.step == null
    ? `<li data-head="${f.label}" title="its pattern is still moving${ended ? " at the end of the run" : ""}"><b>${f.label}</b> still changing</li>`
    : `<li data-head="${f.label}"><button type="button" data-formed="${f.step}" title="${f.step === 0
      ? "its pattern hardly moved from the random start: show the first snapshot" : `show the snapshot of step ${thousands(f.step)}`}">` +
      `<b>${f.label}</b> ${f.step === 0 ? "from the start" : `step ${thousands(f.step)}`}</button></li>`;
  return `<div class="tr-heads-title">When each head's attention pattern formed${ended ? "" : " (so far)"}</div>` +
    `<ol class="tr-head-list" style="grid-template-columns: repeat(${heads}, 1fr)">${st.formation.map(cell).join("")}</ol>` +
    `<p class="tr-rule">Formed: ${escapeHtml(st.formation_rule)}${st.probe ? ` (the probe input: ${escapeHtml(st.probe)})` : ""}.</p>`;
}

/** The settings as a table of (what, value). */
export function settingsHtml(settings: TrainingState["settings"]): string {
  return settings.map((s) => `<tr><th>${escapeHtml(s.label)}</th><td>${escapeHtml(s.value)}</td></tr>`).join("");
}

/** The index of the snapshot at or before a step (the scrubber's place for a head's formation). */
export function snapshotAt(snaps: { step: number }[], step: number): number {
  let best = 0;
  snaps.forEach((s, i) => {
    if (s.step <= step) best = i;
  });
  return best;
}

export class Training {
  private st: TrainingState | null = null;
  private epoch = 0;  // counts the panel's openings: a poll of an earlier one stops
  private index = -1;  // the snapshot the scrubber is on
  private follow = true;  // the scrubber is on the latest snapshot, and moves on as snapshots arrive
  private watched = false;  // a run was live while the panel was open: the view follows its snapshots
  private shown = "";  // the snapshot the view shows (or is loading)
  private loading: Promise<void> | null = null;
  private before = "";  // the model the view showed when the panel opened
  /** Each change drawn (a test waits on it). */
  renders = 0;

  constructor(private root: HTMLElement, private host: TrainingHost) {
    root.addEventListener("click", (e) => {
      const t = e.target as HTMLElement;
      const action = t.closest<HTMLElement>("[data-tr]")?.dataset.tr;
      if (action === "close") this.close();
      else if (action === "open") this.openSnapshot();
      else if (action === "pause") void this.control(this.st?.status === "paused" ? "resume" : "pause");
      else if (action) void this.control(action);
      const formed = t.closest<HTMLElement>("[data-formed]")?.dataset.formed;
      if (formed !== undefined && this.st) this.scrub(snapshotAt(this.st.snapshots, Number(formed)));
    });
    $<HTMLFormElement>(root, "#tr-start").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.start();
    });
    $<HTMLSelectElement>(root, "#tr-model").addEventListener("change", () => this.render());
    $<HTMLSelectElement>(root, "#tr-speed").addEventListener("change", (e) => {
      const v = (e.target as HTMLSelectElement).value;  // (before a run: the speed it starts at)
      if (this.st?.status === "running" || this.st?.status === "paused") void this.control("speed", v === "" ? null : Number(v));
    });
    $<HTMLInputElement>(root, "#tr-scrub").addEventListener("input", (e) => {
      this.scrub(Number((e.target as HTMLInputElement).value));
    });
    escapeCloses(() => this.active, () => this.close());  // (the run goes on)
  }

  get active(): boolean {
    return !this.root.hidden;
  }

  /** The run's state as last drawn (for tests and the toolbar). */
  get state(): TrainingState | null {
    return this.st;
  }

  async open(): Promise<void> {
    this.root.hidden = false;
    document.body.classList.add("training-open");
    this.before = this.host.current();
    this.watched = false;
    this.host.opened();
    const epoch = ++this.epoch;
    try {
      this.update(await call("GET", "/api/training"));
    } catch (e) {
      this.say((e as Error).message);
    }
    void this.poll(epoch);
  }

  /** Close the panel: the run goes on in the server; the view goes back to the model it showed before. */
  close(): void {
    this.leave();
    if (this.before && this.host.current() !== this.before) void this.host.show(this.before, this.sameInputs());
  }

  /** Whether the view's input suits the run's snapshots and the model shown before the panel opened alike: the view shows
   * the run's model or one of its snapshots, and the run is of the model shown before (a digit drawn for digits-mlp
   * stays under its snapshots; nano-gpt's letters do not go to an image model). */
  private sameInputs(): boolean {
    const cur = this.host.current(), st = this.st;
    return !!st && st.model === this.before && (cur === st.model || st.snapshots.some((s) => s.name === cur));
  }

  /** Whether the view's input suits the run's snapshots: it shows the run's model, or one of its snapshots. */
  private runInput(): boolean {
    const cur = this.host.current(), st = this.st;
    return !!st && (cur === st.model || st.snapshots.some((s) => s.name === cur));
  }

  /** Close the panel and leave the view on the scrubber's snapshot, as any model is shown (its name in the URL). */
  openSnapshot(): void {
    const snap = this.st?.snapshots[this.index];
    if (!snap) return;
    this.leave();
    if (this.host.current() !== snap.name) void this.host.show(snap.name, this.runInput());
  }

  private leave(): void {
    this.root.hidden = true;
    document.body.classList.remove("training-open");
    this.epoch++;
    document.querySelector<HTMLElement>("#train-toggle")?.focus();
  }

  private async poll(epoch: number): Promise<void> {
    while (epoch === this.epoch) {
      try {
        const since = this.st?.version ?? 0;
        const st = await call("GET", `/api/training?since=${since}&wait=20`);
        if (epoch !== this.epoch) return;
        this.update(st);
      } catch (e) {
        if (epoch !== this.epoch) return;
        this.say(`Lost touch with the server: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 2000));
      }
      await new Promise((r) => setTimeout(r, 150));  // at most a few redraws a second, whatever the speed
    }
  }

  private async start(): Promise<void> {
    const num = (id: string) => {
      const v = $<HTMLInputElement>(this.root, id).value.trim();
      return v === "" ? undefined : Number(v);
    };
    const speed = $<HTMLSelectElement>(this.root, "#tr-speed").value;
    const body = { model: $<HTMLSelectElement>(this.root, "#tr-model").value, seed: num("#tr-seed"), steps: num("#tr-steps"),
      every: num("#tr-every"), speed: speed === "" ? undefined : Number(speed) };
    this.say("");
    try {
      const st = await call("POST", "/api/training", body);
      this.follow = true;
      this.index = -1;
      this.update(st);
    } catch (e) {
      this.say(`Could not start: ${(e as Error).message}`);  // (the state stays as it was)
    }
  }

  private async control(action: string, speed?: number | null): Promise<void> {
    this.say("");
    try {
      this.update(await call("POST", "/api/training/control", { action, ...(speed !== undefined ? { speed } : {}) }));
    } catch (e) {
      this.say(`Could not ${action}: ${(e as Error).message}`);
    }
  }

  private scrub(i: number): void {
    if (!this.st?.snapshots.length) return;
    this.index = Math.max(0, Math.min(i, this.st.snapshots.length - 1));
    this.follow = this.index === this.st.snapshots.length - 1 && ["running", "paused"].includes(this.st.status);
    this.render();
    void this.showSnapshot();
  }

  private update(st: TrainingState): void {
    if (this.st && st.version < this.st.version && st.model === this.st.model) return;  // (an older answer)
    this.st = st;
    if (this.follow || this.index >= st.snapshots.length) this.index = st.snapshots.length - 1;
    this.render();
    if (st.status === "running" || st.status === "paused") this.watched = true;
    if (this.active && this.watched) void this.showSnapshot();  // (an earlier run, ended: shown when scrubbed to)
  }

  /** The view shows the scrubber's snapshot: one load at a time, the latest wish last. */
  private async showSnapshot(): Promise<void> {
    const want = this.st?.snapshots[this.index]?.name;
    if (!want || want === this.shown) return;
    if (this.loading) return;  // (the load under way looks again when it ends)
    this.shown = want;
    this.loading = this.host.show(want, this.runInput()).catch((e) => this.say((e as Error).message));
    await this.loading;
    this.loading = null;
    this.root.dataset.shown = this.shown;
    if (this.active) void this.showSnapshot();
  }

  private say(text: string): void {
    const m = $<HTMLDivElement>(this.root, "#tr-message");
    m.textContent = text;
    m.hidden = text === "";
  }

  /** Draw the state: the form (when no run is live), the controls, the curves, the heads and the scrubber. */
  render(): void {
    const st = this.st;
    if (!st) return;
    const live = st.status === "running" || st.status === "paused";
    const select = $<HTMLSelectElement>(this.root, "#tr-model");
    if (select.options.length !== st.trainable.length) {
      select.replaceChildren(...st.trainable.map((t) => Object.assign(document.createElement("option"), {
        value: t.name, textContent: t.offline ? t.name : `${t.name} (needs its text: a download)`, disabled: !t.offline })));
      // The model on screen (a snapshot's or a learner's neuron: its model's), else the last run's, else the first.
      const onScreen = this.host.current().split(/[@~]/)[0];
      const pick = [onScreen, st.model].find((n) => st.trainable.some((t) => t.name === n && t.offline));
      if (pick) select.value = pick;
    }
    const chosen = st.trainable.find((t) => t.name === select.value);
    const about = $<HTMLParagraphElement>(this.root, "#tr-about");  // the server's words on the model: the run's, or the chosen one's
    about.textContent = (live ? st.trainable.find((t) => t.name === st.model) : chosen)?.about ?? "";
    about.hidden = !about.textContent;
    $<HTMLFormElement>(this.root, "#tr-start").hidden = live;
    for (const b of this.root.querySelectorAll<HTMLButtonElement>(".tr-controls button")) b.disabled = !live;
    const pause = $<HTMLButtonElement>(this.root, "[data-tr=pause]");
    pause.textContent = st.status === "paused" ? "Resume" : "Pause";
    const speed = $<HTMLSelectElement>(this.root, "#tr-speed");
    if (document.activeElement !== speed && live) speed.value = st.speed == null ? "" : String(st.speed);
    $<HTMLTableElement>(this.root, "#tr-settings table").innerHTML = settingsHtml(st.status === "idle" ? chosen?.settings ?? [] : st.settings);
    const status = $<HTMLDivElement>(this.root, "#tr-status");
    status.textContent = statusText(st);
    status.dataset.status = st.status;
    const message = $<HTMLDivElement>(this.root, "#tr-run-message");
    message.textContent = st.message ?? "";
    message.hidden = !st.message;
    const snap = st.snapshots[this.index] ?? null;
    $<HTMLDivElement>(this.root, "#tr-loss").innerHTML = lossSvg(st, snap?.step ?? null);
    const names = [...new Set(st.snapshots.flatMap((s) => Object.keys(s.metrics)))];
    $<HTMLDivElement>(this.root, "#tr-metric").innerHTML = names.map((n) => metricSvg(st, n, snap?.step ?? null)).join("");
    $<HTMLDivElement>(this.root, "#tr-heads").innerHTML = headsHtml(st);
    const scrub = $<HTMLInputElement>(this.root, "#tr-scrub");
    scrub.max = String(Math.max(st.snapshots.length - 1, 0));
    scrub.value = String(Math.max(this.index, 0));
    scrub.disabled = st.snapshots.length < 2;
    const at = $<HTMLSpanElement>(this.root, "#tr-at");
    at.textContent = snap ? `${snap.name}: ${snapshotText(snap, st.fractions)}` : "";
    at.dataset.snapshot = snap?.name ?? "";
    const open = $<HTMLButtonElement>(this.root, "[data-tr=open]");
    open.disabled = !snap;
    $<HTMLElement>(this.root, ".tr-scrub").hidden = !st.snapshots.length;
    this.root.dataset.status = st.status;
    this.root.dataset.version = String(st.version);
    this.renders++;
  }
}
