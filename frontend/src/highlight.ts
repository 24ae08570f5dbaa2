// Rectangles over the cells a hovered number came from (its sources) and an outline on the number itself,
// across blocks: one instanced mesh, drawn just in front of the blocks' faces.
import * as THREE from "three";
import { slabGeometry } from "./blocks";
import { wrappedIndex, wrappedRects, type BlockInfo } from "./scenedata";
import type { Region } from "./tooltip";

// Outside every data palette (no data colour is a bright lime, nor black), so sources stand out at any zoom.
export const SOURCE_COLOR = 0x66ff00;
// Where an intervention was made: a magenta halo (as the walkthrough's subject's), the colour of the edits panel.
export const EDIT_COLOR = 0xd6336c;
// A guess's row before the learner picks: one flat grey over its cells, so no cell stands out.
export const COVER_COLOR = 0xced4da;
const ROLE_COLORS: Record<string, number> = { input: SOURCE_COLOR, weight: SOURCE_COLOR, bias: SOURCE_COLOR,
  aggregate: SOURCE_COLOR, target: 0x000000, cover: COVER_COLOR, subject: SOURCE_COLOR, kept: SOURCE_COLOR, edit: EDIT_COLOR,
  block: SOURCE_COLOR };
const MAX = 512;
/** The shader's mode per role: 0 a translucent fill, 1 an outline, 2 an opaque cover, 3 a halo. (kept: what a
 * walkthrough step keeps in view beside its subject, as a KV cache beside the new key: outlined, undimmed; block: a
 * quantized weight's block, the cells that share its scale: outlined.) */
const MODE: Record<string, number> = { target: 1, cover: 2, subject: 3, kept: 1, edit: 3, block: 1 };
// The walkthrough's subject (what a step talks about): a lime halo with dark edges just outside its cells, so it
// shows at any zoom on any colour and leaves the numbers readable. Its width, in cells.
export const HALO = 0.45;

const VERTEX = /* glsl */ `
in vec4 iRect;   // x, y (top-left), width, height in world units
in vec2 iZ;      // z of the face, and the mode: 0 a fill, 1 an outline, 2 a cover
in vec3 iColor;
out vec2 vUv; flat out vec3 vColor; flat out float vOutline; flat out vec2 vSize;
void main() {
  vec2 p = position.xy + 0.5;
  vec3 world = vec3(iRect.x + p.x * iRect.z, iRect.y - (1.0 - p.y) * iRect.w, iZ.x + 0.05);
  vUv = p; vColor = iColor; vOutline = iZ.y; vSize = iRect.zw;
  gl_Position = projectionMatrix * modelViewMatrix * vec4(world, 1.0);
}`;

const FRAGMENT = /* glsl */ `
precision highp float;
in vec2 vUv; flat in vec3 vColor; flat in float vOutline; flat in vec2 vSize;
out vec4 fragColor;
void main() {
  vec2 fw = fwidth(vUv);
  float edge = min(min(vUv.x, 1.0 - vUv.x) / fw.x, min(vUv.y, 1.0 - vUv.y) / fw.y);
  if (vOutline > 2.5) {  // a halo: outside the region's cells (the quad is HALO larger on each side)
    vec2 near = min(vUv, 1.0 - vUv) * vSize;  // world units from the quad's outer edge
    float d = min(near.x, near.y);
    if (d > ${HALO.toFixed(3)}) discard;
    float inner = (${HALO.toFixed(3)} - d) / max(fwidth(d), 1e-6);  // pixels from the region's own edge
    fragColor = edge < 1.5 || inner < 1.5 ? vec4(0.12, 0.14, 0.16, 1.0) : vec4(vColor, 1.0);
  } else if (vOutline > 1.5) {  // a cover: opaque, with a darker rim
    fragColor = vec4(edge < 2.5 ? vColor * 0.7 : vColor, 1.0);
  } else if (vOutline > 0.5) {
    if (edge > 3.0) discard;
    fragColor = vec4(edge < 1.5 ? vec3(1.0) : vColor, 1.0);
  } else {
    fragColor = edge < 1.2 ? vec4(0.1, 0.1, 0.1, 1.0) : edge < 3.5 ? vec4(vColor, 1.0) : vec4(vColor, 0.6);
  }
}`;

export class Highlights {
  readonly mesh: THREE.Mesh;
  private rect = new Float32Array(MAX * 4);
  private z = new Float32Array(MAX * 2);
  private color = new Float32Array(MAX * 3);
  private geometry = new THREE.InstancedBufferGeometry();

  constructor() {
    this.geometry.copy(new THREE.PlaneGeometry(1, 1) as unknown as THREE.InstancedBufferGeometry);
    this.geometry.setAttribute("iRect", new THREE.InstancedBufferAttribute(this.rect, 4));
    this.geometry.setAttribute("iZ", new THREE.InstancedBufferAttribute(this.z, 2));
    this.geometry.setAttribute("iColor", new THREE.InstancedBufferAttribute(this.color, 3));
    this.geometry.instanceCount = 0;
    const material = new THREE.ShaderMaterial({ glslVersion: THREE.GLSL3, vertexShader: VERTEX, fragmentShader: FRAGMENT,
      transparent: true, depthWrite: false });
    this.mesh = new THREE.Mesh(this.geometry, material);
    this.mesh.frustumCulled = false;
    this.mesh.renderOrder = 10;
    this.mesh.visible = false; // not drawn (nor its shader compiled) before the first hover
  }

  /** Show these regions; `find` gives the block (and its x offset) that draws a tensor. */
  set(regions: Region[], find: (tensor: string) => { block: BlockInfo; offsetX: number } | null): void {
    let n = 0;
    for (const r of regions) {
      const hit = find(r.tensor);
      if (!hit) continue;
      const { block: b, offsetX } = hit;
      for (const rect of regionRects(b, r)) {
        if (n >= MAX) break;
        const pad = MODE[r.role] === 3 ? HALO : 0;
        this.rect.set([rect.x + offsetX - pad, rect.y + pad, rect.w + 2 * pad, rect.h + 2 * pad], n * 4);
        this.z.set([rect.z, MODE[r.role] ?? 0], n * 2);
        this.color.set(new THREE.Color(ROLE_COLORS[r.role] ?? 0xf59f00).toArray(), n * 3);
        n++;
      }
    }
    this.geometry.instanceCount = n;
    this.mesh.visible = n > 0;
    for (const name of ["iRect", "iZ", "iColor"]) (this.geometry.getAttribute(name) as THREE.BufferAttribute).needsUpdate = true;
  }

  clear(): void {
    this.geometry.instanceCount = 0;
    this.mesh.visible = false;
  }

  get count(): number {
    return this.geometry.instanceCount;
  }
}

/** The rectangle (one per slab) that a region of a tensor covers on its block, snapped to displayed cells. */
export function regionRects(b: BlockInfo, r: Region): { x: number; y: number; w: number; h: number; z: number }[] {
  const [ax, ay, az] = b.axes;
  const grid = b.slabs?.[0] ? [b.slabs[0][2], b.slabs[0][3]] : [b.cols, b.rows];
  const cellW = b.cols / grid[0], cellH = b.rows / grid[1];
  const span = (axis: string | null, tile: number, n: number): [number, number] =>
    axis && r.ranges[axis] ? [Math.floor(r.ranges[axis][0] / tile), Math.floor(r.ranges[axis][1] / tile)] : [0, n - 1];
  const [c0, c1] = span(ax, b.tile[0], grid[0]);
  const [r0, r1] = span(ay, b.tile[1], grid[1]);
  const cells = b.wrap && ax && r.ranges[ax] ? wrappedRects(b, ...r.ranges[ax]) : [{ r0, r1, c0, c1 }];  // (an image's)
  const [s0, s1] = az && r.ranges[az] && !b.merged ? r.ranges[az] : [0, 0];
  const out = [];
  for (let s = s0; s <= s1; s++) {
    const g = slabGeometry(b, s);
    for (const c of cells) {
      out.push({ x: g.x + c.c0 * cellW, y: b.y - c.r0 * cellH, w: (c.c1 - c.c0 + 1) * cellW, h: (c.r1 - c.r0 + 1) * cellH, z: g.z });
    }
  }
  return out;
}

/** The region of the tensor that a displayed cell stands for (a whole tile when downsampled). */
export function cellRegion(b: BlockInfo, slab: number, col: number, row: number): Record<string, [number, number]> {
  const dims = Object.fromEntries(b.dims);
  const out: Record<string, [number, number]> = {};
  const [ax, ay, az] = b.axes;
  if (ax && b.wrap) out[ax] = [wrappedIndex(b, row, col), wrappedIndex(b, row, col)];  // an image's pixel
  else if (ax) out[ax] = [col * b.tile[0], Math.min((col + 1) * b.tile[0], dims[ax]) - 1];
  if (ay) out[ay] = [row * b.tile[1], Math.min((row + 1) * b.tile[1], dims[ay]) - 1];
  if (az) out[az] = b.merged ? [0, 0] : [slab, slab];
  return out;
}
