// The learning path's entry: a panel listing the steps Python declares (GET /api/learning-path), in order, each with
// its picture, title and line; the step whose model is on screen marked "you are here", and the steps the learner
// has walked into or finished marked so (localStorage, like the intro card's). At the last step of a step's
// walkthrough, a link to the next step. A served page's only: an export or a notebook widget has no entry.
import { check } from "./api";
import type { components } from "./api-schema";
import { escapeHtml as esc } from "./html";
import { request } from "./transport";

export type PathStep = components["schemas"]["LearningPathStep"];
type At = [number, number];

/** What the learner has done on the path: the models whose walkthrough they opened, and those they read to the end. */
export interface Progress { visited: string[]; done: string[] }

const KEY = "llmviz.path";

/** Progress as stored (anything else, or nothing: none yet). */
export function readProgress(raw: string | null): Progress {
  try {
    const p = JSON.parse(raw ?? "");
    const names = (x: unknown) => (Array.isArray(x) ? x.filter((v): v is string => typeof v === "string") : []);
    return { visited: names(p?.visited), done: names(p?.done) };
  } catch {
    return { visited: [], done: [] };
  }
}

/** The path's model a shown model is a version of: a training run's snapshot (nano-gpt@1200) or a neuron with the
 * learner's own weights (neuron~1.5,-0.8,0.2) is on its model's step. */
export function pathModel(name: string): string {
  return name.split(/[@~]/)[0];
}

const before = (a: number[], b: number[]) => a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);

/** Progress after the walkthrough of `model` moved to chapter.step `at`: its step is visited once `at` is within its
 * part of the walkthrough, and done once `at` is that part's last step. */
export function recordWalk(p: Progress, steps: PathStep[], shown: string, at: At | null): Progress {
  const model = pathModel(shown);
  const s = steps.find((x) => x.model === model);
  if (!s?.start || !s.end || !at || !before(s.start, at) || !before(at, s.end)) return p;
  const add = (list: string[], yes: boolean) => (yes && !list.includes(model) ? [...list, model] : list);
  const visited = add(p.visited, true), done = add(p.done, at[0] === s.end[0] && at[1] === s.end[1]);
  return visited === p.visited && done === p.done ? p : { visited, done };  // (the same: nothing to store)
}

/** Progress after the path opened a step's model (one with no chapter yet is visited by looking at it). */
export function recordOpen(p: Progress, step: PathStep): Progress {
  return step.start || p.visited.includes(step.model) ? p : { ...p, visited: [...p.visited, step.model] };
}

/** The step after this model's that this server has (null: the last, or not a step of the path). */
export function nextStep(steps: PathStep[], model: string): PathStep | null {
  const i = steps.findIndex((s) => s.model === model);
  return i < 0 ? null : steps.slice(i + 1).find((s) => s.served) ?? null;
}

/** The panel's list: each step numbered, with its picture, title and line, and where the learner is. */
export function pathHtml(steps: PathStep[], shown: string | null, p: Progress): string {
  const current = shown === null ? null : pathModel(shown);
  const here = steps.some((s) => s.model === current);
  return `<p class="path-what">Five networks, each a little more than the last, from one neuron to a whole GPT. Each
    opens with its own short walkthrough; every number in it is real.</p>
    ${current && !here ? `<p class="path-off">On screen now: ${esc(shown ?? "")}, which is not a step of the path.</p>` : ""}
    <ol class="path-steps">${steps.map((s, i) => {
      const state = s.model === current ? "here" : p.done.includes(s.model) ? "done" : p.visited.includes(s.model) ? "visited" : "";
      const mark = !s.served ? `<span class="path-mark coming">coming</span>`
        : state === "here" ? `<span class="path-mark here">you are here</span>`
        : state === "done" ? `<span class="path-mark done">✓ done</span>`
        : state === "visited" ? `<span class="path-mark visited">visited</span>` : "";
      const body = `<img src="${esc(s.picture)}" alt="" width="120" height="75" loading="lazy">
        <span class="path-text"><span class="path-title"><b>${i + 1}. ${esc(s.title)}</b>${mark}</span>
        <span class="path-learn">${esc(s.learn)}</span><code>${esc(s.model)}</code></span>`;
      const tip = !s.served ? `${s.model} is not served here yet` : s.start ? `Open ${s.model} with its walkthrough` : `Open ${s.model}`;
      return `<li class="${state}${s.served ? "" : " coming"}"${state === "here" ? ' aria-current="step"' : ""}>
        <button type="button" data-path="${esc(s.model)}" title="${esc(tip)}"${s.served ? "" : " disabled"}>${body}</button></li>`;
    }).join("")}</ol>`;
}

/** The link at the end of a step's walkthrough. */
export function nextHtml(next: PathStep): string {
  return `<span>Learning path:</span> <button type="button" data-path="${esc(next.model)}">Next step: ${esc(next.title)} →</button>`;
}

export interface PathHost {
  /** The model on screen (null: none of one model, as the scale view). */
  current(): string | null;
  /** Show this model, and its walkthrough at chapter.step (null: no walkthrough). */
  open(model: string, at: At | null): Promise<void>;
  /** The panel opened: the others that share its place close. */
  opened(): void;
}

export class LearningPath {
  private steps: PathStep[] = [];
  private loading: Promise<void> | null = null;
  private progress: Progress;

  constructor(private panel: HTMLElement, private next: HTMLElement, private host: PathHost) {
    let raw: string | null = null;
    try {
      raw = localStorage.getItem(KEY);
    } catch { /* private mode: nothing kept */ }
    this.progress = readProgress(raw);
    const click = (e: Event) => {
      const model = (e.target as HTMLElement).closest<HTMLElement>("[data-path]")?.dataset.path;
      const step = this.steps.find((s) => s.model === model);
      if (step?.served) void this.go(step);
      else if ((e.target as HTMLElement).closest("[data-path-close]")) this.close();
    };
    panel.addEventListener("click", click);
    next.addEventListener("click", click);
  }

  get active(): boolean {
    return !this.panel.hidden;
  }

  /** The steps, asked for once. */
  private load(): Promise<void> {
    this.loading ??= request("/api/learning-path").then(check).then((r) => r.json())
      .then((j: { steps: PathStep[] }) => { this.steps = j.steps; })
      .catch((e: Error) => { this.loading = null; throw e; });
    return this.loading;
  }

  async open(): Promise<void> {
    this.panel.hidden = false;
    this.host.opened();
    const body = this.panel.querySelector<HTMLElement>(".path-body")!;
    try {
      await this.load();
    } catch (e) {
      body.textContent = `Could not load the learning path: ${(e as Error).message}`;
      return;
    }
    this.render();
  }

  close(): void {
    this.panel.hidden = true;
  }

  /** Draw the list again (the model on screen changed). */
  render(): void {
    if (this.active && this.steps.length) {
      this.panel.querySelector<HTMLElement>(".path-body")!.innerHTML = pathHtml(this.steps, this.host.current(), this.progress);
    }
  }

  /** The walkthrough of `model` moved to `at` (null: closed): the progress kept, and the next step offered at its
   * last step. */
  walked(shown: string, at: At | null): void {
    const model = pathModel(shown);
    if (!this.steps.length) {
      if (at) void this.load().then(() => this.walked(shown, at), () => {});
      return;
    }
    this.save(recordWalk(this.progress, this.steps, shown, at));
    const s = this.steps.find((x) => x.model === model);
    const next = nextStep(this.steps, model);
    const last = !!(s?.end && at && at[0] === s.end[0] && at[1] === s.end[1]);
    this.next.hidden = !(last && next);
    this.next.innerHTML = last && next ? nextHtml(next) : "";
    this.render();
  }

  private async go(step: PathStep): Promise<void> {
    this.close();
    this.save(recordOpen(this.progress, step));
    await this.host.open(step.model, step.start ? [step.start[0], step.start[1]] : null);
  }

  private save(p: Progress): void {
    if (p === this.progress) return;
    this.progress = p;
    try {
      localStorage.setItem(KEY, JSON.stringify(p));
    } catch { /* private mode: kept for this visit only */ }
  }
}
