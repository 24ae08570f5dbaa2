// The 3D view: a renderer, a camera, mouse/touch/keyboard controls, and a frame drawn only when
// something changed. The scene content is handed in by main.ts.
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";

/** Where the camera looks from, by default: the front, a little from the right and above (the cells face-on enough
 * to read). */
export const FRONT = new THREE.Vector3(0.12, 0.08, 1).normalize();
/** The whole model as a solid: from the right and above, a three-quarter view that shows the slabs' thickness. */
export const THREE_QUARTER = new THREE.Vector3(0.32, 0.26, 1).normalize();

export class View {
  readonly renderer: THREE.WebGLRenderer;
  readonly scene = new THREE.Scene();
  readonly camera = new THREE.PerspectiveCamera(35, 1, 0.1, 1e6);
  readonly controls: OrbitControls;
  private pending = false;
  private flight: { from: THREE.Vector3[]; to: THREE.Vector3[]; start: number; ms: number } | null = null;
  private home: [THREE.Vector3, THREE.Vector3] = [new THREE.Vector3(0, 0, 100), new THREE.Vector3()];
  frames = 0;
  ready = false; // nothing is drawn before the first scene is placed (an empty frame would only cost time)
  onRender: () => void = () => {};
  onCameraEnd: () => void = () => {};
  onCameraMove: () => void = () => {}; // each time the camera changes: what was under the pointer no longer is
  /** A second, smaller view in the bottom-right corner that frames this box (the scale view's nano-gpt inset). */
  inset: { box: THREE.Box3; width: number; height: number; only: THREE.Object3D } | null = null;
  private insetCamera = new THREE.PerspectiveCamera(35, 1, 0.1, 1e6);
  /** The box that frames everything drawn, and how many times its framing distance the camera may zoom out to. */
  private limit: { box: THREE.Box3; factor: number } | null = null;

  constructor(readonly canvas: HTMLCanvasElement) {
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false, powerPreference: "high-performance" });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
    // The page's scene colour (style.css --scene-bg: light, or dark under prefers-color-scheme), and again when
    // the system's scheme changes.
    const ground = () => {
      const bg = getComputedStyle(document.documentElement).getPropertyValue("--scene-bg").trim();
      this.renderer.setClearColor(new THREE.Color(bg || "#f8f9fa"));
      this.requestRender();
    };
    ground();
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", ground);
    this.scene.matrixWorldAutoUpdate = true;
    const c = new OrbitControls(this.camera, canvas);
    this.controls = c;
    c.zoomToCursor = true; // the point under the cursor stays put while zooming
    c.screenSpacePanning = true;
    c.mouseButtons = { LEFT: THREE.MOUSE.PAN, MIDDLE: THREE.MOUSE.DOLLY, RIGHT: THREE.MOUSE.ROTATE };
    c.touches = { ONE: THREE.TOUCH.PAN, TWO: THREE.TOUCH.DOLLY_ROTATE };
    // Rotation stays within angles where the blocks' faces, and so their cells, face the camera.
    c.minAzimuthAngle = -1.1;
    c.maxAzimuthAngle = 1.1;
    c.minPolarAngle = 0.45;
    c.maxPolarAngle = Math.PI - 0.45;
    c.addEventListener("change", () => {
      this.onCameraMove();
      this.requestRender();
    });
    c.addEventListener("end", () => this.onCameraEnd());
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement!);
    this.resize();
  }

  resize(): void {
    const box = this.canvas.parentElement!.getBoundingClientRect();
    this.renderer.setSize(Math.max(1, box.width), Math.max(1, box.height), false);
    this.camera.aspect = Math.max(1, box.width) / Math.max(1, box.height);
    this.camera.updateProjectionMatrix();
    this.applyLimit();  // a narrower view frames the same box from further away
    this.requestRender();
  }

  /** Zoom out at most `factor` times as far as the camera that frames this box whole (null: no limit). */
  setZoomLimit(box: THREE.Box3 | null, factor = 1.6): void {
    this.limit = box ? { box: box.clone(), factor } : null;
    this.applyLimit();
  }

  private applyLimit(): void {
    if (!this.limit) {
      this.controls.maxDistance = Infinity;
      return;
    }
    const [pos, target] = this.framing(this.limit.box, 1.05);
    this.controls.maxDistance = pos.distanceTo(target) * this.limit.factor;
    if (this.camera.position.distanceTo(this.controls.target) > this.controls.maxDistance) this.controls.update();
  }

  /** Whether the camera is where Home puts it. */
  atHome(): boolean {
    const d = this.home[0].distanceTo(this.home[1]);
    return this.camera.position.distanceTo(this.home[0]) < 1e-3 * d && this.controls.target.distanceTo(this.home[1]) < 1e-3 * d;
  }

  /** Draw one frame at the next animation frame (several requests make one frame). */
  requestRender(): void {
    if (this.pending || !this.ready) return;
    this.pending = true;
    requestAnimationFrame((t) => this.render(t));
  }

  /** Draw a frame at once (a frame already requested is still drawn when its time comes). */
  renderNow(): void {
    if (this.ready) this.render(performance.now(), false);
  }

  private render(now: number, scheduled = true): void {
    if (scheduled) this.pending = false;
    if (this.flight) this.stepFlight(now);
    // Near and far planes follow the distance to the target: the scene spans 10 to 10^8 units.
    const d = this.camera.position.distanceTo(this.controls.target);
    this.camera.near = Math.max(d / 2000, 0.01);
    this.camera.far = d * 400 + 1e3;
    this.camera.updateProjectionMatrix();
    this.renderer.render(this.scene, this.camera);
    if (this.inset) this.renderInset(this.inset);
    this.frames++;
    this.onRender();
  }

  private renderInset(inset: NonNullable<View["inset"]>): void {
    const r = this.renderer, size = r.getSize(new THREE.Vector2());
    const cam = this.insetCamera;
    cam.aspect = inset.width / inset.height;
    const [pos, target] = this.framing(inset.box, 1.1, cam);
    cam.position.copy(pos);
    cam.lookAt(target);
    cam.near = pos.distanceTo(target) / 2000;
    cam.far = pos.distanceTo(target) * 400;
    cam.updateProjectionMatrix();
    const x = size.x - inset.width - 10, y = 10;  // from the bottom-left, in CSS pixels
    r.setScissorTest(true);
    r.setScissor(x, y, inset.width, inset.height);
    r.setViewport(x, y, inset.width, inset.height);
    const clear = r.getClearColor(new THREE.Color());
    r.setClearColor(0xffffff);
    r.clear();
    const shown = this.scene.children.map((c) => c.visible);
    for (const c of this.scene.children) c.visible = c === inset.only;  // the inset shows its subject alone
    r.render(this.scene, cam);
    this.scene.children.forEach((c, i) => { c.visible = shown[i]; });
    r.setClearColor(clear);
    r.setScissorTest(false);
    r.setViewport(0, 0, size.x, size.y);
  }

  setHome(position: THREE.Vector3, target: THREE.Vector3): void {
    this.home = [position.clone(), target.clone()];
  }

  goHome(animate = true): void {
    this.flyTo(this.home[0], this.home[1], animate ? 700 : 0);
  }

  /** Whether the camera is flying somewhere (see flyTo): its position is not final yet. */
  get flying(): boolean {
    return this.flight !== null;
  }

  /** Move the camera smoothly (ms > 0) or at once to a position looking at a target. */
  flyTo(position: THREE.Vector3, target: THREE.Vector3, ms = 700): void {
    this.onCameraMove();
    if (ms <= 0) {
      this.camera.position.copy(position);
      this.controls.target.copy(target);
      this.controls.update();
      this.flight = null;
      this.requestRender();
      return;
    }
    this.flight = { from: [this.camera.position.clone(), this.controls.target.clone()], to: [position.clone(), target.clone()],
      start: performance.now(), ms };
    this.requestRender();
  }

  private stepFlight(now: number): void {
    const f = this.flight!;
    const t = Math.min(1, (now - f.start) / f.ms);
    const e = t < 0.5 ? 4 * t * t * t : 1 - (-2 * t + 2) ** 3 / 2;
    // Fly in log-distance so a jump from GPT-3 scale to one block neither crawls nor overshoots.
    const d0 = f.from[0].distanceTo(f.from[1]), d1 = f.to[0].distanceTo(f.to[1]);
    const dist = Math.exp(Math.log(d0) + (Math.log(d1) - Math.log(d0)) * e);
    const target = f.from[1].clone().lerp(f.to[1], e);
    const dir0 = f.from[0].clone().sub(f.from[1]).normalize(), dir1 = f.to[0].clone().sub(f.to[1]).normalize();
    const dir = dir0.lerp(dir1, e).normalize();
    this.controls.target.copy(target);
    this.camera.position.copy(target).addScaledVector(dir, dist);
    this.camera.lookAt(target);
    if (t < 1) this.requestRender();
    else {
      this.flight = null;
      this.controls.update();
      this.onCameraEnd();
    }
  }

  /** A camera that shows the box whole, seen from `dir` (by default from the front, a little from the right and
   * above; THREE_QUARTER: the whole model as a solid), every corner of the box inside the view. */
  framing(box: THREE.Box3, margin = 1.15, camera = this.camera, free?: { left: number; top: number; right: number; bottom: number },
    dir: THREE.Vector3 = FRONT): [THREE.Vector3, THREE.Vector3] {
    const center = box.getCenter(new THREE.Vector3());
    const tan = Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2);
    // free: the part of the canvas (its own pixels) the box must fit in, when panels or a toolbar cover the rest.
    const W = this.canvas.clientWidth || 1, H = this.canvas.clientHeight || 1;
    const fw = free ? Math.max(1, free.right - free.left) / W : 1, fh = free ? Math.max(1, free.bottom - free.top) / H : 1;
    const d = dir.clone().normalize(), forward = d.clone().negate();
    const right = forward.clone().cross(new THREE.Vector3(0, 1, 0)).normalize();
    const up = right.clone().cross(forward).normalize();
    // Each corner, seen from the camera at distance D along d: it must be within the view's half-width and half-height
    // (shrunk by the margin) at its own depth, D + its offset along `forward`.
    let dist = 5;
    const tx = tan * camera.aspect * fw / margin, ty = tan * fh / margin, p = new THREE.Vector3();
    const corners = [0, 1, 2, 3, 4, 5, 6, 7].map((k) =>
      new THREE.Vector3(k & 1 ? box.max.x : box.min.x, k & 2 ? box.max.y : box.min.y, k & 4 ? box.max.z : box.min.z));
    for (const c of corners) {
      p.copy(c).sub(center);
      const depth = p.dot(forward);
      dist = Math.max(dist, Math.abs(p.dot(right)) / tx - depth, Math.abs(p.dot(up)) / ty - depth);
    }
    const target = center.clone();
    if (free) {  // the box's centre at the free part's centre: move camera and target together, across the view
      const perPixel = (2 * dist * tan) / H;
      const ox = (free.left + free.right) / 2 - W / 2, oy = (free.top + free.bottom) / 2 - H / 2;
      target.addScaledVector(right, -ox * perPixel).addScaledVector(up, oy * perPixel);
    }
    // Seen at an angle, the near side of the box looks bigger than the far side: refine by projecting its corners,
    // centring what they cover in the free part and scaling the distance until it just fits.
    const cam = new THREE.PerspectiveCamera(camera.fov, camera.aspect, 0.01, 1e9);
    const f = free ?? { left: 0, top: 0, right: W, bottom: H };
    const fx = [(f.left / W) * 2 - 1, (f.right / W) * 2 - 1], fy = [1 - (f.bottom / H) * 2, 1 - (f.top / H) * 2];
    for (let it = 0; it < 4 && dir !== FRONT; it++) {  // (FRONT, nearly face-on, keeps the centred fit above)
      cam.position.copy(target).addScaledVector(d, dist);
      cam.lookAt(target);
      cam.updateMatrixWorld();
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (const c of corners) {
        p.copy(c).project(cam);
        x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x); y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y);
      }
      const scale = margin * Math.max((x1 - x0) / (fx[1] - fx[0]), (y1 - y0) / (fy[1] - fy[0]));
      const half = dist * tan;  // half the view's height, in world units, at the target
      target.addScaledVector(right, ((x0 + x1) / 2 - (fx[0] + fx[1]) / 2) * half * camera.aspect)
        .addScaledVector(up, ((y0 + y1) / 2 - (fy[0] + fy[1]) / 2) * half);
      dist *= scale;
    }
    return [target.clone().addScaledVector(d, dist), target];
  }

  /** The camera straight in front of what it looks at, as far from it as it is: every cell face-on, for reading. */
  faceOn(): [THREE.Vector3, THREE.Vector3] {
    const t = this.controls.target.clone();
    return [t.clone().add(new THREE.Vector3(0, 0, this.camera.position.distanceTo(t))), t];
  }

  /** Pan by a fraction of the view (keyboard). */
  pan(dx: number, dy: number): void {
    const d = this.camera.position.distanceTo(this.controls.target);
    const h = 2 * d * Math.tan(THREE.MathUtils.degToRad(this.camera.fov) / 2);
    const right = new THREE.Vector3().setFromMatrixColumn(this.camera.matrix, 0);
    const up = new THREE.Vector3().setFromMatrixColumn(this.camera.matrix, 1);
    const move = right.multiplyScalar(dx * h).add(up.multiplyScalar(dy * h));
    this.camera.position.add(move);
    this.controls.target.add(move);
    this.controls.update();
    this.onCameraMove();
  }

  /** Zoom by a factor towards the target (keyboard). */
  zoom(factor: number): void {
    const offset = this.camera.position.clone().sub(this.controls.target).multiplyScalar(factor);
    this.camera.position.copy(this.controls.target).add(offset);
    this.controls.update();
    this.onCameraMove();
  }

  /** The ray under a point of the canvas, in client pixels. */
  rayAt(clientX: number, clientY: number): THREE.Ray {
    const r = this.canvas.getBoundingClientRect();
    const ndc = new THREE.Vector2(((clientX - r.left) / r.width) * 2 - 1, -((clientY - r.top) / r.height) * 2 + 1);
    const ray = new THREE.Raycaster();
    ray.setFromCamera(ndc, this.camera);
    return ray.ray;
  }

  /** Where a world point lands on the canvas, in CSS pixels; null if behind the camera. */
  project(p: THREE.Vector3, out = new THREE.Vector3()): { x: number; y: number } | null {
    out.copy(p).project(this.camera);
    if (out.z > 1 || out.z < -1) return null;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return { x: (out.x + 1) / 2 * w, y: (1 - out.y) / 2 * h };
  }
}
