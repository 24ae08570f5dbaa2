// Every request the page makes to the model goes through here. Served by `llmviz serve`, it is a plain fetch.
// Embedded in a notebook widget (an iframe whose host sets window.__llmvizEmbedded), it is a message to the
// host page, which asks the Python kernel and posts the answer back: no HTTP server runs. In a static export
// (llmviz export), the page answers from the export's files (exported.ts).
import { exported, exportedRequest } from "./exported";
import { tracked } from "./progress";

interface Reply { llmviz: "response"; id: number; status: number; type: string; body: ArrayBuffer }

const waiting = new Map<number, (r: Response) => void>();
let next = 0;

export function embedded(): boolean {
  return !!(window as { __llmvizEmbedded?: boolean }).__llmvizEmbedded && window.parent !== window;
}

if (typeof window !== "undefined") {
  window.addEventListener("message", (e) => {
    const m = e.data as Reply;
    if (e.source !== window.parent || m?.llmviz !== "response") return;
    waiting.get(m.id)?.(new Response(m.body, { status: m.status, headers: { "content-type": m.type } }));
    waiting.delete(m.id);
  });
}

export function request(url: string, init: RequestInit = {}): Promise<Response> {
  if (exported()) return exportedRequest(url, init);
  if (!embedded()) return tracked(url, init, (u, i) => fetch(u, i));  // (a long one shows its progress: progress.ts)
  const id = ++next;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    window.parent.postMessage({ llmviz: "request", id, url, method: init.method ?? "GET", body: init.body ?? null }, "*");
  });
}

/** Tell the embedding host what changed (the pinned cell, the walkthrough's step), for its Python state. */
export function tellHost(key: string, value: unknown): void {
  if (embedded()) window.parent.postMessage({ llmviz: "state", key, value }, "*");
}
