// The scene the server sends (POST /api/scene): block layout from the model graph plus a float16 atlas. Its JSON's
// types are generated from the server's schema (SceneInfo in api-schema.ts).
import { parseTrace } from "./trace";
import type { components } from "./api-schema";

type Schemas = components["schemas"];
export type AxisInfo = Schemas["AxisInfo"];
export type BlockInfo = Schemas["BlockInfo"];
export type Section = Schemas["Section"];
export type Candidate = Schemas["Candidate"];
export type Prediction = Schemas["Prediction"];
export type ModelConfig = Schemas["ModelConfig"];
export type SceneInfo = Schemas["SceneInfo"];

export interface SceneData {
  info: SceneInfo;
  atlas: { width: number; height: number; data: Uint16Array }; // float16 bits
  /** An edited pass's: every displayed cell's edited − clean value, packed as the atlas (float16 bits). */
  change?: Uint16Array;
  /** A scene with gradients: every displayed cell's ∂loss/∂x, packed as the atlas (float16 bits). */
  grad?: Uint16Array;
}

export function parseScene(bytes: ArrayBuffer): SceneData {
  const t = parseTrace(bytes);
  const atlas = t.tensors.get("atlas");
  if (atlas?.dtype !== "F16") throw new Error("scene payload has no float16 atlas");
  const change = t.tensors.get("change"), grad = t.tensors.get("grad");
  return {
    info: JSON.parse(t.metadata.scene),
    atlas: { height: atlas.shape[0], width: atlas.shape[1], data: atlas.data as Uint16Array },
    ...(change?.dtype === "F16" ? { change: change.data as Uint16Array } : {}),
    ...(grad?.dtype === "F16" ? { grad: grad.data as Uint16Array } : {}),
  };
}

/** How far out a section's frame is drawn around its blocks: a layer's around its parts' frames. */
export function framePad(sections: Section[], s: Section): number {
  return sections.some((c) => c.parent === s.key) ? 6 : 3;
}
