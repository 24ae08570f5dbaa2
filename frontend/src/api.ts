// The server's API, typed. Every failure becomes an Error whose message is the server's `detail`.
import { parseTrace, type Trace } from "./trace";

export interface ModelInfo {
  name: string;
  description: string;
  n_params: number;
  has_weights: boolean;
  config: { n_layer: number; n_head: number; n_embd: number; vocab_size: number; n_ctx: number };
}

async function check(res: Response): Promise<Response> {
  if (res.ok) return res;
  let detail = `${res.status} ${res.statusText}`;
  try {
    detail = (await res.json()).detail ?? detail;
  } catch {
    /* not JSON: keep the status line */
  }
  throw new Error(detail);
}

export async function fetchModels(): Promise<ModelInfo[]> {
  return (await check(await fetch("/api/models"))).json();
}

export async function fetchTrace(model: string, text: string): Promise<Trace> {
  const res = await fetch("/api/trace", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, text }),
  });
  return parseTrace(await (await check(res)).arrayBuffer());
}
