// The server's API, typed. Every failure becomes an Error whose message is the server's `detail`.
import { parseScene, type SceneData } from "./scenedata";
import type { Explanation } from "./tooltip";

export interface ModelInfo {
  name: string;
  description: string;
  example: string | null;
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

const post = (url: string, body: unknown) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

export async function fetchModels(started?: Promise<Response>): Promise<ModelInfo[]> {
  return (await check(await (started ?? fetch("/api/models")))).json();
}

export async function fetchScene(req: { model?: string; text?: string; n_pos?: number }): Promise<SceneData> {
  return sceneFrom(post("/api/scene", req));
}

/** A scene from a request already sent (index.html starts the first one before this code loads). */
export async function sceneFrom(response: Promise<Response>): Promise<SceneData> {
  return parseScene(await (await check(await response)).arrayBuffer());
}

export async function fetchExplanation(req: { model: string; tokens: number[]; tensor: string;
  region: Record<string, [number, number]> }): Promise<Explanation> {
  return (await check(await post("/api/explain", req))).json();
}
