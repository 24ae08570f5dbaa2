import * as THREE from "three";
// Test hooks, for the end-to-end tests and the benchmarks only: a separate bundle (frontend/dist-test), never
// part of the app. Loaded before the page (Playwright's add_init_script), it waits for the app to hand itself
// over and then offers window.__llmviz: what is drawn, how fast, and the canvas's pixels.
import { screenRect } from "./labels";
import type * as SceneApi from "./scene";
import type { app as App } from "./state";

function hooks(app: typeof App, scene: typeof SceneApi) {
  const { findBlock, cellScreenPoint, modelsBox } = scene;
  /** A world box's rectangle on screen, in client pixels (labels' screenRect); null if a corner is behind the camera. */
  const clientRect = (box: THREE.Box3) => {
    const v = app.view!, c = v.canvas.getBoundingClientRect(), r = screenRect(box, (q) => v.project(q));
    return r && { left: r[0] + c.left, top: r[1] + c.top, right: r[2] + c.left, bottom: r[3] + c.top };
  };
  return {
    stats: () => {
      const info = app.view?.renderer.info;
      return {
        blocks: app.placed.reduce((n, p) => n + p.data.info.blocks.length, 0),
        instances: app.placed.reduce((n, p) => n + p.built.slabs.length, 0),
        drawCalls: info?.render.calls ?? 0, triangles: info?.render.triangles ?? 0, frames: app.view?.frames ?? 0,
        models: app.placed.map((p) => p.data.info.model.name), selected: app.selected ? app.selected.placed.data.info.blocks[app.selected.block].tensor : null,
        firstFrameMs: app.firstFrameMs,
      };
    },
    /** Orbit the camera for `n` frames, drawing each; resolves to the mean milliseconds per frame. */
    measureFrames: (n: number) => new Promise<number>((resolve) => {
      const v = app.view!;
      const t0 = performance.now();
      let i = 0;
      const step = () => {
        v.controls.target.x += 0.001;
        v.camera.position.applyAxisAngle(v.camera.up.clone().set(0, 1, 0), 0.01);
        v.controls.update();
        v.renderer.render(v.scene, v.camera);
        v.renderer.getContext().finish();
        if (++i < n) requestAnimationFrame(step);
        else resolve((performance.now() - t0) / n);
      };
      requestAnimationFrame(step);
    }),
    blockScreenPoint: (tensor: string, slab = 0, col = 0, row = 0) => {
      const hit = findBlock(tensor);
      return hit ? cellScreenPoint({ ...hit, slab, col, row }) : null;
    },
    /** The screen rectangle of all placed models' bounds (client pixels). */
    modelScreenBox: () => {
      const box = modelsBox(), r = app.view!.canvas.getBoundingClientRect();
      const pts = [box.min.x, box.max.x].flatMap((x) => [box.min.y, box.max.y].map((y) => app.view!.project(app.view!.camera.position.clone().set(x, y, 0))));
      if (pts.some((p) => !p)) return null;
      const xs = pts.map((p) => p!.x + r.left), ys = pts.map((p) => p!.y + r.top);
      return { left: Math.min(...xs), right: Math.max(...xs), top: Math.min(...ys), bottom: Math.max(...ys) };
    },
    /** A block's screen rectangle (client pixels): its bounding box's eight corners projected. */
    blockScreenRect: (tensor: string) => {
      const hit = findBlock(tensor);
      return hit ? clientRect(hit.placed.built.boxes[hit.block]) : null;
    },
    /** Every block of every placed model on screen: its model, tensor and screen rectangle (client pixels, its bounding
     * box's eight corners projected); a block a corner of which is behind the camera is left out. */
    blockRects: () => app.placed.flatMap((placed) => placed.built.boxes.flatMap((b, i) => {
      const rect = b.isEmpty() ? null : clientRect(b);
      return rect ? [{ model: placed.data.info.model.name, tensor: placed.data.info.blocks[i].tensor, ...rect }] : [];
    })),
    /** Place the labels `n` times over (as each frame of a moving camera does): the mean milliseconds it took. */
    labelsMs: (n = 20) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) app.labels!.update();
      return (performance.now() - t0) / n;
    },
    camera: () => [...app.view!.camera.position.toArray(), ...app.view!.controls.target.toArray()],
    /** True while a camera flight is under way: wait for false before reading where the camera is. */
    flying: () => app.view!.flying,
    hoverMs: () => app.hover.lastMs,
    stepMs: () => app.gen?.lastStepMs ?? null,
    highlighted: () => app.highlights.count,
    editMarks: () => app.editMarks.count,
    edits: () => app.placed[0]?.data.info.edits ?? null,
    /** Draw now and sum the canvas's bytes, each weighted by its place: two pictures that differ anywhere differ here. */
    canvasDigest: () => {
      const v = app.view!;
      v.renderer.render(v.scene, v.camera);
      const gl = v.renderer.getContext();
      const all = new Uint8Array(gl.drawingBufferWidth * gl.drawingBufferHeight * 4);
      gl.readPixels(0, 0, gl.drawingBufferWidth, gl.drawingBufferHeight, gl.RGBA, gl.UNSIGNED_BYTE, all);
      let digest = 0;
      for (let i = 0; i < all.length; i++) digest = (digest * 31 + all[i]) % 2147483647;
      return digest;
    },
    /** Draw now and read the canvas: the RGB at a client point, or with no point the share of pixels that differ
     * from the background (within a client rectangle, if given). */
    readPixels: (clientX?: number, clientY?: number, rect?: { left: number; top: number; right: number; bottom: number }) => {
      const v = app.view!;
      v.renderer.render(v.scene, v.camera);
      const gl = v.renderer.getContext();
      const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
      if (clientX !== undefined && clientY !== undefined) {
        const r = v.canvas.getBoundingClientRect();
        const x = Math.floor((clientX - r.left) * w / r.width), y = h - 1 - Math.floor((clientY - r.top) * h / r.height);
        const px = new Uint8Array(4);
        gl.readPixels(x, y, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
        return [px[0], px[1], px[2]];
      }
      const all = new Uint8Array(w * h * 4);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, all);
      const hex = v.renderer.getClearColor(new THREE.Color()).getHex();  // the theme's ground, as sRGB bytes
      const bg = [hex >> 16, (hex >> 8) & 255, hex & 255];
      const r = v.canvas.getBoundingClientRect(), sx = w / r.width, sy = h / r.height;
      const [x0, x1] = rect ? [(rect.left - r.left) * sx, (rect.right - r.left) * sx] : [0, w];
      const [y0, y1] = rect ? [h - (rect.bottom - r.top) * sy, h - (rect.top - r.top) * sy] : [0, h];
      let differ = 0, n = 0;
      for (let y = Math.max(0, Math.floor(y0)); y < Math.min(h, y1); y++) {
        for (let x = Math.max(0, Math.floor(x0)); x < Math.min(w, x1); x++) {
          const i = (y * w + x) * 4;
          n++;
          if (Math.abs(all[i] - bg[0]) + Math.abs(all[i + 1] - bg[1]) + Math.abs(all[i + 2] - bg[2]) > 12) differ++;
        }
      }
      return differ / Math.max(n, 1);
    },
    /** Draw now and read the canvas as a coarse grid of mean RGB (cols × rows cells), to compare two pictures. */
    snapshot: (cols = 32, rows = 20) => {
      const v = app.view!;
      v.renderer.render(v.scene, v.camera);
      const gl = v.renderer.getContext();
      const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
      const all = new Uint8Array(w * h * 4);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, all);
      const sum = new Float64Array(cols * rows * 3), n = new Float64Array(cols * rows);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const c = Math.floor((x * cols) / w) + cols * Math.floor((y * rows) / h), i = (y * w + x) * 4;
          sum[c * 3] += all[i]; sum[c * 3 + 1] += all[i + 1]; sum[c * 3 + 2] += all[i + 2]; n[c]++;
        }
      }
      return Array.from(sum, (v, i) => v / n[Math.floor(i / 3)]);
    },
    /** The walkthrough: where it is, and its step's actions' first region on screen (client pixels). */
    // (settled: no step's view is loading; the scene shows the step's view)
    walk: () => ({ at: app.walk?.at ?? null, active: app.walk?.active ?? false, settled: app.walk?.settled ?? false }),
    regionPoint: (region: { tensor: string; ranges: Record<string, [number, number]>; role: string }) =>
      scene.regionScreenPoint(region),
    flyToBlock: (tensor: string) => {
      const hit = findBlock(tensor);
      if (hit) app.view!.flyTo(...app.view!.framing(hit.placed.built.boxes[hit.block], 1.6), 0);
    },
  };
}

window.addEventListener("llmviz:app", (e) => {
  const { app, scene } = (e as CustomEvent<{ app: typeof App; scene: typeof SceneApi }>).detail;
  Object.assign(window, { __llmviz: hooks(app, scene) });
});
