// The scene the server sends (POST /api/scene): block layout from the model graph plus a float16 atlas.
import { parseTrace } from "./trace";
import type { Kind } from "./colors";

export interface AxisInfo { label: string; description: string; color: string; named_by?: string | null }

export interface BlockInfo {
  tensor: string;
  short: string;
  title: string;
  kind: Kind;
  op: string | null;
  group: string;
  layer: number | null;
  axes: [string | null, string | null, string | null]; // across, down, depth
  cols: number;
  rows: number;
  depth: number;
  merged: boolean;
  residual: boolean;
  x: number;
  y: number;
  z: number;
  z_step: number; // distance between heads stacked in depth
  x_step: number; // distance between heads side by side
  causal: boolean; // a key after its query is masked: columns (keys) right of the diagonal
  dims: [string, number][]; // the tensor's axes, in its own order, with their sizes
  tile: [number, number]; // tensor cells per displayed cell, across and down
  scale: number;
  slabs: [number, number, number, number][] | null; // atlas x, y, width, height per slab
}

export interface Section { key: string; title: string; parent: string | null; x0: number; x1: number; y0: number; y1: number }

export interface Candidate { id: number; token: string; prob: number; percent: string }

export interface Prediction {
  position: number;
  top: Candidate[];
  // the greedy answer; after an input with part of the answer written, its first `written` tokens are that part
  answer: { ids: number[]; tokens: string[]; text: string; probs: number[]; written?: number } | null;
}

export interface ModelConfig {
  n_layer: number; n_head: number; n_embd: number; vocab_size: number; n_ctx: number;
  d_head?: number;  // channels per head: the server always sends it
  task?: string; task_tokens?: number | null; answer_tokens?: number | null;
  [key: string]: unknown;
}

export interface SceneInfo {
  // param_parts: where the parameters live (embedding, attention, mlp, other), adding up to n_params; always sent
  model: { name: string; n_params: number; param_parts?: Record<string, number>; has_weights: boolean; description: string;
    config: ModelConfig };
  n_pos: number;
  axes: Record<string, AxisInfo>;
  ops: Record<string, { formula: string; description: string; symbol?: string | null }>;
  blocks: BlockInfo[];
  links: [number, number][];
  sections: Section[];
  bounds: [number, number, number, number];
  bands?: [number, number, number, number][];  // the residual stream's band down each column of layers: x0, top, x1, bottom
  max_display: { weight: number; computed: number };
  tokens?: number[];
  token_strs?: string[];
  text?: string; // the input (with a KV cache, the whole context) as a person reads it: decoded by the tokenizer
  predicted?: string[];
  axis_names?: Record<string, string[]>; // what each index of a named axis stands for (tokens)
  prediction?: Prediction | null;
  past?: number;  // a generation step's scene: positions whose keys and values came from the KV cache
  context?: number[];  // its tokens, the cached ones first
}

export interface SceneData {
  info: SceneInfo;
  atlas: { width: number; height: number; data: Uint16Array }; // float16 bits
}

export function parseScene(bytes: ArrayBuffer): SceneData {
  const t = parseTrace(bytes);
  const atlas = t.tensors.get("atlas");
  if (!atlas || atlas.dtype !== "F16") throw new Error("scene payload has no float16 atlas");
  return {
    info: JSON.parse(t.metadata.scene),
    atlas: { height: atlas.shape[0], width: atlas.shape[1], data: atlas.data as Uint16Array },
  };
}

/** How far out a section's frame is drawn around its blocks: a layer's around its parts' frames. */
export function framePad(sections: Section[], s: Section): number {
  return sections.some((c) => c.parent === s.key) ? 6 : 3;
}
