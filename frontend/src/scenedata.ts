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
  /** A quantized model's error scene: the stored weights' cells as stored − original, the others as the atlas. */
  error?: Uint16Array;
}

export function parseScene(bytes: ArrayBuffer): SceneData {
  const t = parseTrace(bytes);
  const atlas = t.tensors.get("atlas");
  if (atlas?.dtype !== "F16") throw new Error("scene payload has no float16 atlas");
  const change = t.tensors.get("change"), grad = t.tensors.get("grad"), error = t.tensors.get("error");
  return {
    info: JSON.parse(t.metadata.scene),
    atlas: { height: atlas.shape[0], width: atlas.shape[1], data: atlas.data as Uint16Array },
    ...(change?.dtype === "F16" ? { change: change.data as Uint16Array } : {}),
    ...(grad?.dtype === "F16" ? { grad: grad.data as Uint16Array } : {}),
    ...(error?.dtype === "F16" ? { error: error.data as Uint16Array } : {}),
  };
}

/** How far out a section's frame is drawn around its blocks: a layer's around its parts' frames. */
export function framePad(sections: Section[], s: Section): number {
  return sections.some((c) => c.parent === s.key) ? 6 : 3;
}

/** An image's block (`wrap` set: its pixels laid row by row, `wrap` a row, as the image): the pixel a displayed cell is. */
export function wrappedIndex(b: BlockInfo, row: number, col: number): number {
  return row * b.wrap! + col;
}

/** An image's block: the rectangles of cells (rows r0 … r1, columns c0 … c1) that pixels lo … hi cover, row by row: a
 * part of the first row, the whole rows between, a part of the last (one rectangle for pixels of one row). */
export function wrappedRects(b: BlockInfo, lo: number, hi: number): { r0: number; r1: number; c0: number; c1: number }[] {
  const w = b.wrap!, ra = Math.floor(lo / w), ca = lo % w, rb = Math.floor(hi / w), cb = hi % w;
  if (ra === rb) return [{ r0: ra, r1: ra, c0: ca, c1: cb }];
  const out = [];
  if (ca > 0) out.push({ r0: ra, r1: ra, c0: ca, c1: w - 1 });
  const top = ca > 0 ? ra + 1 : ra, bottom = cb < w - 1 ? rb - 1 : rb;
  if (top <= bottom) out.push({ r0: top, r1: bottom, c0: 0, c1: w - 1 });
  if (cb < w - 1) out.push({ r0: rb, r1: rb, c0: 0, c1: cb });
  return out;
}
