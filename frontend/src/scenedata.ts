// The scene the server sends (POST /api/scene): block layout from the model graph plus a float16 atlas.
import { parseTrace } from "./trace";
import type { Kind } from "./colors";

export interface AxisInfo { label: string; description: string; color: string }

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
  z_step: number;
  dims: [string, number][]; // the tensor's axes, in its own order, with their sizes
  tile: [number, number]; // tensor cells per displayed cell, across and down
  scale: number;
  slabs: [number, number, number, number][] | null; // atlas x, y, width, height per slab
}

export interface Section { key: string; title: string; x0: number; x1: number; y0: number; y1: number }

export interface SceneInfo {
  model: { name: string; n_params: number; has_weights: boolean; description: string; config: Record<string, unknown> };
  n_pos: number;
  axes: Record<string, AxisInfo>;
  ops: Record<string, { formula: string; description: string }>;
  blocks: BlockInfo[];
  links: [number, number][];
  sections: Section[];
  bounds: [number, number, number, number];
  max_display: { weight: number; computed: number };
  tokens?: number[];
  token_strs?: string[];
  predicted?: string[];
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
