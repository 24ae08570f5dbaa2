// The branch tree: the most probable continuations of the input, on a Poincaré disk. A click on a node expands
// it (its top k next tokens) and glides it to the centre; its path becomes the 3D view's input. The parent
// button walks back. The tree exports to JSON and imports from it; its focus is in the URL.
import { fetchBranches, type Branch, type BranchRoot } from "./api";
import { escapeHtml as esc } from "./html";
import { between, geodesic, layout, scaleAt, toCentre, type C } from "./poincare";

export interface BranchHost {
  model(): string;
  /** The view's input, as token ids (the tree's root). */
  tokens(): number[] | null;
  /** Show this path in the 3D view. */
  load(text: string): Promise<void>;
  /** The focused path changed: its token ids after the root (for the URL). */
  focused(ids: number[]): void;
  reducedMotion(): boolean;
}

const K = 3, MAX_NODES = 400, GLIDE_MS = 450;
type Node = Branch & { expanded?: boolean };

export class BranchTree {
  private root: (BranchRoot & { model: string }) | null = null;
  private focus: number[] = [];  // child indices from the root
  private at: C = [0, 0];        // the point at the centre of the disk now
  private svg: SVGSVGElement;
  private message: HTMLDivElement;
  private path: HTMLDivElement;

  constructor(private box: HTMLElement, private host: BranchHost) {
    box.innerHTML = `<div class="bt-bar"><button type="button" data-bt="parent" title="Back to the parent node">◀ parent</button>
      <span class="bt-path"></span>
      <button type="button" data-bt="export" title="Download the tree as JSON">Export</button>
      <label class="bt-import" title="Load a tree exported before">Import <input type="file" accept="application/json,.json"></label></div>
      <div class="bt-message" role="alert" hidden></div>
      <svg class="bt-disk" viewBox="0 0 600 600" role="img" aria-label="tree of continuations on a Poincaré disk"></svg>
      <p class="bt-help">Each node is a next token with the model's probability after its parent's path (edges as
      wide as that probability). Click a node: its children appear, it moves to the centre, and its path becomes the
      view's input. The disk is hyperbolic: the rest of the tree shrinks toward the rim.</p>`;
    this.svg = box.querySelector("svg")!;
    this.message = box.querySelector(".bt-message")!;
    this.path = box.querySelector(".bt-path")!;
    box.addEventListener("click", (e) => this.onClick(e));
    box.querySelector<HTMLInputElement>("input[type=file]")!.addEventListener("change", (e) => {
      const f = (e.target as HTMLInputElement).files?.[0];
      if (f) void f.text().then((t) => this.importJson(t));
    });
  }

  /** Start from the view's input, expanded two levels, then along `ids` (a link's focus) as far as it goes. */
  async load(ids: number[] = []): Promise<void> {
    const tokens = this.host.tokens();
    if (!tokens) return;
    const model = this.host.model();
    if (!this.root || this.root.model !== model || this.root.tokens.join() !== tokens.join()) {
      this.root = { ...(await fetchBranches(model, tokens, K, 2)), model };
      for (const c of this.root.children as Node[]) c.expanded = true;
      this.focus = [];
      this.at = [0, 0];
    }
    await this.walkTo(ids, false);
  }

  /** Focus the node these token ids lead to from the root (as far as they go). */
  private async walkTo(ids: number[], show: boolean): Promise<void> {
    let path: number[] = [];
    for (const id of ids) {
      const node = this.node(path);
      if (!node) break;
      await this.expand(path);
      const i = node.children.findIndex((c) => c.id === id);
      if (i < 0) break;
      path = [...path, i];
    }
    if (path.length || show) await this.select(path, false);
    else this.draw();
  }

  private node(path: number[]): { children: Node[] } | null {
    let n: { children: Node[] } | null = this.root;
    for (const i of path) n = n?.children[i] ?? null;
    return n;
  }

  private count(n: { children: Node[] } | null = this.root): number {
    return n ? n.children.length + n.children.reduce((s, c) => s + this.count(c), 0) : 0;
  }

  private ids(path: number[]): number[] {
    const out: number[] = [];
    let n: { children: Node[] } | null = this.root;
    for (const i of path) {
      n = n!.children[i];
      out.push((n as Node).id);
    }
    return out;
  }

  /** Fetch a node's children once (the server caches them too). */
  private async expand(path: number[]): Promise<void> {
    const n = this.node(path) as Node | null;
    if (!n || !path.length || n.expanded) return;
    if (this.count() + K > MAX_NODES) throw new Error(`the tree holds at most ${MAX_NODES} nodes: walk back, or start again from a new input`);
    const t = await fetchBranches(this.root!.model, [...this.root!.tokens, ...this.ids(path)], K, 1);
    n.children = t.children;
    n.expanded = true;
  }

  /** Expand a node, glide it to the centre, and show its path in the view. */
  async select(path: number[], animate = true): Promise<void> {
    try {
      await this.expand(path);
      this.say("");
    } catch (e) {
      this.say((e as Error).message);
      return;
    }
    this.focus = path;
    const target = layout(this.root!).get(path.join(".")) ?? [0, 0];
    const from = this.at;
    if (!animate || this.host.reducedMotion()) {
      this.at = target;
      this.draw();
    } else {
      const t0 = performance.now();
      await new Promise<void>((done) => {
        const frame = (now: number) => {
          const t = Math.min(1, (now - t0) / GLIDE_MS);
          this.at = between(from, target, t < 0.5 ? 2 * t * t : 1 - (-2 * t + 2) ** 2 / 2);
          this.draw();
          if (t < 1) requestAnimationFrame(frame);
          else done();
        };
        requestAnimationFrame(frame);
      });
    }
    const node = this.node(path) as Node | BranchRoot;
    this.host.focused(this.ids(path));
    try {
      await this.host.load(node.text);
    } catch (e) {
      this.say((e as Error).message);
    }
  }

  private say(text: string): void {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  draw(): void {
    if (!this.root) return;
    const pos = layout(this.root), R = 285, cx = 300, cy = 300;
    const view = (z: C) => toCentre(z, this.at);
    const edges: string[] = [], nodes: string[] = [];
    const probOf = new Map<string, number>([["", 1]]);
    const walk = (n: { children: Node[] }, key: string) => n.children.forEach((c, i) => {
      const k = key === "" ? String(i) : `${key}.${i}`;
      probOf.set(k, probOf.get(key)! * c.prob);
      const a = view(pos.get(key)!), b = view(pos.get(k)!);
      const w = Math.max(0.6, 10 * c.prob * Math.sqrt(scaleAt(b)));
      edges.push(`<path d="${geodesic(a, b, R, cx, cy)}" stroke-width="${w.toFixed(2)}"/>`);
      walk(c, k);
    });
    walk(this.root, "");
    const focusKey = this.focus.join(".");
    for (const [k, z] of pos) {
      const p = view(z), s = scaleAt(p), r = Math.max(1.5, 16 * s);
      const node = k === "" ? null : (this.node(k.split(".").map(Number)) as Node);
      const label = node ? `${node.token} ${(100 * node.prob).toFixed(node.prob < 0.1 ? 1 : 0)}%` : this.root.token_strs.join("");
      const here = k === focusKey ? " here" : "", fs = 12 * s + 2;
      nodes.push(`<g class="bt-node${here}${node && !node.expanded && !node.children.length ? " leaf" : ""}" data-path="${k}"
        transform="translate(${(cx + p[0] * R).toFixed(1)},${(cy + p[1] * R).toFixed(1)})">
        <circle r="${r.toFixed(1)}"/>${fs > 5 ? `<text y="${(r + fs).toFixed(1)}" font-size="${fs.toFixed(1)}">${esc(label)}</text>` : ""}
        <title>${esc(node ? `${node.token}: ${(100 * node.prob).toFixed(2)}% after its parent; path ${(100 * probOf.get(k)!).toPrecision(3)}%` : "the input")}</title></g>`);
    }
    this.svg.innerHTML = `<circle class="bt-rim" cx="${cx}" cy="${cy}" r="${R}"/><g class="bt-edges">${edges.join("")}</g>${nodes.join("")}`;
    const focused = this.node(this.focus) as Node | BranchRoot;
    this.path.innerHTML = `${esc(this.root.token_strs.join(""))}<b>${esc(this.focus.length ? this.ids(this.focus).map((_, i) =>
      (this.node(this.focus.slice(0, i + 1)) as Node).token).join("") : "")}</b>${this.focus.length ? ` · path ${(100 * probOf.get(focusKey)!).toPrecision(3)}%` : ""}`;
    this.box.dataset.nodes = String(this.count());
    this.box.dataset.focus = "text" in focused ? focused.text : "";
  }

  private onClick(e: Event): void {
    const el = e.target as HTMLElement;
    const g = el.closest<SVGGElement>("[data-path]");
    if (g) {
      const key = g.dataset.path!;
      void this.select(key === "" ? [] : key.split(".").map(Number));
      return;
    }
    const action = el.closest<HTMLElement>("[data-bt]")?.dataset.bt;
    if (action === "parent" && this.focus.length) void this.select(this.focus.slice(0, -1));
    if (action === "export") this.exportJson();
  }

  /** The tree as the API gives it, with the model and the focus (token ids below the root). */
  json(): string {
    const r = this.root!;
    const strip = (n: Node): Branch => ({ id: n.id, token: n.token, prob: n.prob, text: n.text, children: n.children.map(strip) });
    return JSON.stringify({ model: r.model, tokens: r.tokens, token_strs: r.token_strs, text: r.text,
      children: r.children.map(strip), focus: this.ids(this.focus) }, null, 1);
  }

  private exportJson(): void {
    if (!this.root) return;
    const a = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(new Blob([this.json()], { type: "application/json" })), download: "llmviz-branches.json",
    });
    a.click();
    URL.revokeObjectURL(a.href);
  }

  /** Load an exported tree; anything else says why and keeps the tree as it was. */
  importJson(text: string): boolean {
    try {
      const t = JSON.parse(text);
      const ok = (n: Record<string, unknown>): boolean => typeof n.id === "number" && typeof n.token === "string" && typeof n.prob === "number" &&
        typeof n.text === "string" && Array.isArray(n.children) && n.children.every(ok);
      if (typeof t.model !== "string" || !Array.isArray(t.tokens) || !Array.isArray(t.children) || !t.children.every(ok)) {
        throw new Error("not an llmviz branch tree (it needs model, tokens and children)");
      }
      if (t.model !== this.host.model()) throw new Error(`this tree is of ${t.model}; the view shows ${this.host.model()}`);
      const mark = (n: Node): void => { n.expanded = n.children.length > 0; n.children.forEach(mark); };
      t.children.forEach(mark);
      this.root = { model: t.model, tokens: t.tokens, token_strs: t.token_strs ?? t.tokens.map(String), text: t.text ?? "", children: t.children };
      this.focus = [];
      this.at = [0, 0];
      this.say("");
      void this.walkTo(Array.isArray(t.focus) ? t.focus : [], true);
      return true;
    } catch (e) {
      this.say(`could not import: ${(e as Error).message}`);
      return false;
    }
  }
}
