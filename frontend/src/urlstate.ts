// The view's state in the URL, so that a copied link opens the same view:
//   ?model=nano-gpt&input=CBABBC&cam=px,py,pz,tx,ty,tz&block=blocks.0.attn.hook_q&cell=blocks.0.attn.hook_q:1,3,7
//   &heads=stack&past=6&view=scale&step=5.2 (the walkthrough at chapter 5, step 2)
//   &insights=branches&branch=0.1 (the "across the model" panel's tab, and the branch tree's focus; the tabs:
//   attention, lens, branches, attribution, patching)
//   &edits=[{"tensor":"blocks.0.attn.hook_z","where":{"head":1},"set":"zero"}]&show=values (interventions, and
//   the edited pass's own values instead of how much each cell changed); &show=gradients (a pass coloured by the
//   loss's gradient with respect to every cell)
import { formatEdits, parseEdits, type Edit } from "./edits";

export interface CellState { tensor: string; slab: number; col: number; row: number }

export interface ViewState {
  model?: string;
  input?: string;
  camera?: [number, number, number, number, number, number]; // position, then target
  block?: string;
  cell?: CellState; // the pinned cell: a displayed cell of a block (slab = head)
  heads?: "stack"; // heads stacked in depth (default: side by side)
  past?: number; // the KV-cache view: the input's last tokens computed on a cache of the first `past`
  view?: "model" | "scale";
  step?: [number, number]; // the walkthrough's chapter and step, from 1
  insights?: "attention" | "lens" | "branches" | "attribution" | "patching"; // the open tab of the "across the model" panel
  branch?: number[]; // the branch tree's focus: token ids after the input
  edits?: Edit[]; // interventions on the pass (edits.ts): the view is the edited pass
  show?: "values" | "gradients"; // an edited pass coloured by its values (default: by how much each cell changed);
  // a clean pass coloured by the next-token loss's gradients
}

export function parseState(search: string): ViewState {
  const q = new URLSearchParams(search);
  const s: ViewState = {};
  const model = q.get("model");
  if (model) s.model = model;
  const input = q.get("input");
  if (input !== null) s.input = input;
  const cam = q.get("cam")?.split(",").map(Number);
  if (cam && cam.length === 6 && cam.every(Number.isFinite)) s.camera = cam as ViewState["camera"];
  const block = q.get("block");
  if (block) s.block = block;
  const cell = q.get("cell")?.match(/^(.+):(\d+),(\d+),(\d+)$/);
  if (cell) s.cell = { tensor: cell[1], slab: Number(cell[2]), col: Number(cell[3]), row: Number(cell[4]) };
  if (q.get("heads") === "stack") s.heads = "stack";
  const past = Number(q.get("past"));
  if (Number.isInteger(past) && past > 0) s.past = past;
  if (q.get("view") === "scale") s.view = "scale";
  const step = q.get("step")?.match(/^(\d{1,3})\.(\d{1,3})$/);
  if (step && Number(step[1]) > 0 && Number(step[2]) > 0) s.step = [Number(step[1]), Number(step[2])];
  const ins = q.get("insights");
  if (ins === "attention" || ins === "lens" || ins === "branches" || ins === "attribution" || ins === "patching") s.insights = ins;
  const branch = q.get("branch");
  if (branch && /^\d+(\.\d+)*$/.test(branch)) s.branch = branch.split(".").map(Number);
  const edits = parseEdits(q.get("edits"));
  if (edits) s.edits = edits;
  if (edits && q.get("show") === "values") s.show = "values";
  if (!edits && q.get("show") === "gradients") s.show = "gradients";
  return s;
}

const round = (v: number) => Number(v.toPrecision(6));

export function formatState(s: ViewState): string {
  const q = new URLSearchParams();
  if (s.view === "scale") q.set("view", "scale");
  if (s.model) q.set("model", s.model);
  if (s.input !== undefined) q.set("input", s.input);
  if (s.heads) q.set("heads", s.heads);
  if (s.past) q.set("past", String(s.past));
  if (s.camera) q.set("cam", s.camera.map(round).join(","));
  if (s.block) q.set("block", s.block);
  if (s.cell) q.set("cell", `${s.cell.tensor}:${s.cell.slab},${s.cell.col},${s.cell.row}`);
  if (s.step) q.set("step", s.step.join("."));
  if (s.insights) q.set("insights", s.insights);
  if (s.branch?.length) q.set("branch", s.branch.join("."));
  if (s.edits?.length) q.set("edits", formatEdits(s.edits));
  if (s.edits?.length ? s.show === "values" : s.show === "gradients") q.set("show", s.show!);
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** A drawn block, as a link's block and cell are checked against it: how many slabs (heads) it shows, and each
 * slab's grid of displayed cells (columns, rows). */
export interface LinkedBlock { slabs: number; grid(slab: number): [number, number] }

/** What a link names that the view does not have, as messages to show (the rest of the view is shown): a block
 * with no such tensor, a pinned cell of an unknown tensor or out of its block's range. `where`: the model's name. */
export function linkProblems(s: Pick<ViewState, "block" | "cell">, find: (tensor: string) => LinkedBlock | null,
  where: string): { block?: string; cell?: string } {
  const out: { block?: string; cell?: string } = {};
  if (s.block && !find(s.block)) out.block = `No block named ${s.block} in ${where}`;
  const c = s.cell;
  if (c) {
    const b = find(c.tensor);
    if (!b) out.cell = `No block named ${c.tensor} in ${where}: the link's cell is not pinned`;
    else {
      const [cols, rows] = b.grid(Math.min(c.slab, b.slabs - 1));
      if (c.slab >= b.slabs || c.col >= cols || c.row >= rows) {
        const span = (what: string, n: number) => (n > 1 ? `${what} 0–${n - 1}` : `${what} 0 only`);
        out.cell = `No cell ${c.slab},${c.col},${c.row} in ${c.tensor}: it has ${span(b.slabs > 1 ? "heads" : "slab", b.slabs)}, ` +
          `${span("columns", cols)}, ${span("rows", rows)}; the link's cell is not pinned`;
      }
    }
  }
  return out;
}
