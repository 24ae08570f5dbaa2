// The server's API, typed by the types generated from its OpenAPI schema (api-schema.ts). Every failure becomes an Error whose message is the server's `detail`.
import type { components } from "./api-schema";
import type { Edit } from "./edits";
import { parseScene, type SceneData } from "./scenedata";
import { parseTrace, type Trace } from "./trace";
import { request } from "./transport";
import type { Walk } from "./walkstate";

type Schemas = components["schemas"];
export type ModelInfo = Schemas["ModelInfo"];

export async function check(res: Response): Promise<Response> {
  if (res.ok) return res;
  let detail = `${res.status} ${res.statusText}`;
  try {
    detail = (await res.json()).detail ?? detail;
  } catch {
    /* not JSON: keep the status line */
  }
  throw new Error(detail);
}

export const post = (url: string, body: unknown) =>
  request(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

export async function fetchModels(started?: Promise<Response>): Promise<ModelInfo[]> {
  return (await check(await (started ?? request("/api/models")))).json();
}

export async function fetchScene(req: { model?: string; text?: string; n_pos?: number; heads?: string; past?: number;
  tower?: boolean; edits?: Edit[]; gradients?: boolean; quant_error?: boolean }): Promise<SceneData> {
  return parseScene(await (await check(await post("/api/scene", req))).arrayBuffer());
}

/** A response read to the end by index.html's early request, before this code loaded. */
export interface EarlyResponse { ok: boolean; status: number; statusText: string; body: ArrayBuffer }

/** The first scene, from the request index.html sent while this code was loading. */
export async function sceneFrom(early: Promise<EarlyResponse>): Promise<SceneData> {
  const r = await early;
  if (!r.ok) {
    let detail = `${r.status} ${r.statusText}`;
    try {
      detail = JSON.parse(new TextDecoder().decode(r.body)).detail ?? detail;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new Error(detail);
  }
  return parseScene(r.body);
}

export async function fetchWalkthrough(model: string, input?: string): Promise<Walk> {
  const q = new URLSearchParams({ model, ...(input !== undefined ? { input } : {}) });
  return (await check(await request(`/api/walkthrough?${q}`))).json();
}

export type LensTop = Schemas["LensTop"];
export type Lens = Schemas["Lens"];

export async function fetchLens(model: string, text: string, k = 5): Promise<Lens> {
  return (await check(await post("/api/lens", { model, text, k }))).json();
}

export type Branch = Schemas["Branch"];
export type BranchRoot = Schemas["BranchRoot"];

export async function fetchBranches(model: string, tokens: number[], k: number, depth: number): Promise<BranchRoot> {
  return (await check(await post("/api/branches", { model, tokens, k, depth }))).json();
}

/** Every head's attention pattern (float16 bits) and the tensors' names, in layer order. */
export async function fetchAttention(model: string, text: string): Promise<Trace> {
  return parseTrace(await (await check(await post("/api/attention", { model, text }))).arrayBuffer());
}
