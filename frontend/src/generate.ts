// The generation panel: Step, Play/Stop, Undo and Reset on a server session (a KV cache), the sampling
// settings, the tokens so far (click a generated one for the distribution it was drawn from), the sampling
// chain of the chosen step, and the cache in numbers. The view reloads on the longer input after each step.
import type { components } from "./api-schema";
import { request } from "./transport";
import { exported } from "./exported";
import { chainHtml, type Step } from "./chain";
import { escapeHtml } from "./html";
import { formatCount } from "./trace";

type SessionState = components["schemas"]["SessionState"];

export interface GeneratorHost {
  model(): string;
  input(): string;  // the text in the input field: the prompt of a new session
  /** Show this input (the prompt and the tokens so far); past: the KV-cache view of its last step; camera: where
   * to look (Reset puts back the camera the first Step left). */
  load(text: string, past?: number, camera?: number[]): Promise<void>;
  camera(): number[];  // the camera now: position, then target
  error(message: string): void;
  tokenRect(): DOMRect | null;  // where the input row's tokens are drawn, to fly the new token to
}

const $ = <T extends HTMLElement>(root: HTMLElement, sel: string) => root.querySelector(sel) as T;

function bytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${n.toLocaleString("en")} bytes`;
}

async function call(method: string, url: string, body?: unknown): Promise<SessionState | null> {
  const res = await request(url, { method, headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({ detail: `${res.status} ${res.statusText}` }));
  if (!res.ok) throw new Error(data.detail ?? `${res.status} ${res.statusText}`);
  return data as SessionState;
}

export class Generator {
  private sid: string | null = null;
  private steps: Step[] = [];
  private state: SessionState | null = null;
  private shown = -1;  // the step whose chain is drawn
  private playing = false;
  lastStepMs: number | null = null;  // from the Step click to the frame with the new token
  private done = 0;  // steps drawn so far: a test waits for this to change (two timings can be equal)
  /** What the view showed before the first Step (the prompt, and the camera): Reset goes back to it. A new setting
   * starts a new session from the current tokens but keeps it; a new model or input (forget) drops it. */
  private origin: { text: string; camera: number[] } | null = null;
  private epoch = 0;  // counts the sessions ended: a step still under way when its session ended shows nothing

  constructor(private root: HTMLElement, private host: GeneratorHost) {
    if (exported()) {  // a static export stores each step as it ran, on the KV cache (see export.py)
      const kv = $<HTMLInputElement>(root, "#gen-kv");
      Object.assign(kv, { checked: true, disabled: true, title: "This export holds each step on the KV cache: its one new position" });
    }
    root.addEventListener("click", (e) => {
      const t = e.target as HTMLElement;
      const action = t.closest<HTMLElement>("[data-gen]")?.dataset.gen;
      if (action === "step") void this.step(performance.now());
      else if (action === "play") void this.play();
      else if (action === "undo") void this.undo();
      else if (action === "reset") void this.reset();
      else if (action === "close") this.close();
      const chip = t.closest<HTMLElement>("[data-step]")?.dataset.step;
      if (chip !== undefined) {
        this.shown = Number(chip);
        this.render();
      }
    });
    root.addEventListener("change", (e) => {
      if ((e.target as HTMLElement).matches(".gen-settings input")) this.end();  // new settings: a new session
      if ((e.target as HTMLElement).id === "gen-kv") void this.show();
    });
  }

  /** Whether the panel is shown. */
  get open(): boolean {
    return !this.root.hidden;
  }

  /** Hide the panel (its × or Escape); focus goes back to the button that opens it. */
  close(): void {
    this.root.hidden = true;
    this.root.ownerDocument.querySelector<HTMLElement>("#gen-toggle")?.focus();
  }

  /** The model or its input changed elsewhere: what was generated no longer applies, nor the prompt to reset to. */
  forget(): void {
    this.origin = null;
    this.end();
  }

  /** End the session (Play stops, a step under way is dropped) and clear the panel. */
  private end(): void {
    this.epoch++;
    this.playing = false;
    if (this.sid) void call("DELETE", `/api/sessions/${this.sid}`).catch(() => {});
    this.sid = null;
    this.steps = [];
    this.state = null;
    this.shown = -1;
    this.render();
  }

  private settings(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of ["temperature", "top_k", "top_p", "min_p", "seed"]) {
      const v = $<HTMLInputElement>(this.root, `#gen-${name.replace("_", "-")}`).value.trim();
      if (v !== "") out[name] = Number(v);
    }
    return out;
  }

  private get max(): number {
    return Number($<HTMLInputElement>(this.root, "#gen-max").value) || 1;
  }

  /** The KV cache of the last step, in numbers ("" before one). */
  get cache(): string {
    return this.state ? this.cacheHtml(this.state) : "";
  }

  /** Generate one token: the session's next step, then the view of the longer input. `settings`: over the panel's
   * (a new session only; the walkthrough's step is greedy whatever the panel says). */
  async step(t0 = performance.now(), settings: Record<string, number> = {}): Promise<boolean> {
    const epoch = this.epoch;
    try {
      if (!this.sid) {
        const prompt = this.host.input();
        this.origin ??= { text: prompt, camera: this.host.camera() };
        const started = await call("POST", "/api/sessions", { model: this.host.model(), text: prompt, ...this.settings(), ...settings });
        if (epoch !== this.epoch) {  // Reset (or a new input) while the session was starting
          void call("DELETE", `/api/sessions/${started!.session}`).catch(() => {});
          return false;
        }
        this.sid = started!.session;
        this.steps = [];
      }
      const s = (await call("POST", `/api/sessions/${this.sid}/step`, { count: 1 }))!;
      if (epoch !== this.epoch) return false;  // the session ended while the step ran: its token is not shown
      this.state = s;
      this.steps.push(...s.steps);
      this.shown = this.steps.length - 1;
      const readout = this.root.ownerDocument.querySelector("#readout [data-token]")?.getBoundingClientRect();
      const from = readout?.width ? readout : null;  // (a readout not shown, as in the walkthrough: no flight)
      this.render();
      await this.show();
      if (epoch !== this.epoch) return false;
      this.travel(s.steps[0].token, from);
      this.lastStepMs = performance.now() - t0;
      this.root.dataset.stepMs = this.lastStepMs.toFixed(1);
      this.root.dataset.stepsDone = String(++this.done);
      return !s.done;
    } catch (e) {
      if (epoch === this.epoch) this.host.error((e as Error).message);  // the state before the step stays
      return false;
    }
  }

  async play(): Promise<void> {
    if (this.playing) {
      this.playing = false;
      return this.render();
    }
    this.playing = true;
    this.render();
    const epoch = this.epoch;
    let made = 0;
    while (this.playing && epoch === this.epoch && made < this.max && (await this.step())) made++;
    if (epoch !== this.epoch) return;  // Reset ended this Play (and perhaps another began)
    this.playing = false;
    this.render();
  }

  async undo(): Promise<void> {
    if (!this.sid || !this.steps.length) return;
    const epoch = this.epoch;
    try {
      const s = await call("POST", `/api/sessions/${this.sid}/undo`);
      if (epoch !== this.epoch) return;
      this.state = s;
      this.steps.pop();
      this.shown = this.steps.length - 1;
      this.render();
      await this.show();
    } catch (e) {
      this.host.error((e as Error).message);
    }
  }

  /** Back to the view before the first Step: the prompt, the camera, an empty panel (Play stops). */
  async reset(): Promise<void> {
    const origin = this.origin;
    this.forget();
    if (origin) await this.host.load(origin.text, undefined, origin.camera);
  }

  /** Load the view of the sequence so far (or of its last step on the KV cache). */
  private async show(): Promise<void> {
    if (!this.state) return;
    const s = this.state, shown = Math.min(s.tokens.length, s.n_ctx);  // beyond the context: the pass that predicted it
    const kv = $<HTMLInputElement>(this.root, "#gen-kv").checked && shown > 1;
    await this.host.load(s.view_text, kv ? shown - 1 : undefined);
  }

  /** The new token flies from the readout (where it was predicted) to the input row (where it now is). */
  private travel(token: string, from: DOMRect | null): void {
    const to = this.host.tokenRect();
    if (!from || !to) return;
    const chip = document.createElement("div");
    chip.className = "travel";
    chip.textContent = token;
    chip.style.left = `${from.left}px`;
    chip.style.top = `${from.top}px`;
    document.body.appendChild(chip);
    requestAnimationFrame(() => {
      chip.style.left = `${to.right + 4}px`;
      chip.style.top = `${to.top}px`;
    });
    setTimeout(() => chip.remove(), 900);
  }

  render(): void {
    const s = this.state;
    const chips = s ? s.token_strs.map((t, i) => {
      const k = i - (s.tokens.length - this.steps.length);
      return k < 0 ? `<code class="gen-chip">${escapeHtml(t)}</code>`
        : `<button type="button" class="gen-chip new${k === this.shown ? " shown" : ""}" data-step="${k}">${escapeHtml(t)}</button>`;
    }).join("") : "";
    $<HTMLDivElement>(this.root, "#gen-tokens").innerHTML = chips || "<small>Step draws the next token and feeds it back.</small>";
    const step = this.steps[this.shown];
    $<HTMLDivElement>(this.root, "#gen-chain").innerHTML = step ? chainHtml(step) : "";
    $<HTMLDivElement>(this.root, "#gen-cache").innerHTML = s ? this.cacheHtml(s) : "";
    $<HTMLDivElement>(this.root, "#gen-message").textContent = s?.message ?? (s?.done ? "the context is full" : "");
    $<HTMLButtonElement>(this.root, "[data-gen=play]").textContent = this.playing ? "Stop" : "Play";
    $<HTMLButtonElement>(this.root, "[data-gen=undo]").disabled = !this.steps.length;
    $<HTMLButtonElement>(this.root, "[data-gen=step]").disabled = !!s?.done;
  }

  private cacheHtml(s: SessionState): string {
    const c = s.cache, saved = c.full_multiply_adds / Math.max(c.step_multiply_adds, 1);
    return `<div class="gen-cache-title">KV cache</div>
      <div>${escapeHtml(c.formula)} = <b>${bytes(c.bytes)}</b></div>
      <div>at full context: ${c.at_scale.map((x) => `${escapeHtml(x.model)} (${x.positions.toLocaleString("en")}) ${bytes(x.bytes)}`).join(", ")}</div>
      <div>next step: ${formatCount(c.step_multiply_adds)} multiply-adds with the cache, ${formatCount(c.full_multiply_adds)}
        without (${saved.toFixed(1)}× less)</div>`;
  }
}
