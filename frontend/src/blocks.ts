// Every block of one model as a single instanced mesh: one box per slab (per head), its cells drawn by a
// shader from one float16 atlas texture. Plus the links between blocks, the section frames and the
// residual-stream band, each one draw call. Positions and sizes come from the server's layout.
import * as THREE from "three";
import { FAMILIES, GRADIENT, KINDS, MASKED, QUANT_ERROR, STRUCTURE, hexToRgb, type Kind } from "./colors";
import { framePad, type BlockInfo, type SceneData } from "./scenedata";

const VERTEX = /* glsl */ `
in vec3 iPos;    // top-left-front corner of the slab
in vec3 iSize;   // width, height, thickness (world units = cells)
in vec4 iAtlas;  // atlas x, y and displayed width, height (width 0: no data)
in vec4 iStyle;  // kind, scale (largest |value|), flags (1: causal mask; 2: not fetched by its engine), unused
in vec3 iColX;   // colour of the axis across (the ruler along the top edge)
in vec3 iColY;   // colour of the axis down (the ruler along the left edge)
in vec2 iCells;  // true columns and rows of the slab
in float iFocus; // 1: drawn at full strength while others are dimmed (a hovered cell's sources)
in float iOrder; // where the block comes in the forward pass, from 0 (the input) to 1 (the output)
out vec2 vUv;
out float vFront;
out vec3 vNormal;
flat out float vPulse;
flat out vec4 vAtlas;
flat out vec4 vStyle;
flat out vec3 vColX;
flat out vec3 vColY;
flat out vec2 vCells;
flat out float vSelected;
flat out float vDim;
flat out vec2 vReveal;  // fraction of the cells shown (2: all), and 0 to show rows in order, 1 columns, 2 the mask
uniform vec2 uSelected; // first and last instance of the selected block
uniform vec4 uReveal;   // first and last instance of a block being revealed, the fraction shown, rows (0), columns (1) or mask (2)
uniform float uDim;     // 1 while a hovered cell's sources are shown: the other blocks fade
uniform float uPulse;   // the flow pulse's front, 0 to 1 through the forward pass (below 0: none)
void main() {
  vec3 p = position + 0.5;
  vec3 world = vec3(iPos.x + p.x * iSize.x, iPos.y - (1.0 - p.y) * iSize.y, iPos.z - (1.0 - p.z) * iSize.z);
  vUv = vec2(p.x, 1.0 - p.y);
  vFront = normal.z;
  vNormal = normal;
  // The pulse: blocks not reached yet wait faded (3), the ones at its front glow (up to 1), those behind it are done (0).
  vPulse = uPulse < 0.0 || iOrder < 0.0 ? 0.0 : iOrder > uPulse ? 3.0 : exp(-pow((uPulse - iOrder) / 0.04, 2.0));
  vAtlas = iAtlas; vStyle = iStyle; vColX = iColX; vColY = iColY; vCells = iCells;
  float id = float(gl_InstanceID);
  vSelected = (id >= uSelected.x && id <= uSelected.y) ? 1.0 : 0.0;
  vDim = uDim * (1.0 - iFocus);
  vReveal = (id >= uReveal.x && id <= uReveal.y) ? uReveal.zw : vec2(2.0, 0.0);
  gl_Position = projectionMatrix * modelViewMatrix * vec4(world, 1.0);
}`;

const FRAGMENT = /* glsl */ `
precision highp float;
precision highp sampler2D;
uniform sampler2D uAtlas;
uniform vec3 uNeg[6];  // each kind's hues (KINDS), then the gradients' (GRADIENT_KIND), the errors' (ERROR_KIND)
uniform vec3 uPos[6];
uniform vec3 uSide[6];
uniform vec3 uMasked;
uniform vec3 uStructure;
uniform vec3 uBand;
uniform vec3 uGround;  // the scene's background: a dimmed block fades towards it
in vec2 vUv;
in float vFront;
in vec3 vNormal;
flat in float vPulse;
flat in vec4 vAtlas;
flat in vec4 vStyle;
flat in vec3 vColX;
flat in vec3 vColY;
flat in vec2 vCells;
flat in float vSelected;
flat in float vDim;
flat in vec2 vReveal;
out vec4 fragColor;
void main() {
  int kind = int(vStyle.x + 0.5);
  if (kind == 6) {  // (BAND_KIND) the residual-stream band behind each column: chevrons pointing down, the way it flows
    vec2 at = vUv * vCells;  // world units from the band's top-left
    float v = (at.y + abs(at.x - 0.5 * vCells.x)) / (1.5 * vCells.x);
    float mark = smoothstep(0.0, 0.05, fract(v)) * (1.0 - smoothstep(0.14, 0.19, fract(v)));
    fragColor = vec4(mix(uBand, uBand * 0.9, mark), 1.0);
    return;
  }
  if (abs(vFront) < 0.5) {  // the sides: the family's tone, lit from the upper right (a little ambient light)
    float light = 0.6 + 0.4 * max(dot(vNormal, normalize(vec3(0.45, 0.8, 0.4))), 0.0);
    vec3 side = mix(uSide[kind], vec3(1.0), 0.45) * light;
    fragColor = vec4(mix(side, uGround, 0.75 * max(vDim, 0.8 * float(vPulse > 2.5))), 1.0);
    return;
  }
  // Front and back show the cells (from behind, mirrored as through glass), so no angle hides them.
  bool hasData = vAtlas.z > 0.0;
  vec2 grid = hasData ? vAtlas.zw : vCells;
  vec2 c = vUv * grid;
  vec2 cell = min(floor(c), grid - 1.0);
  vec2 tile = hasData ? ceil(vCells / vAtlas.zw) : vec2(1.0);  // tensor cells per displayed cell
  bool causal = mod(vStyle.z, 2.0) >= 1.0;
  bool masked = causal && cell.x * tile.x > cell.y * tile.y + tile.y - 1.0;  // a key (column) after its query (row)
  vec3 col;
  if (hasData && !masked) {
    float v = texelFetch(uAtlas, ivec2(vAtlas.xy + cell), 0).r;
    if (isinf(v) && v < 0.0) {
      masked = true;
    } else {
      float t = clamp(v / max(vStyle.y, 1e-30), -1.0, 1.0);
      col = mix(vec3(1.0), t < 0.0 ? uNeg[kind] : uPos[kind], pow(abs(t), 0.6));
    }
  } else if (!hasData) {
    col = vStyle.z >= 2.0 ? uStructure : mix(uStructure, uPos[kind], 0.18);  // (not fetched: plain grey)
  }
  if (masked) {  // masked: grey with diagonal hatching
    col = uMasked * (mod(gl_FragCoord.x + gl_FragCoord.y, 8.0) < 4.0 ? 0.9 : 1.0);
  }
  if (vReveal.x < 1.5 && vReveal.y > 1.5) {  // the causal mask appearing row by row
    if (masked && (cell.y + 0.5) / grid.y > vReveal.x) col = vec3(1.0);
  } else if (vReveal.x < 1.5) {  // being revealed in order: cells not yet reached are blank
    float at = vReveal.y < 0.5 ? (cell.y + 0.5) / grid.y : (cell.x + 0.5) / grid.x;
    if (at > vReveal.x) col = vec3(0.96);
  }
  // Grid lines between cells, faded out when cells get smaller than a few pixels.
  vec2 fw = fwidth(c);
  vec2 edge = min(fract(c), 1.0 - fract(c)) / max(fw, vec2(1e-6));
  float visible = 1.0 - smoothstep(0.12, 0.35, max(fw.x, fw.y));
  col = mix(col, col * 0.72, visible * (1.0 - smoothstep(0.0, 1.0, min(edge.x, edge.y))));
  // Axis rulers: the top edge in the colour of the axis across, the left edge in the colour of the axis down.
  vec2 fu = fwidth(vUv);
  float ruler = 3.0;
  if (vColX.x >= 0.0 && vUv.y < ruler * fu.y) col = vColX;
  if (vColY.x >= 0.0 && vUv.x < ruler * fu.x) col = vColY;
  float border = min(min(vUv.x, 1.0 - vUv.x) / fu.x, min(vUv.y, 1.0 - vUv.y) / fu.y);
  if (vSelected > 0.5 && border < 4.0) col = vec3(1.0, 0.75, 0.0);
  else if (border < 1.0) col *= 0.55;
  if (vFront < -0.5) col *= 0.85;
  if (vPulse < 2.5) col = mix(col, vec3(1.0, 0.78, 0.2), 0.55 * vPulse);  // the pulse's front: warm light
  float fade = vPulse > 2.5 ? 0.8 : 0.0;  // not reached yet
  fragColor = vec4(mix(col, uGround, 0.75 * max(vDim, fade)), 1.0);
}`;

const GRADIENT_KIND = KINDS.length, ERROR_KIND = KINDS.length + 1, BAND_KIND = KINDS.length + 2;  // (after the data families)

export interface SlabRef { block: number; slab: number }

export interface BuiltModel {
  group: THREE.Group;
  slabs: SlabRef[];         // instance -> block and slab
  firstInstance: number[];  // block -> its first instance
  boxes: THREE.Box3[];      // block -> its bounding box (all slabs)
  material: THREE.ShaderMaterial;
  /** Dim every block but these (null: none dimmed). */
  focus(blocks: Set<number> | null): void;
  /** Show only the first `fraction` of a block's cells, row by row or column by column, or of its causal mask
   * (null: all shown). */
  reveal(block: number | null, along?: "rows" | "cols" | "mask", fraction?: number): void;
  /** Draw these blocks in one palette on one colour scale (a lookup and the row it copies); null: each its own. */
  restyle(blocks: Map<number, { kind: Kind | "gradient" | "error"; scale: number }> | null): void;  // (over colourBy's own)
  /** Colour the cells by the atlas's values, by how much each changed from the clean pass (an edited pass's scene),
   * by the loss's gradient (a scene with gradients: every block in the gradients' palette, on its own scale), or a
   * quantized model's weights by their quantization error (its error scene: the stored weights in the errors'
   * palette, on one scale, the largest error of them all; the other blocks by their values). */
  colourBy(what: "values" | "change" | "gradients" | "error"): void;
  dispose(): void;
}

const NO_AXIS = [-1, -1, -1];

function axisColor(data: SceneData, axis: string | null): number[] {
  return axis ? hexToRgb(data.info.axes[axis].color) : NO_AXIS;
}

/** A block's width with all its heads side by side (its one slab's width otherwise). */
export function blockWidth(b: BlockInfo): number {
  return b.cols + (b.depth - 1) * b.x_step;
}

/** Slab `s` of a block (one head): its top-left-front corner and thickness. Heads sit side by side
 * (x_step) or one behind the other (z_step). */
export function slabGeometry(b: BlockInfo, s: number): { x: number; y: number; z: number; thick: number } {
  if (b.merged) return { x: b.x, y: b.y, z: b.z, thick: b.depth * b.z_step };
  const thick = b.z_step > 0 ? Math.min(1, b.z_step * 0.5) : slabThickness(b);
  return { x: b.x + s * b.x_step, y: b.y, z: b.z - s * b.z_step, thick };
}

/** How thick a slab is: a solid that reads as one at a three-quarter view, a twenty-fifth of its longer side, between
 * one cell and half its shorter side. */
export function slabThickness(b: { cols: number; rows: number }): number {
  return Math.max(1, Math.min(0.04 * Math.max(b.cols, b.rows), 0.5 * Math.min(b.cols, b.rows)));
}

export function buildModel(data: SceneData, offsetX = 0): BuiltModel {
  const { blocks } = data.info;
  const slabs: SlabRef[] = [];
  const firstInstance: number[] = [];
  blocks.forEach((b, i) => {
    firstInstance.push(slabs.length);
    const n = b.merged ? 1 : b.depth;
    for (let s = 0; s < n; s++) slabs.push({ block: i, slab: s });
  });
  const bands = data.info.bands ?? [];
  const n = slabs.length + bands.length; // the last instances are the residual stream's bands, one per column
  const attr = (size: number) => new Float32Array(n * size);
  const iPos = attr(3), iSize = attr(3), iAtlas = attr(4), iStyle = attr(4), iColX = attr(3), iColY = attr(3), iCells = attr(2);
  const iFocus = attr(1), iOrder = attr(1);
  const boxes = blocks.map(() => new THREE.Box3());
  slabs.forEach(({ block, slab }, k) => {
    const b = blocks[block];
    const g = slabGeometry(b, slab);
    iPos.set([g.x + offsetX, g.y, g.z], k * 3);
    iSize.set([b.cols, b.rows, g.thick], k * 3);
    const a = b.slabs?.[slab];
    iAtlas.set(a ? a : [0, 0, 0, 0], k * 4);
    iStyle.set([KINDS.indexOf(b.kind), b.scale, (b.causal ? 1 : 0) + (b.fetched === false ? 2 : 0), 0], k * 4);
    iColX.set(axisColor(data, b.axes[0]), k * 3);
    iColY.set(axisColor(data, b.wrap ? b.axes[0] : b.axes[1]), k * 3);  // (an image's rows: its pixels too)
    iCells.set([b.cols, b.rows], k * 2);
    iOrder[k] = block / Math.max(blocks.length - 1, 1);
    boxes[block].expandByPoint(new THREE.Vector3(g.x + offsetX, g.y - b.rows, g.z - g.thick));
    boxes[block].expandByPoint(new THREE.Vector3(g.x + offsetX + b.cols, g.y, g.z));
  });
  // The bands stand behind the residual stream's slabs, never fade and take no part in the pulse.
  const behind = -1 - Math.max(1, ...blocks.filter((b) => b.residual).map((b) => slabGeometry(b, 0).thick));
  bands.forEach(([x0, y0, x1, y1], j) => {
    const k = slabs.length + j;
    iFocus[k] = 1;
    iOrder[k] = -1;
    iPos.set([x0 + offsetX, y0, behind], k * 3);
    iSize.set([x1 - x0, y0 - y1, 0.01], k * 3);
    iStyle.set([BAND_KIND, 0, 0, 0], k * 4);
    iColX.set(NO_AXIS, k * 3);
    iColY.set(NO_AXIS, k * 3);
    iCells.set([x1 - x0, y0 - y1], k * 2);
  });

  const geometry = new THREE.InstancedBufferGeometry();
  geometry.copy(new THREE.BoxGeometry(1, 1, 1) as unknown as THREE.InstancedBufferGeometry);
  geometry.instanceCount = n;
  const set = (name: string, arr: Float32Array, size: number) =>
    geometry.setAttribute(name, new THREE.InstancedBufferAttribute(arr, size));
  set("iPos", iPos, 3); set("iSize", iSize, 3); set("iAtlas", iAtlas, 4); set("iStyle", iStyle, 4);
  set("iColX", iColX, 3); set("iColY", iColY, 3); set("iCells", iCells, 2); set("iFocus", iFocus, 1);
  set("iOrder", iOrder, 1);

  const atlas = new THREE.DataTexture(data.atlas.data, data.atlas.width, data.atlas.height,
    THREE.RedFormat, THREE.HalfFloatType);
  atlas.minFilter = atlas.magFilter = THREE.NearestFilter;
  atlas.generateMipmaps = false;
  atlas.unpackAlignment = 2;
  atlas.needsUpdate = true;
  const vec = (hex: string) => new THREE.Vector3(...hexToRgb(hex));
  const material = new THREE.ShaderMaterial({
    glslVersion: THREE.GLSL3,
    vertexShader: VERTEX,
    fragmentShader: FRAGMENT,
    uniforms: {
      uAtlas: { value: atlas },
      uNeg: { value: [...KINDS.map((k) => FAMILIES[k]), GRADIENT, QUANT_ERROR].map((f) => vec(f.negative)) },
      uPos: { value: [...KINDS.map((k) => FAMILIES[k]), GRADIENT, QUANT_ERROR].map((f) => vec(f.positive)) },
      uSide: { value: [...KINDS.map((k) => FAMILIES[k]), GRADIENT, QUANT_ERROR].map((f) => vec(f.side)) },
      uMasked: { value: vec(MASKED) },
      uStructure: { value: vec(STRUCTURE) },
      // (the page's theme: style.css --scene-bg and --band, light or dark)
      uBand: { value: vec(themeColor("--band", "#e3f0fb")) },
      uGround: { value: vec(themeColor("--scene-bg", "#f8f9fa")) },
      uSelected: { value: new THREE.Vector2(-1, -2) },
      uDim: { value: 0 },
      uPulse: { value: -1 },
      uReveal: { value: new THREE.Vector4(-1, -2, 2, 0) },
    },
  });
  const mesh = new THREE.Mesh(geometry, material);
  mesh.frustumCulled = false; // positions are made in the shader; the scene is one draw call anyway
  const group = new THREE.Group();
  group.add(mesh, links(data, boxes), sectionFrames(data, offsetX));
  const ownStyle = iStyle.slice();
  // the colouring's own styles (colourBy): the gradients' palette, each block on its own scale; null: each block's own
  let base: Map<number, { kind: "gradient" | "error"; scale: number }> | null = null;
  return {
    group, slabs, firstInstance, boxes, material,
    restyle(styled) {
      iStyle.set(ownStyle);
      slabs.forEach(({ block }, k) => {
        const st = styled?.get(block) ?? base?.get(block);
        if (st) iStyle.set([st.kind === "gradient" ? GRADIENT_KIND : st.kind === "error" ? ERROR_KIND : KINDS.indexOf(st.kind), st.scale], k * 4);
      });
      (geometry.getAttribute("iStyle") as THREE.BufferAttribute).needsUpdate = true;
    },
    colourBy(what) {
      const bits = what === "change" && data.change ? data.change : what === "gradients" && data.grad ? data.grad
        : what === "error" && data.error ? data.error : data.atlas.data;
      const byGrad = what === "gradients" && !!data.grad, byError = what === "error" && !!data.error, was = base;
      base = byGrad ? new Map(blocks.map((b, i) => [i, { kind: "gradient" as const, scale: b.grad ?? 0 }]))
        : byError ? new Map(blocks.flatMap((b, i) => (b.error != null ? [[i, { kind: "error" as const, scale: data.info.quant_error ?? 0 }]] : [])))
        : null;
      if (base || was) this.restyle(null);
      if (atlas.image.data === bits) return;
      atlas.image.data = bits;
      atlas.needsUpdate = true;
    },
    focus(keep) {
      material.uniforms.uDim.value = keep ? 1 : 0;
      if (keep) slabs.forEach(({ block }, k) => { iFocus[k] = keep.has(block) ? 1 : 0; });
      (geometry.getAttribute("iFocus") as THREE.BufferAttribute).needsUpdate = true;
    },
    reveal(block, along = "rows", fraction = 1) {
      const r = material.uniforms.uReveal.value as THREE.Vector4;
      if (block === null) r.set(-1, -2, 2, 0);
      else {
        const b = blocks[block];
        r.set(firstInstance[block], firstInstance[block] + (b.merged ? 1 : b.depth) - 1, fraction, ["rows", "cols", "mask"].indexOf(along));
      }
    },
    dispose() {
      group.traverse((o) => {
        const m = o as THREE.Mesh;
        m.geometry?.dispose();
        (m.material as THREE.Material | undefined)?.dispose?.();
      });
      atlas.dispose();
    },
  };
}

/** Lines from each computed tensor to the tensors computed from it: bottom centre to top centre. */
function links(data: SceneData, boxes: THREE.Box3[]): THREE.LineSegments {
  const pts: number[] = [];
  const colors: number[] = [];
  const res = [0.11, 0.44, 0.75], branch = [0.55, 0.58, 0.62];
  for (const [a, b] of data.info.links) {
    const A = boxes[a], B = boxes[b];
    const c = data.info.blocks[a].residual && data.info.blocks[b].residual ? res : branch;
    pts.push((A.min.x + A.max.x) / 2, A.min.y, A.max.z, (B.min.x + B.max.x) / 2, B.max.y, B.max.z);
    colors.push(...c, ...c);
  }
  const geo = new THREE.BufferGeometry();
  geo.setAttribute("position", new THREE.Float32BufferAttribute(pts, 3));
  geo.setAttribute("color", new THREE.Float32BufferAttribute(colors, 3));
  return new THREE.LineSegments(geo, new THREE.LineBasicMaterial({ vertexColors: true }));
}

/** A colour of the page's theme (a CSS custom property on :root), or the light theme's when there is none. */
function themeColor(name: string, light: string): string {
  const v = typeof document === "undefined" ? "" : getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return /^#[0-9a-f]{6}$/i.test(v) ? v : light;
}

const SECTION_COLORS: Record<string, number> = { Embedding: 0x2f9e44, Attention: 0xe8590c, MLP: 0x7048e8, Output: 0x0c8599 };

/** Thin frames around the embedding, each transformer layer, its attention and MLP, and the output. */
function sectionFrames(data: SceneData, offsetX: number): THREE.LineSegments {
  const pts: number[] = [];
  const colors: number[] = [];
  for (const s of data.info.sections) {
    const pad = framePad(data.info.sections, s);
    const x0 = s.x0 - pad + offsetX, x1 = s.x1 + pad + offsetX, y0 = s.y0 + pad, y1 = s.y1 - pad, z = 1;
    pts.push(x0, y0, z, x1, y0, z, x1, y0, z, x1, y1, z, x1, y1, z, x0, y1, z, x0, y1, z, x0, y0, z);
    const c = new THREE.Color(SECTION_COLORS[s.title] ?? 0x868e96);
    for (let i = 0; i < 8; i++) colors.push(c.r, c.g, c.b);
  }
  const geo = new THREE.BufferGeometry();
  geo.setAttribute("position", new THREE.Float32BufferAttribute(pts, 3));
  geo.setAttribute("color", new THREE.Float32BufferAttribute(colors, 3));
  return new THREE.LineSegments(geo, new THREE.LineBasicMaterial({ vertexColors: true }));
}

/** The block (and slab) a ray hits first, with the cell under the hit point; null if none. */
export function pick(model: BuiltModel, data: SceneData, ray: THREE.Ray, offsetX = 0):
  { block: number; slab: number; col: number; row: number; distance: number } | null {
  let best: { block: number; slab: number; col: number; row: number; distance: number } | null = null;
  const box = new THREE.Box3(), hit = new THREE.Vector3();
  model.boxes.forEach((bb, i) => {
    if (!ray.intersectBox(bb, hit)) return;
    const b = data.info.blocks[i];
    const n = b.merged ? 1 : b.depth;
    for (let s = 0; s < n; s++) {
      const g = slabGeometry(b, s);
      box.min.set(g.x + offsetX, g.y - b.rows, g.z - g.thick);
      box.max.set(g.x + offsetX + b.cols, g.y, g.z);
      if (!ray.intersectBox(box, hit)) continue;
      const d = hit.distanceTo(ray.origin);
      if (best && d >= best.distance) continue;
      const grid = b.slabs?.[s] ? [b.slabs[s][2], b.slabs[s][3]] : [b.cols, b.rows];
      const u = (hit.x - box.min.x) / b.cols, v = (box.max.y - hit.y) / b.rows;
      best = { block: i, slab: s, distance: d,
        col: Math.min(grid[0] - 1, Math.max(0, Math.floor(u * grid[0]))),
        row: Math.min(grid[1] - 1, Math.max(0, Math.floor(v * grid[1]))) };
    }
  });
  return best;
}
