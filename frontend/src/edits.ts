// Interventions as the page makes them: which cells a right-click can edit (the cell, its position, its head, its
// neuron, the whole tensor), each as an edit in the server's form (POST /api/scene's `edits`, core/edits.py), and
// the list of edits as the URL keeps it. The axes come from the block the server describes; nothing here names a
// tensor.
import type { components } from "./api-schema";
import type { BlockInfo } from "./scenedata";

export type Edit = components["schemas"]["EditRequest"];
export type EditInfo = components["schemas"]["EditInfo"];
export type SetTo = Edit["set"];

/** One choice of what to edit: a label ("head 1"), and the cells, by axis ([first, last]; an axis not named is all). */
export interface Scope { key: string; label: string; where: Record<string, [number, number]> }

/** What a right-click on a displayed cell of a block can edit: the cells it stands for, then each of its position,
 * head and MLP neuron (the axes that have one), then the whole tensor. `region`: the cell's tensor cells by axis (a
 * downsampled cell stands for a tile of them). `words`: what each axis counts, as the server says ("attention head"). */
export function scopes(b: BlockInfo, region: Record<string, [number, number]>, words: Record<string, string> = {}): Scope[] {
  const axes = b.dims.map(([a]) => a);
  const whole = (a: string) => {
    const n = b.dims.find(([x]) => x === a)![1];
    return region[a][0] === 0 && region[a][1] === n - 1;
  };
  const one = (a: string) => region[a] && region[a][0] === region[a][1];
  const out: Scope[] = [];
  const cellWhere = Object.fromEntries(axes.filter((a) => !whole(a)).map((a) => [a, region[a]]));
  const cellWords = axes.filter((a) => !whole(a)).map((a) => `${a} ${span(region[a])}`).join(", ");
  out.push({ key: "cell", label: b.tile[0] * b.tile[1] > 1 ? `these cells (${cellWords})` : `this cell (${cellWords})`,
    where: cellWhere });
  for (const a of ["pos", "head", "d_mlp"]) {
    if (!axes.includes(a) || !one(a) || axes.length === 1) continue;
    out.push({ key: a, label: `${words[a] ?? a} ${region[a][0]}`, where: { [a]: region[a] } });
  }
  out.push({ key: "all", label: `all of ${b.tensor}`, where: {} });
  // (a tensor of one axis, or a cell that is already a whole row: scopes that set the same cells once)
  const seen = new Set<string>();
  return out.filter((s) => {
    const k = JSON.stringify(Object.entries(s.where).filter(([a, r]) => !(r[0] === 0 && r[1] === (b.dims.find(([x]) => x === a)?.[1] ?? 0) - 1)));
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const span = (r: [number, number]) => (r[0] === r[1] ? String(r[0]) : `${r[0]}–${r[1]}`);

/** The scope a right-click offers first: the head or the neuron the cell is in, else the cell. */
export function preferredScope(list: Scope[]): Scope {
  return list.find((s) => s.key === "head") ?? list.find((s) => s.key === "d_mlp") ?? list[0];
}

/** The edit of a scope of a tensor: `where` with single cells written as one index. */
export function makeEdit(tensor: string, scope: Scope, set: SetTo): Edit {
  const where: Edit["where"] = {};
  for (const [a, [lo, hi]] of Object.entries(scope.where)) where[a] = lo === hi ? lo : [lo, hi];
  return { tensor, where, set };
}

/** Whether a cell (its index, by axis) is among an edit's cells. */
export function inEdit(e: { where: Record<string, [number, number]> }, at: Record<string, number>): boolean {
  return Object.entries(e.where).every(([a, [lo, hi]]) => at[a] === undefined || (lo <= at[a] && at[a] <= hi));
}

/** The edits as the URL keeps them (JSON), and back: a list that does not read as edits is no edits. */
export function formatEdits(edits: Edit[]): string {
  return JSON.stringify(edits);
}

export function parseEdits(text: string | null): Edit[] | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text);
    const ok = Array.isArray(v) && v.length > 0 && v.every((e) => e && typeof e.tensor === "string" && e.set !== undefined &&
      (e.where === undefined || (typeof e.where === "object" && !Array.isArray(e.where))));
    return ok ? v.map((e: Edit) => ({ tensor: e.tensor, where: e.where ?? {}, set: e.set })) : undefined;
  } catch {
    return undefined;
  }
}
