// Where one number came from: a cell's value, its op's formula filled in with the numbers of the pass, a result
// recomputed in float64 that ends in the same value, and the cells it was computed from (lit on hover). This is
// the only copy: the served page, the notebook widget and a static export all run it. It reads the pass through a
// `Pass` (a HeldPass here): the numbers it holds, NaN for those it does not yet, which it lists as wanted, so that
// cells.ts can fetch them all in one request and run it again (see explainCells).

import type { components } from "./api-schema";
import { inEdit } from "./edits";
import { fmt, formatG, pyRepr, thousands } from "./pyformat";

type Schemas = components["schemas"];
/** What explain reads of a tensor and of a pass's graph, from the server's description of them (GET
 * /api/models/{name}/graph, whose generated type is api-schema.ts's GraphJson; an export stores the same JSON). */
export type Spec = Pick<Schemas["TensorInfo"], "name" | "title" | "kind" | "axes" | "op" | "inputs" | "attrs">
  & Partial<Schemas["TensorInfo"]>;
export interface GraphJson {
  past: Schemas["GraphJson"]["past"];
  axes: Record<string, Pick<Schemas["AxisInfo"], "label" | "color"> & Partial<Schemas["AxisInfo"]>>;
  ops: Record<string, Pick<Schemas["OpInfo"], "formula" | "description">>;
  tensors: Spec[];
}

/** Cells of a tensor: a range [first, last] on each axis, and what they are to the op (input, weight, ...). */
export type Region = Schemas["Region"];

export interface Explanation {
  tensor: string;
  title: string;
  kind: string;
  op: string | null;
  index: { axis: string; label: string; i: number; color: string; name?: string | null; shown?: string }[];
  value: number;  // −∞ for a masked score
  value_text: string;
  code: string;
  note?: string;
  parameter?: { name: string; title: string; numbers: number; text: string };
  formula: null | {
    template: string;
    description: string;
    text: string;
    result: number;
    masked?: boolean;
    rows: string[][];  // each a label and its number
    terms?: { count: number; shown: { at: Record<string, number>; x: number; w: number; product: number }[]; rest: number; x: string; w: string };
    curve?: { name: string; xs: number[]; ys: number[]; x: number; y: number };
  };
  sources: Region[];
  target: Region;
  /** A cell an intervention set: the edit, in words, and the value the pass computed before it (the formula's). */
  edited?: { label: string; computed: number; computed_text: string };
  /** A weight of a quantized model: how it is stored (storedText). */
  stored?: StoredText;
}

/** A weight cell as its model stores it (POST /api/cells's `stored`: views/provenance.stored_cell). */
export type StoredCell = Schemas["StoredCell"];

/** A stored weight cell in words: a headline, its numbers (label, text), the formula that reads it back, a note. */
export interface StoredText {
  fmt: string;
  precision: string;
  headline: string;
  rows: [string, string][];
  formula?: string;
  note?: string;
  cell: StoredCell;
}

/** An intervention on the pass (an edited pass's scene lists them, core/edits.py): the tensor, the cells it set by
 * axis ([first, last]), and what it did, in words. */
export interface EditMark { tensor: string; where: Record<string, [number, number]>; label: string }

export type At = Record<string, number>;  // an index by axis

/** Numbers of one tensor with some axes fixed: the axes left, in the tensor's order, their sizes and the values. */
export interface Slice { axes: string[]; shape: number[]; values: ArrayLike<number> }

/** One pass, as explain reads it. */
export interface Pass {
  model: string;
  graph: GraphJson;  // this pass's graph: a generation step's has the KV cache's tensors, and past > 0
  tokens: number[];  // this pass's tokens (after the `past` cached ones)
  tokenStrs: string[];
  /** Any tensor's shape (a weight or a computed one); undefined: not in the graph. */
  shape(name: string): number[] | undefined;
  /** The tensor's numbers at `fixed` (only the tensor's own axes), an axis not named whole. */
  select(name: string, fixed: At): Slice;
  /** What an index of a named axis stands for (a token), else null. */
  indexName(axis: string, i: number): string | null;
  /** The interventions of an edited pass (none: a clean one). */
  edits?: EditMark[];
  /** The tensors the engine that ran the pass did not return (nnsight's: a part of the graph), and its name. */
  notFetched?: Set<string>;
  engine?: string;
  /** A weight cell as the model stores it; undefined: not held yet (wanted); null: no source says (an export). */
  stored?(tensor: string, index: number[]): StoredCell | null | undefined;
}

type Ranges = Record<string, [number, number]>;

/** The slice of `s` at `fixed` (axes of `s` only), its other axes whole. */
export function subSlice(s: Slice, fixed: At): Slice {
  const { axes, shape, values } = s;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const left = axes.map((a, i) => [a, i] as const).filter(([a]) => !(a in fixed));
  if (left.length === axes.length) return s;
  const n = left.reduce((k, [, i]) => k * shape[i], 1);
  let base = 0;
  axes.forEach((a, i) => { if (a in fixed) base += fixed[a] * strides[i]; });
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let rem = k, off = base;
    for (let j = left.length - 1; j >= 0; j--) {
      const i = left[j][1];
      off += (rem % shape[i]) * strides[i];
      rem = Math.floor(rem / shape[i]);
    }
    out[k] = values[off];
  }
  return { axes: left.map(([a]) => a), shape: left.map(([, i]) => shape[i]), values: out };
}

/** The shape of every tensor of a pass of `n` new tokens after `past` cached ones, from its graph (a size the graph
 * leaves null depends on the input: positions, key positions, cached positions). */
export function shapesOf(graph: GraphJson, n: number): Map<string, number[]> {
  const sizes: Record<string, number> = { pos: n, key_pos: graph.past + n, past_pos: graph.past };
  for (const [a, info] of Object.entries(graph.axes)) if (info.size != null && !(a in sizes)) sizes[a] = info.size;
  return new Map(graph.tensors.map((t) => [t.name, t.axes.map((a, i) => t.shape?.[i] ?? sizes[a])]));
}

const sum = (a: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
};

const TOP_TERMS = 5, CURVE_POINTS = 48;

/** An error in what was asked (a tensor not in the graph, an index outside it): its message says what. */
export class ExplainError extends Error {}

class Reader {
  specs = new Map<string, Spec>();
  constructor(readonly p: Pass) {
    for (const t of p.graph.tensors) this.specs.set(t.name, t);
  }

  spec(name: string): Spec {
    return this.specs.get(name)!;
  }

  shape(name: string): number[] {
    return this.p.shape(name)!;
  }

  /** The tensor's numbers at `fixed` (an axis not named stays whole), in float64, with the axes left in order. */
  select(name: string, fixed: At): { axes: string[]; shape: number[]; values: Float64Array } {
    const s = this.p.select(name, pick(fixed, this.spec(name).axes.filter((a) => a in fixed)));
    return { ...s, values: Float64Array.from(s.values) };
  }

  /** The number at `at` (which may name more axes than the tensor has). */
  value(name: string, at: At): number {
    return this.select(name, pick(at, this.spec(name).axes)).values[0];
  }

  full(name: string): Ranges {
    const shape = this.shape(name);
    return Object.fromEntries(this.spec(name).axes.map((a, i) => [a, [0, shape[i] - 1]]));
  }

  region(name: string, fixed: At, role: string): Region {
    const ranges = this.full(name);
    for (const [a, i] of Object.entries(fixed)) if (a in ranges) ranges[a] = [i, i];
    return { tensor: name, ranges, role };
  }
}

const pick = (at: At, axes: string[]) => Object.fromEntries(axes.map((a) => [a, at[a]]));
const without = (at: At, drop: string[]) => Object.fromEntries(Object.entries(at).filter(([a]) => !drop.includes(a)));

/** The indices of the `TOP_TERMS` terms of largest magnitude, a tie in the order of the terms. */
function topTerms(terms: Float64Array): number[] {
  return [...terms.keys()].sort((a, b) => Math.abs(terms[b]) - Math.abs(terms[a])).slice(0, TOP_TERMS);
}

function termsOf(terms: Float64Array, order: number[], where: (k: number) => At, x: Float64Array, w: Float64Array,
  xName: string, wName: string) {
  const shown = order.map((k) => ({ at: where(k), x: x[k], w: w[k], product: terms[k] }));
  return { count: terms.length, shown, rest: sum(terms) - sum(order.map((k) => terms[k])), x: xName, w: wName };
}

/** An op's part of an explanation: its formula's text, result and rows (and terms or a curve), and the cells it read. */
type Worked = Omit<NonNullable<Explanation["formula"]>, "template" | "description"> & { sources: Region[]; template?: string };
type Explainer = (r: Reader, t: Spec, at: At, value: number) => Worked;

function unravel(k: number, shape: number[]): number[] {
  const out = new Array(shape.length).fill(0);
  for (let j = shape.length - 1; j >= 0; j--) {
    out[j] = k % shape[j];
    k = Math.floor(k / shape[j]);
  }
  return out;
}

const linear: Explainer = (r, t, at) => {
  const [xName, wName] = t.inputs, bName = t.inputs[2] ?? null;
  const xs = r.spec(xName), ws = r.spec(wName);
  const contract = t.attrs.contract as string[];
  const xFixed = pick(at, xs.axes.filter((a) => !contract.includes(a)));
  const wFixed = pick(at, ws.axes.filter((a) => !contract.includes(a)));
  const x = r.select(xName, xFixed);
  const wSel = r.select(wName, wFixed);
  // W's slice with its contracted axes in the order of `contract`, so that the products pair up
  const wShape = contract.map((a) => wSel.shape[wSel.axes.indexOf(a)]);
  const w = new Float64Array(wSel.values.length);
  for (let k = 0; k < w.length; k++) {
    const idx = unravel(k, wShape);
    let off = 0;
    wSel.axes.forEach((a, j) => { off = off * wSel.shape[j] + idx[contract.indexOf(a)]; });
    w[k] = wSel.values[off];
  }
  const terms = x.values.map((v, k) => v * w[k]);
  const bias = bName ? r.value(bName, at) : 0;
  const total = sum(terms), result = bias + total;
  const order = topTerms(terms);
  const where = (k: number) => Object.fromEntries(unravel(k, x.shape).map((i, j) => [contract[j], i]));
  const sumLabel = `Σ ${contract.map((a) => r.p.graph.axes[a].label).join(",")}`;
  const text = `${bName ? `${fmt(bias)} + ${sumLabel} x·W` : `${sumLabel} x·W`} (${terms.length} terms) = ${fmt(result)}`;
  const sources = [r.region(xName, xFixed, "input"), r.region(wName, wFixed, "weight")];
  if (bName) sources.push(r.region(bName, pick(at, r.spec(bName).axes), "bias"));
  return { text, result, rows: [...(bName ? [["bias b", fmt(bias)]] : []), [`${sumLabel} x·W`, fmt(total)]],
    terms: termsOf(terms, order, where, x.values, w, xName, wName), sources };
};

const embed: Explainer = (r, t, at) => {
  const [wName, tokName] = t.inputs;
  const tok = r.p.tokens[at.pos];
  const result = r.value(wName, { vocab: tok, d_model: at.d_model });
  return { text: `W_E[${tok}, ${at.d_model}] = ${fmt(result)}: token ${pyRepr(r.p.tokenStrs[at.pos])} (id ${tok}) picks ` +
      `W_E[${tok}], the vector of id ${tok}`, result, rows: [["token id", String(tok)]],
    sources: [r.region(tokName, { pos: at.pos }, "input"), r.region(wName, { vocab: tok, d_model: at.d_model }, "weight")] };
};

const posEmbed: Explainer = (r, t, at) => {
  const wName = t.inputs[0];
  const n = at.pos + Number(t.attrs.offset ?? 0);
  const result = r.value(wName, { n_ctx: n, d_model: at.d_model });
  return { text: `W_pos[${n}, ${at.d_model}] = ${fmt(result)}: position ${n} picks W_pos[${n}], the vector of position ${n}`,
    result, rows: [], sources: [r.region(wName, { n_ctx: n, d_model: at.d_model }, "weight")] };
};

const concat: Explainer = (r, t, at) => {
  const [pastName, newName] = t.inputs;
  const j = at.key_pos, past = r.p.graph.past;
  const rest = without(at, ["key_pos"]);
  if (j < past) {
    const result = r.value(pastName, { past_pos: j, ...rest });
    return { text: `from the cache: computed at an earlier step, position ${j} = ${fmt(result)}`, result, rows: [],
      sources: [r.region(pastName, { past_pos: j, ...rest }, "input")] };
  }
  const result = r.value(newName, { pos: j - past, ...rest });
  return { text: `new at this step: position ${j} = ${fmt(result)}`, result, rows: [],
    sources: [r.region(newName, { pos: j - past, ...rest }, "input")] };
};

const add: Explainer = (r, t, at) => {
  // two tensors (the residual connection), or more (a parallel block: the stream, attention's output and the MLP's)
  const letters = t.inputs.map((_, k) => "abcdefgh"[k]);
  const xs = t.inputs.map((name) => r.value(name, at)), result = xs.reduce((sum, x) => sum + x, 0);
  return { text: `${letters.join(" + ")} = ${xs.map(fmt).join(" + ")} = ${fmt(result)}`, result,
    ...(xs.length > 2 ? { template: letters.join(" + ") } : {}),
    rows: t.inputs.map((name, k) => [`${letters[k]}: ${r.spec(name).title}`, fmt(xs[k])]),
    sources: t.inputs.map((name) => r.region(name, at, "input")) };
};

const identity: Explainer = (r, t, at) => {
  const result = r.value(t.inputs[0], at);
  return { text: `the same number as ${t.inputs[0]}: ${fmt(result)}`, result, rows: [],
    sources: [r.region(t.inputs[0], at, "input")] };
};

const scale: Explainer = (r, t, at) => {
  const x = r.value(t.inputs[0], at);
  const c = Number(t.attrs.factor), name = String(t.attrs.factor_name ?? "c");
  return { text: `x × ${name} = ${fmt(x)} × ${fmt(c)} = ${fmt(x * c)}`, result: x * c, rows: [["x", fmt(x)], [name, fmt(c)]],
    sources: [r.region(t.inputs[0], at, "input")] };
};

const lnMean: Explainer = (r, t, at) => {
  const row = r.select(t.inputs[0], { pos: at.pos }).values;
  const total = sum(row), result = total / row.length;
  return { text: `Σ x / ${row.length} = ${fmt(total)} / ${row.length} = ${fmt(result)}`, result, rows: [],
    sources: [r.region(t.inputs[0], { pos: at.pos }, "input")] };
};

const lnScale: Explainer = (r, t, at) => {
  const [xName, mName] = t.inputs;
  const row = r.select(xName, { pos: at.pos }).values;
  const mu = r.value(mName, { pos: at.pos }), eps = Number(t.attrs.eps);
  const variance = sum(row.map((v) => (v - mu) ** 2)) / row.length;
  const result = Math.sqrt(variance + eps);
  return { text: `√(${fmt(variance)} + ${formatG(eps)}) = ${fmt(result)}`, result,
    rows: [["μ", fmt(mu)], ["variance Σ(x − μ)²/C", fmt(variance)], ["ε", formatG(eps)]],
    sources: [r.region(xName, { pos: at.pos }, "input"), r.region(mName, { pos: at.pos }, "aggregate")] };
};

const lnNormalize: Explainer = (r, t, at) => {
  const [xName, mName, sName] = t.inputs;
  const x = r.value(xName, at), mu = r.value(mName, at), sigma = r.value(sName, at);
  const result = (x - mu) / sigma;
  return { text: `(${fmt(x)} − ${fmt(mu)}) / ${fmt(sigma)} = ${fmt(result)}`, result,
    rows: [["x", fmt(x)], ["μ", fmt(mu)], ["σ", fmt(sigma)]],
    sources: [r.region(xName, at, "input"), r.region(mName, { pos: at.pos }, "aggregate"),
      r.region(sName, { pos: at.pos }, "aggregate")] };
};

const lnAffine: Explainer = (r, t, at) => {
  const [nName, wName] = t.inputs, bName = t.inputs[2] ?? null;
  const n = r.value(nName, at), g = r.value(wName, at), b = bName ? r.value(bName, at) : 0;
  const result = n * g + b;
  const sources = [r.region(nName, at, "input"), r.region(wName, { d_model: at.d_model }, "weight")];
  if (bName) sources.push(r.region(bName, { d_model: at.d_model }, "bias"));
  const stats = r.spec(nName).inputs.slice(1).map((s) => r.value(s, at));
  if (stats.length === 1) {  // RMSNorm: x / s, and no bias
    return { text: `x / s · γ = ${fmt(n)} × ${fmt(g)} = ${fmt(result)}`, result,
      rows: [["x̂ = x / s", fmt(n)], ["s", fmt(stats[0])], ["γ", fmt(g)]], sources };
  }
  const [mu, sigma] = stats;
  return { text: `(x − μ) / σ · γ + β = ${fmt(n)} × ${fmt(g)} + ${fmt(b)} = ${fmt(result)}`, result,
    rows: [["x̂ = (x − μ) / σ", fmt(n)], ["μ", fmt(mu)], ["σ", fmt(sigma)], ["γ", fmt(g)], ["β", fmt(b)]], sources };
};

const rmsScale: Explainer = (r, t, at) => {
  const row = r.select(t.inputs[0], { pos: at.pos }).values;
  const ms = sum(row.map((v) => v ** 2)) / row.length, eps = Number(t.attrs.eps);
  const result = Math.sqrt(ms + eps);
  return { text: `√(Σ x² / ${row.length} + ${formatG(eps)}) = √(${fmt(ms)} + ${formatG(eps)}) = ${fmt(result)}`, result,
    rows: [["mean square Σ x²/C", fmt(ms)], ["ε", formatG(eps)]], sources: [r.region(t.inputs[0], { pos: at.pos }, "input")] };
};

const rmsNormalize: Explainer = (r, t, at) => {
  const [xName, sName] = t.inputs;
  const x = r.value(xName, at), s = r.value(sName, at), result = x / s;
  return { text: `x / s = ${fmt(x)} / ${fmt(s)} = ${fmt(result)}`, result, rows: [["x", fmt(x)], ["s", fmt(s)]],
    sources: [r.region(xName, at, "input"), r.region(sName, { pos: at.pos }, "aggregate")] };
};

const kvHead = (t: Spec, h: number) => {
  const group = Number(t.attrs.kv_group ?? 1);
  return [Math.floor(h / group), group];
};

const attnScores: Explainer = (r, t, at) => {
  const [qName, kName] = t.inputs;
  const h = at.head, i = at.pos, j = at.key_pos;
  const [kh, group] = kvHead(t, h);
  const kAxes = r.spec(kName).axes;
  const sources = [r.region(qName, { pos: i, head: h }, "input"), r.region(kName, { [kAxes[0]]: j, [kAxes[1]]: kh }, "input")];
  const shared = group > 1 ? [["key head", `${kh} (shared by query heads ${kh * group} to ${kh * group + group - 1})`]] : [];
  if (j > i + r.p.graph.past) {
    return { text: "future position: masked to −∞", result: -Infinity, masked: true,
      rows: [["query position", String(i)], ["key position", String(j)]], sources };
  }
  const q = r.select(qName, { [r.spec(qName).axes[0]]: i, [r.spec(qName).axes[1]]: h }).values;
  const k = r.select(kName, { [kAxes[0]]: j, [kAxes[1]]: kh }).values;
  const terms = q.map((v, a) => v * k[a]);
  const dot = sum(terms), sc = Number(t.attrs.scale), result = dot / sc;
  const order = topTerms(terms);
  return { text: `q · k / ${fmt(sc)} = ${fmt(dot)} / ${fmt(sc)} = ${fmt(result)}`, result,
    rows: [["q · k", fmt(dot)], ["√A", fmt(sc)], ...shared],
    terms: termsOf(terms, order, (a) => ({ d_head: a }), q, k, qName, kName), sources };
};

const weightedSum: Explainer = (r, t, at) => {
  const [pName, vName] = t.inputs;
  const h = at.head, i = at.pos, a = at.d_head;
  const [kh, group] = kvHead(t, h);
  const vAxes = r.spec(vName).axes;
  const p = r.select(pName, { head: h, pos: i }).values;
  const v = r.select(vName, { [vAxes[1]]: kh, d_head: a }).values;
  const terms = p.map((x, j) => x * v[j]);
  const result = sum(terms), order = topTerms(terms);
  return { text: `Σ T' p·v (${terms.length} terms) = ${fmt(result)}`, result,
    rows: [["Σ T' p·v", fmt(result)], ...(group > 1 ? [["value head", `${kh} (shared by ${group} query heads)`]] : [])],
    terms: termsOf(terms, order, (j) => ({ key_pos: j }), p, v, pName, vName),
    sources: [r.region(pName, { head: h, pos: i }, "input"), r.region(vName, { [vAxes[1]]: kh, d_head: a }, "input")] };
};

const rotary: Explainer = (r, t, at) => {
  const xName = t.inputs[0];
  const shape = r.shape(xName), turned = Number(t.attrs.rotary_dims ?? shape[shape.length - 1]), half = turned / 2;
  const d = at.d_head, i = d % half;
  const p = at.pos + Number(t.attrs.offset ?? 0);
  const head = without(at, ["pos", "d_head"]);
  if (d >= turned) {  // partial rotary: the channels after the first `turned` pass through
    const x = r.value(xName, at);
    return { text: `channel ${d} does not turn (only the first ${turned} do): ${fmt(x)}`, result: x,
      rows: [["x", fmt(x)]], sources: [r.region(xName, at, "input")] };
  }
  const freq = Number((t.attrs.inv_freq as number[])[i]);
  const theta = Math.fround(Math.fround(p) * Math.fround(freq));
  const x = r.select(xName, { pos: at.pos, ...head }).values;
  const a = x[i], b = x[i + half], c = Math.cos(theta), s = Math.sin(theta);
  const result = d < half ? a * c - b * s : b * c + a * s;
  const formula = d < half ? `a cos θ − b sin θ = ${fmt(a)} × ${fmt(c)} − ${fmt(b)} × ${fmt(s)}`
    : `b cos θ + a sin θ = ${fmt(b)} × ${fmt(c)} + ${fmt(a)} × ${fmt(s)}`;
  return { text: `${formula} = ${fmt(result)}`, result,
    rows: [["pair", `channels ${i} and ${i + half}`], ["θ = position × frequency", `${p} × ${fmt(freq)} = ${fmt(theta)} rad`],
      ["a", fmt(a)], ["b", fmt(b)]],
    sources: [r.region(xName, { pos: at.pos, ...head, d_head: i }, "input"),
      r.region(xName, { pos: at.pos, ...head, d_head: i + half }, "input")] };
};

/** The row (last axis) of the op's first input that the cell reads. */
function rowOf(r: Reader, t: Spec, at: At) {
  const xName = t.inputs[0];
  const rowAt = pick(at, r.spec(xName).axes.slice(0, -1));
  return { xName, rowAt, row: r.select(xName, rowAt).values };
}

const softmaxMax: Explainer = (r, t, at) => {
  const { xName, rowAt, row } = rowOf(r, t, at);
  const finite = row.filter(Number.isFinite);
  let j = -1;
  row.forEach((v, k) => { if (Number.isFinite(v) && (j < 0 || v > row[j])) j = k; });
  const result = row[j];
  const axes = r.spec(xName).axes;
  return { text: `max of ${finite.length} values = ${fmt(result)} (at ${r.p.graph.axes[axes[axes.length - 1]].label} = ${j})`,
    result, rows: [], sources: [r.region(xName, rowAt, "input")] };
};

const softmaxSumExp: Explainer = (r, t, at) => {
  const { xName, rowAt, row } = rowOf(r, t, at);
  const m = r.value(t.inputs[1], rowAt);
  const result = sum(row.map((v) => Math.exp(v - m)));
  return { text: `Σ exp(x − ${fmt(m)}) over ${row.length} values = ${fmt(result)}`, result, rows: [["m (row max)", fmt(m)]],
    sources: [r.region(xName, rowAt, "input"), r.region(t.inputs[1], rowAt, "aggregate")] };
};

const softmax: Explainer = (r, t, at) => {
  const [xName, mName, sName] = t.inputs;
  const rowAt = pick(at, r.spec(xName).axes.slice(0, -1));
  const x = r.value(xName, at), m = r.value(mName, rowAt), s = r.value(sName, rowAt);
  const result = Math.exp(x - m) / s;
  const sources = [r.region(xName, at, "input"), r.region(mName, rowAt, "aggregate"), r.region(sName, rowAt, "aggregate")];
  if (x === -Infinity) {
    return { text: `exp(−∞ − ${fmt(m)}) / ${fmt(s)} = 0: a masked (future) position gets no attention`, result: 0,
      rows: [["max m", fmt(m)], ["Σ exp(x − m)", fmt(s)]], sources };
  }
  return { text: `exp(${fmt(x)} − ${fmt(m)}) / ${fmt(s)} = ${fmt(Math.exp(x - m))} / ${fmt(s)} = ${fmt(result)}`, result,
    rows: [["x", fmt(x)], ["max m", fmt(m)], ["Σ exp(x − m)", fmt(s)]], sources };
};

/** erf to about 1e-16: e^(−x²) times a series of positive terms (no cancellation), 1 beyond 6. */
function erf(x: number): number {
  const z = Math.abs(x);
  if (z > 6) return Math.sign(x);
  let term = z, acc = z;
  for (let n = 1; term > acc * 1e-17; n++) {
    term *= (2 * z * z) / (2 * n + 1);
    acc += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * acc;
}

const CURVES: Record<string, [string, (x: number) => number]> = {
  gelu: ["GELU", (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))],
  gelu_erf: ["GELU", (x) => 0.5 * x * (1 + erf(x / Math.sqrt(2)))],
  relu: ["ReLU", (x) => Math.max(x, 0)],
  silu: ["SiLU", (x) => x / (1 + Math.exp(-x))],
  sigmoid: ["σ", (x) => 1 / (1 + Math.exp(-x))],
};

const activation: Explainer = (r, t, at) => {
  const [name, fn] = CURVES[t.op!];
  const x = r.value(t.inputs[0], at), result = fn(x);
  const lo = Math.min(-4, x - 0.5), hi = Math.max(4, x + 0.5), step = (hi - lo) / (CURVE_POINTS - 1);
  const xs = Array.from({ length: CURVE_POINTS }, (_, i) => (i === CURVE_POINTS - 1 ? hi : i * step + lo));
  return { text: `${name}(${fmt(x)}) = ${fmt(result)}`, result, rows: [["x", fmt(x)]],
    curve: { name, xs, ys: xs.map(fn), x, y: result }, sources: [r.region(t.inputs[0], at, "input")] };
};

const mul: Explainer = (r, t, at) => {
  const [aName, bName] = t.inputs;
  const a = r.value(aName, at), b = r.value(bName, at);
  return { text: `gate × up = ${fmt(a)} × ${fmt(b)} = ${fmt(a * b)}`, result: a * b,
    rows: [[`gate: ${r.spec(aName).title}`, fmt(a)], [`up: ${r.spec(bName).title}`, fmt(b)]],
    sources: [r.region(aName, at, "input"), r.region(bName, at, "input")] };
};

const EXPLAIN: Record<string, Explainer> = {
  embed, pos_embed: posEmbed, concat, add, identity, scale,
  ln_mean: lnMean, ln_scale: lnScale, ln_normalize: lnNormalize, ln_affine: lnAffine,
  rms_scale: rmsScale, rms_normalize: rmsNormalize, linear,
  attn_scores: attnScores, weighted_sum: weightedSum, rotary,
  softmax_max: softmaxMax, softmax_sum_exp: softmaxSumExp, softmax,
  gelu: activation, gelu_erf: activation, relu: activation, silu: activation, sigmoid: activation, mul,
};

/** The slices of `tensor` that hold a region's numbers: the axes whose range is one index fixed, and of the others all
 * but one (the one that leaves the fewest numbers to send) fixed at each index of its range. */
function regionSlices(axes: string[], shape: number[], ranges: Ranges): At[] {
  const wide = axes.filter((a) => ranges[a][0] < ranges[a][1]);
  const len = (a: string) => ranges[a][1] - ranges[a][0] + 1;
  const cost = (whole: string) => shape[axes.indexOf(whole)] * wide.filter((a) => a !== whole).reduce((k, a) => k * len(a), 1);
  const whole = wide.reduce<string | null>((best, a) => (best === null || cost(a) < cost(best) ? a : best), null);
  let out: At[] = [Object.fromEntries(axes.filter((a) => !wide.includes(a)).map((a) => [a, ranges[a][0]]))];
  for (const a of wide) {
    if (a === whole) continue;
    out = out.flatMap((at) => Array.from({ length: len(a) }, (_, k) => ({ ...at, [a]: ranges[a][0] + k })));
  }
  return out;
}

/** The cell of largest magnitude inside a region (a downsampled cell stands for a tile). */
export function pickInRegion(p: Pass, tensor: string, ranges: Record<string, number[]>): number[] {
  const t = new Reader(p).spec(tensor);
  if (!t) throw new ExplainError(`unknown tensor ${pyRepr(tensor)}: not in ${p.model}'s graph`);
  const shape = p.shape(tensor)!;
  for (const [ax, rg] of Object.entries(ranges)) {
    const size = t.axes.includes(ax) ? shape[t.axes.indexOf(ax)] : undefined;
    if (size === undefined || rg.length !== 2 || !(0 <= rg[0] && rg[0] <= rg[1] && rg[1] < size)) {
      throw new ExplainError(`region ${ax}=[${rg.join(", ")}] does not fit ${tensor}, whose axes are ` +
        t.axes.map((x, i) => `${x} (0 to ${shape[i] - 1})`).join(", "));
    }
  }
  const full: Ranges = Object.fromEntries(t.axes.map((a, i) => [a, (ranges[a] as [number, number]) ?? [0, shape[i] - 1]]));
  let best: number[] = t.axes.map((a) => full[a][0]), bestMag = -2;
  for (const at of regionSlices(t.axes, shape, full)) {
    const s = p.select(tensor, at);
    const idx = t.axes.map((a) => at[a] ?? full[a][0]);
    const free = s.axes.map((a) => t.axes.indexOf(a));  // (at most one axis is left whole)
    const lo = free.length ? full[s.axes[0]][0] : 0, hi = free.length ? full[s.axes[0]][1] : 0;
    for (let k = lo; k <= hi; k++) {
      const v = s.values[k], mag = Number.isFinite(v) ? Math.abs(v) : -1;
      if (free.length) idx[free[0]] = k;
      if (mag > bestMag || (mag === bestMag && before(idx, best))) [best, bestMag] = [[...idx], mag];  // a tie: the first
    }
  }
  return best;
}

/** Whether index a comes before b in row-major order. */
function before(a: number[], b: number[]): boolean {
  const k = a.findIndex((v, i) => v !== b[i]);
  return k >= 0 && a[k] < b[k];
}

/** Where one number came from: the cell's value, its op's formula with the pass's numbers, and the cells it came from. */
export function explain(p: Pass, tensor: string, index: number[]): Explanation {
  const r = new Reader(p);
  const t = r.spec(tensor);
  if (!t) throw new ExplainError(`unknown tensor ${pyRepr(tensor)}: not in ${p.model}'s graph`);
  const shape = r.shape(tensor);
  if (index.length !== shape.length || index.some((i, k) => !(0 <= i && i < shape[k]))) {
    throw new ExplainError(`index [${index.join(", ")}] is outside ${tensor} of shape [${shape.join(", ")}]`);
  }
  const at: At = Object.fromEntries(t.axes.map((a, k) => [a, index[k]]));
  const value = r.value(tensor, at);
  const out: Explanation = {
    tensor, title: t.title + ("head" in at ? `, head ${at.head}` : ""), kind: t.kind, op: t.op,
    index: t.axes.map((a) => {
      const name = p.indexName(a, at[a]);
      return { axis: a, label: p.graph.axes[a].label, i: at[a], color: p.graph.axes[a].color, name,
        shown: p.graph.axes[a].named_by === "vocabulary" && name !== null ? name : String(at[a]) };
    }),
    value, value_text: fmt(value),
    code: `trace["${tensor}"][${index.join(", ")}]`,
    formula: null, sources: [], target: r.region(tensor, at, "target"),
  };
  if (t.kind === "weight") {
    const n = shape.reduce((a, b) => a * b, 1);
    out.parameter = { name: tensor, title: t.title, numbers: n,
      text: `one of the ${thousands(n)} numbers of the parameter ${tensor} (${t.title}); learned in training, the same for every input` };
    const st = p.stored?.(tensor, index);
    if (st && st.precision !== "f32") {  // a quantized model's weight: how it is stored, and its block lit
      out.stored = storedText(st);
      out.sources = st.regions.map((ranges) => ({ tensor, ranges, role: "block" }));
    }
    return out;
  }
  if (t.kind === "input" && !("pos" in at) && !("past_pos" in at)) {  // a classifier's input: an image's pixel, a point's number
    const [a] = t.axes;
    out.note = `${p.graph.axes[a].description} ${at[a]}: given by the input, not computed`;
    return out;
  }
  if (t.kind === "input" && !("pos" in at)) {
    out.note = `cached at an earlier step: position ${at.past_pos} (${pyRepr(p.indexName("past_pos", at.past_pos) ?? "")}); ` +
      "this step reads it, nothing recomputes it";
    return out;
  }
  if (t.kind === "input") {
    out.note = `token ${pyRepr(p.tokenStrs[at.pos])} (id ${p.tokens[at.pos]}) at position ${at.pos + p.graph.past}`;
    return out;
  }
  const missing = t.inputs.filter((i) => p.notFetched?.has(i));
  if (missing.length) {  // a value the engine returned, from inputs it did not: its place and value, no formula
    out.note = `computed by the ${p.engine ?? ""} engine from ${missing.join(", ")}, which it did not fetch: no formula`;
    return out;
  }
  const { sources, ...formula } = EXPLAIN[t.op!](r, t, at, value);
  out.sources = sources;
  // the op's formula, unless this use of it reads otherwise (an add of three tensors: a + b + c)
  out.formula = { ...formula, template: formula.template ?? p.graph.ops[t.op!].formula,
    description: p.graph.ops[t.op!].description } as Explanation["formula"];
  // An edited cell: the last edit that set it, and what the op computed here before it did.
  const edit = (p.edits ?? []).filter((e) => e.tensor === tensor && inEdit(e, at)).pop();
  if (edit) out.edited = { label: edit.label, computed: formula.result, computed_text: fmt(formula.result) };
  return out;
}

/** What each format keeps of a number (the hover's words on a stored weight). */
const FLOAT_BITS: Record<string, string> = { f16: "1 sign, 5 exponent and 10 mantissa bits", bf16: "1 sign, 8 exponent and 7 mantissa bits (float32's top half)" };
const CODE_RANGE: Record<string, string> = { int8: "−127 … 127", q8_0: "−127 … 127", q4_0: "0 … 15", q4_1: "0 … 15" };

/** A weight cell of a quantized model in words: the format it is stored in, what it stores (the integer, its block's
 * scale, or the 16 bits), the formula that reads it back with its numbers, the original float32 number and the error. */
export function storedText(c: StoredCell): StoredText {
  const n = (v: number | null | undefined) => fmt(v ?? NaN);
  const n7 = (v: number | null | undefined) => formatG(v ?? NaN, 7).replaceAll("-", "−");
  const base = { fmt: c.fmt, precision: c.precision, cell: c, rows: [] as [string, string][] };
  if (c.fmt === "f32") {
    return { ...base, headline: `not quantized: kept in float32 in ${c.precision}`,
      note: `${c.precision} stores the matrices that products read and the token embedding, as llama.cpp does; a ` +
        "position embedding, a bias or a norm's gain stays float32" };
  }
  const err = c.error ?? 0, orig = c.original ?? 0;
  const pct = Math.abs(err / orig) * 100;
  const share = orig !== 0 ? ` (${pct >= 10 ? Math.round(pct) : formatG(pct, 2)} % of it)` : "";
  const tail: [string, string][] = c.from_file ? []  // (a file that stores it quantized: no float original to compare)
    : [["original (float32)", n(orig)], ["error (stored − original)", `${err > 0 ? "+" : ""}${n(err)}${share}`]];
  const fromFile = "the model's file stores it so: there is no float original to compare it with";
  const fallback = !c.from_file && c.fmt !== c.precision
    ? `stored as ${c.fmt}, not ${c.precision}: each of this matrix's rows holds ${c.row} numbers (along ${c.inputs.join(" × ")}), ` +
      `and ${c.precision}'s blocks of 32 cannot cut ${c.row} into whole blocks, so it is kept in 16-bit floats` : undefined;
  if (c.code === null || c.scale === null) {  // a 16-bit float
    return { ...base, headline: `stored as ${c.fmt}: the 16 bits ${c.bits} (${FLOAT_BITS[c.fmt] ?? ""})`,
      rows: [[`stored (${c.fmt})`, n7(c.value)], ...(c.from_file ? [] : [["original (float32)", n7(orig)], tail[1]] as [string, string][])],
      note: fallback ?? (c.from_file ? fromFile : "the nearest number 16 bits can hold (ties to even)") };  // (digits enough to see it)
  }
  const int8 = c.fmt === "int8", q4 = c.fmt === "q4_0", q41 = c.fmt === "q4_1", d = int8 ? "scale" : "d";
  const group = int8 ? `output channel ${c.block}: its row of ${c.row} weights shares one scale`
    : `block ${c.block}: 32 weights of a row that share one scale d`;
  const how = q4 ? "d = the block's largest-magnitude weight ÷ −8 (float16): that weight is stored as 0 and read back " +
      "almost exactly; every other one is rounded to the nearest of 16 steps of d"
    : `${d} = the largest |w| of the ${int8 ? "row" : "block"} ÷ 127${int8 ? "" : " (float16)"}: each weight is rounded to ` +
      `the nearest of 255 steps of ${d}`;
  return { ...base, headline: `stored as ${c.fmt} (${q4 || q41 ? 4 : 8} bits): the integer ${String(c.code).replace("-", "−")} ` +
      `(${CODE_RANGE[c.fmt] ?? ""}), in ${group}`,
    rows: [[`stored integer (code)`, String(c.code).replace("-", "−")], [int8 ? "the channel's scale" : "the block's scale d", n(c.scale)],
      ...(q41 ? [["the block's minimum m", n(c.min)] as [string, string]] : []), ...tail],
    formula: q4 ? `read back: d × (code − 8) = ${n(c.scale)} × (${c.code} − 8) = ${n(c.value)}`
      : q41 ? `read back: d × code + m = ${n(c.scale)} × ${c.code} ${(c.min ?? 0) < 0 ? "−" : "+"} ${n(Math.abs(c.min ?? 0))} = ${n(c.value)}`
      : `read back: ${d} × code = ${n(c.scale)} × ${String(c.code).replace("-", "−")} = ${n(c.value)}`,
    note: c.from_file ? `${fromFile}. ${q41 ? "q4_1: each block keeps a scale d and a minimum m; its 16 steps of d start at m"
      : how}` : how };
}

/** A slice held, and the axes it fixes. */
interface Held extends Slice { at: At }

/** The numbers of one pass held so far, as explain reads them: slices of its tensors (a whole tensor is the slice
 * that fixes no axis) and the names of its tokens. What explain reads and this does not hold it answers with NaN
 * (a name with null) and lists in `wanted` (`wantedNames`): the caller fetches those and runs explain again. */
export class HeldPass implements Pass {
  private held = new Map<string, Held[]>();
  private specs: Map<string, Spec>;
  bytes = 0;
  misses = 0;  // reads answered with NaN, ever
  wanted: { tensor: string; at: At }[] = [];
  wantedNames = new Set<number>();  // token ids whose text is not held
  wantedStored: { tensor: string; index: number[] }[] = [];  // weight cells whose stored form is not held
  storing = false;  // whether its source tells how a weight is stored (a served pass: POST /api/cells's `stored`)
  private storedCells = new Map<string, StoredCell>();
  private unquantized = false;
  names = new Map<number, string>();  // token id -> its text
  notFetched = new Set<string>();  // (Pass.notFetched)
  engine?: string;

  /** context: every token of the pass, the `graph.past` cached ones first. */
  constructor(readonly model: string, readonly graph: GraphJson, readonly context: number[], readonly tokenStrs: string[],
    public shapes: Map<string, number[]>, readonly edits: EditMark[] = []) {
    this.specs = new Map(graph.tensors.map((t) => [t.name, t]));
  }

  get tokens(): number[] {
    return this.context.slice(this.graph.past);
  }

  shape(name: string): number[] | undefined {
    return this.shapes.get(name);
  }

  /** Hold a slice of `tensor` that fixes the axes of `at`. */
  hold(tensor: string, at: At, s: Slice): void {
    const list = this.held.get(tensor) ?? [];
    if (list.some((h) => sameAt(h.at, at))) return;
    list.push({ ...s, at });
    this.held.set(tensor, list);
    this.bytes += s.values.length * 4;
  }

  /** Forget every slice (the held numbers grew past a budget). */
  drop(): void {
    this.held.clear();
    this.bytes = 0;
  }

  select(name: string, fixed: At): Slice {
    for (const h of this.held.get(name) ?? []) {
      if (Object.entries(h.at).every(([a, i]) => fixed[a] === i)) return subSlice(h, without(fixed, Object.keys(h.at)));
    }
    const axes = this.specs.get(name)!.axes, shape = this.shapes.get(name)!;
    this.misses++;
    if (!this.wanted.some((w) => w.tensor === name && sameAt(w.at, fixed))) this.wanted.push({ tensor: name, at: { ...fixed } });
    const left = axes.map((a, i) => [a, shape[i]] as const).filter(([a]) => !(a in fixed));
    return { axes: left.map(([a]) => a), shape: left.map(([, n]) => n), values: new Float64Array(left.reduce((k, [, n]) => k * n, 1)).fill(NaN) };
  }

  stored(tensor: string, index: number[]): StoredCell | null | undefined {
    if (!this.storing || this.unquantized) return null;
    const key = `${tensor}|${index.join(",")}`, s = this.storedCells.get(key);
    if (!s && !this.wantedStored.some((w) => `${w.tensor}|${w.index.join(",")}` === key)) this.wantedStored.push({ tensor, index });
    return s;
  }

  /** Hold a weight cell's stored form. */
  holdStored(s: StoredCell): void {
    this.storedCells.set(`${s.tensor}|${s.index.join(",")}`, s);
    if (s.precision === "f32") this.unquantized = true;  // (a model as trained: its other weights are not asked for)
  }

  indexName(axis: string, i: number): string | null {
    const by = this.graph.axes[axis]?.named_by;
    const id = by === "input" ? this.context[i + (axis === "pos" ? this.graph.past : 0)] : by === "vocabulary" ? i : null;
    if (id === null || id === undefined) return null;
    const name = this.names.get(id);
    if (name === undefined) this.wantedNames.add(id);
    return name ?? null;
  }

  /** Whether the last run of explain read something not held. */
  get wanting(): boolean {
    return this.wanted.length > 0 || this.wantedNames.size > 0 || this.wantedStored.length > 0;
  }
}

function sameAt(a: At, b: At): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** A cell to explain: by its index, or by a region (a downsampled cell: its cell of largest magnitude). */
export interface CellQuery { tensor: string; index?: number[]; region?: Record<string, [number, number]> }

/** Where a pass's numbers come from: its HeldPass, and a way to fetch what an explanation wanted into it. */
export interface PassSource {
  pass(): Promise<HeldPass>;
  fetch(p: HeldPass): Promise<void>;
}

export const MAX_ROUNDS = 4;

/** A region that is one cell (every axis one index): its index. */
function oneCell(p: Pass, c: CellQuery): number[] | undefined {
  const axes = p.graph.tensors.find((t) => t.name === c.tensor)?.axes;
  const r = c.region ?? {};
  if (axes?.every((a) => r[a]?.[0] === r[a]?.[1] && r[a]?.[0] !== undefined)) return axes.map((a) => r[a][0]);
}

/** Explain these cells of one pass: run explain, fetch all it wanted at once, run again, until nothing is wanted
 * (usually one fetch; a region's cell is known only once the region's numbers are, so it takes two). */
export async function explainCells(src: PassSource, cells: CellQuery[]): Promise<Explanation[]> {
  const p = await src.pass();
  for (let round = 0; ; round++) {
    p.wanted = [];
    p.wantedNames.clear();
    p.wantedStored = [];
    const out = cells.map((c) => {
      let index = c.index ?? oneCell(p, c);
      if (!index) {
        const misses = p.misses;
        index = pickInRegion(p, c.tensor, c.region!);
        if (p.misses > misses) return null;  // the region's numbers first: then its cell
      }
      return explain(p, c.tensor, index);
    });
    if (!p.wanting) return out as Explanation[];
    if (round === MAX_ROUNDS) {
      throw new Error(`could not explain ${cells.map((c) => c.tensor).join(", ")}: its numbers did not arrive in ${MAX_ROUNDS} requests`);
    }
    await src.fetch(p);
  }
}

/** As the server's json_safe: JSON has no infinities, so they are written as the strings Number() reads back. */
export function jsonSafe(x: unknown): unknown {
  if (typeof x === "number" && !Number.isFinite(x)) return Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
  if (Array.isArray(x)) return x.map(jsonSafe);
  if (x && typeof x === "object") return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, jsonSafe(v)]));
  return x;
}
