// How far a long computation has got, and a way to stop waiting for it. Every request the page sends to the server
// (transport.ts) names its computation with an X-Llmviz-Task header; when one has not answered within a second and
// the server is computing it, a small box over the view says how far it has got ("Computing layer 3 of 16…", a bar,
// the time so far; GET /api/progress?task=..., about four times a second, only while waiting) with a Cancel button.
// Cancel aborts the request: the server stops the computation, and the page keeps what it showed. A request the
// server does not know a second after it was sent is not a computation (a long poll): it is not asked about again.
import type { components } from "./api-schema";

export type TaskProgress = components["schemas"]["TaskProgress"];
type TasksProgress = components["schemas"]["TasksProgress"];

export const TASK_HEADER = "X-Llmviz-Task";
export const SHOW_AFTER_MS = 1000;  // quicker answers show no box
export const POLL_MS = 250;
const CANCELLED_MS = 1500;  // how long "Cancelled" stays
export const CANCEL_REASON = "Cancelled";

/** A name for one request's computation: random, in the characters the server accepts. */
export function newTask(): string {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the box says: "Computing layer 3 of 16…" (the server's latest report as it is: for layers, the index of the
 * layer begun, as in blocks.3; the unit is the server's word, whatever it counts). */
export function progressText(p: TaskProgress | null): string {
  if (p?.waiting) return "Waiting for a free worker…";
  if (!p?.what) return "Computing…";
  if (p.total <= 0) return `Computing ${p.what}…`;
  return p.done >= p.total ? `Finishing (${p.what} ${p.total} of ${p.total} done)…` : `Computing ${p.what} ${p.done} of ${p.total}…`;
}

/** How full the bar is, from 0 to 1 (null: no total to measure against, the bar runs without one). */
export function progressFraction(p: TaskProgress | null): number | null {
  if (!p || p.waiting || p.total <= 0) return null;
  return Math.min(Math.max(p.done / p.total, 0), 1);
}

/** The time so far: "0.8 s", "12 s", "1 min 05 s". */
export function elapsedText(ms: number): string {
  const s = Math.max(ms, 0) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
}

/** Whether a request waiting `waitedMs` shows the box: past a second, and only if the server says it is computing it
 * (a long poll, or a request the server answers without computing, has no progress to show). */
export function shouldShow(waitedMs: number, known: boolean): boolean {
  return waitedMs >= SHOW_AFTER_MS && known;
}

/** Whether an error is a request the learner cancelled (or another abort): nothing to report as a failure. */
export function isCancelled(e: unknown): boolean {
  return e === CANCEL_REASON || (e instanceof Error && (e.name === "AbortError" || e.message === CANCEL_REASON)) ||
    (typeof DOMException !== "undefined" && e instanceof DOMException && e.name === "AbortError");
}

interface Watch {
  task: string; controller: AbortController; started: number; latest: TaskProgress | null;
  known: boolean;  // the server is computing it (its latest answer)
  asked: boolean;  // the server has been asked about it (unknown at the first asking: never asked again)
}

const watches = new Set<Watch>();
let timer: ReturnType<typeof setTimeout> | null = null;
let hideTimer: ReturnType<typeof setTimeout> | null = null;

/** Wait for `answer`, the request named `task` that `controller` aborts (sent at `started`, performance.now()),
 * showing the box while it takes long. */
export function watch<T>(task: string, controller: AbortController, started: number, answer: Promise<T>): Promise<T> {
  const w: Watch = { task, controller, started, latest: null, known: false, asked: false };
  watches.add(w);
  schedule();
  const end = () => {
    watches.delete(w);
    render();
  };
  answer.then(end, end);
  return answer;
}

/** Send a request through `send` with its computation named and a way to cancel it (an abort of init's own signal
 * aborts it too). */
export function tracked(url: string, init: RequestInit, send: (url: string, init: RequestInit) => Promise<Response>): Promise<Response> {
  const controller = new AbortController(), task = newTask();
  const outer = init.signal;
  if (outer) {
    if (outer.aborted) controller.abort(outer.reason);
    else outer.addEventListener("abort", () => controller.abort(outer.reason), { once: true });
  }
  const headers = new Headers(init.headers);
  headers.set(TASK_HEADER, task);
  return watch(task, controller, performance.now(), send(url, { ...init, headers, signal: controller.signal }));
}

function schedule() {
  const pending = [...watches].filter(polled);
  if (timer !== null || !pending.length) return;
  const oldest = Math.min(...pending.map((w) => w.started));
  timer = setTimeout(tick, Math.max(POLL_MS, SHOW_AFTER_MS - (performance.now() - oldest)));
}

/** Whether a request is still asked about: never yet, or known to the server when last asked. */
const polled = (w: Watch) => !w.asked || w.known;

/** Ask how far the requests waiting past a second have got (in one request), redraw the box, and come again while
 * any waits. */
async function tick() {
  const now = performance.now();
  const due = [...watches].filter((w) => polled(w) && now - w.started >= SHOW_AFTER_MS).slice(0, 32);
  if (due.length) {
    try {
      const q = new URLSearchParams(due.map((w) => ["task", w.task]));
      const r = await fetch(`/api/progress?${q}`);
      const { tasks } = r.ok ? await r.json() as TasksProgress : { tasks: null };
      if (tasks) {
        for (const w of due) {
          w.asked = true;
          w.latest = tasks[w.task] ?? null;
          w.known = !!w.latest;
        }
      }
    } catch {
      /* the server is not answering: the request itself will say so */
    }
  }
  timer = null;
  render();
  schedule();
}

function box() {
  return document.getElementById("progress");
}

/** The box: the longest-waiting request the server is computing (none: hidden, unless it is saying "Cancelled"). */
function render() {
  const el = box();
  if (!el) return;
  const now = performance.now();
  const shown = [...watches].filter((w) => shouldShow(now - w.started, w.known)).sort((a, b) => a.started - b.started)[0];
  if (!shown) {
    if (!hideTimer) el.hidden = true;
    return;
  }
  if (hideTimer) clearTimeout(hideTimer);
  hideTimer = null;
  const fraction = progressFraction(shown.latest);
  el.querySelector(".progress-text")!.textContent = progressText(shown.latest);
  el.querySelector(".progress-time")!.textContent = elapsedText(now - shown.started);
  const bar = el.querySelector<HTMLElement>(".progress-fill")!;
  bar.style.width = fraction === null ? "" : `${(fraction * 100).toFixed(1)}%`;
  el.classList.toggle("indeterminate", fraction === null);
  el.classList.remove("cancelled");
  el.querySelector<HTMLButtonElement>(".progress-cancel")!.hidden = false;
  el.hidden = false;
}

/** Cancel: abort every request waiting now; the box says so briefly. */
export function cancelAll() {
  const el = box();
  for (const w of [...watches]) w.controller.abort(new DOMException(CANCEL_REASON, "AbortError"));
  watches.clear();
  if (!el) return;
  el.querySelector(".progress-text")!.textContent = CANCEL_REASON;
  el.querySelector(".progress-time")!.textContent = "";
  el.querySelector<HTMLButtonElement>(".progress-cancel")!.hidden = true;
  el.classList.add("cancelled");
  el.hidden = false;
  if (hideTimer) clearTimeout(hideTimer);
  hideTimer = setTimeout(() => {
    hideTimer = null;
    el.classList.remove("cancelled");
    render();
  }, CANCELLED_MS);
}

/** Wire the box's Cancel button. */
export function setUpProgress() {
  const el = box();
  el?.querySelector(".progress-cancel")?.addEventListener("click", cancelAll);
}
