// Where one number came from, computed in the browser: a static export (llmviz export) runs no server, so the
// page explains a cell itself from the float32 numbers of the pass. This is the second copy of the server's
// provenance.explain and of each op's explain_* (src/llmviz/core/ops/): the same arithmetic in float64, the same
// text. tests/test_export.py runs both on every tensor and checks that they agree, text for text.

import { fmt, formatG, npSum, pyRepr, thousands } from "./pyformat";

export interface Spec {
  name: string; title: string; kind: string; axes: string[]; op: string | null; inputs: string[];
  attrs: Record<string, any>;
}

export interface GraphJson {
  axes: Record<string, { label: string; color: string; named_by: string | null }>;
  ops: Record<string, { formula: string; description: string }>;
  tensors: Spec[];
  past: number;
}

export interface Numbers { shape: number[]; data: ArrayLike<number> }

/** One pass, as explain reads it: what Python's Trace answers. */
export interface Pass {
  model: string;
  graph: GraphJson;
  tensor(name: string): Numbers;  // any tensor of the graph: a weight or a computed one
  tokens: number[];  // this pass's tokens (after the `past` cached ones)
  tokenStrs: string[];
  contextNames: string[];  // each token of the context (cached, then new) on its own
  vocab: string[];  // each vocabulary entry's token
}

type At = Record<string, number>;  // an index by axis, in the tensor's axis order
type Region = { tensor: string; ranges: Record<string, [number, number]>; role: string };

const TOP_TERMS = 5, CURVE_POINTS = 48;

/** An error the server answers with a 422: its message is the same. */
export class ExplainError extends Error {}

class Reader {
  specs = new Map<string, Spec>();
  constructor(readonly p: Pass) {
    for (const t of p.graph.tensors) this.specs.set(t.name, t);
  }

  spec(name: string): Spec {
    return this.specs.get(name)!;
  }

  /** The tensor's numbers at `fixed` (an axis not named stays whole), in float64, with the axes left in order. */
  select(name: string, fixed: At): { axes: string[]; shape: number[]; values: Float64Array } {
    const axes = this.spec(name).axes, { shape, data } = this.p.tensor(name);
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    const left = axes.map((a, i) => [a, i] as const).filter(([a]) => !(a in fixed));
    const n = left.reduce((k, [, i]) => k * shape[i], 1);
    let base = 0;
    axes.forEach((a, i) => { if (a in fixed) base += fixed[a] * strides[i]; });
    const values = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      let rem = k, off = base;
      for (let j = left.length - 1; j >= 0; j--) {
        const i = left[j][1];
        off += (rem % shape[i]) * strides[i];
        rem = Math.floor(rem / shape[i]);
      }
      values[k] = data[off];
    }
    return { axes: left.map(([a]) => a), shape: left.map(([, i]) => shape[i]), values };
  }

  /** The number at `at` (which may name more axes than the tensor has). */
  value(name: string, at: At): number {
    return this.select(name, pick(at, this.spec(name).axes)).values[0];
  }

  full(name: string): Record<string, [number, number]> {
    const shape = this.p.tensor(name).shape;
    return Object.fromEntries(this.spec(name).axes.map((a, i) => [a, [0, shape[i] - 1]]));
  }

  region(name: string, fixed: At, role: string): Region {
    const ranges = this.full(name);
    for (const [a, i] of Object.entries(fixed)) if (a in ranges) ranges[a] = [i, i];
    return { tensor: name, ranges, role };
  }

  indexName(axis: string, i: number): string | null {
    const by = this.p.graph.axes[axis]?.named_by;
    if (by === "input") return this.p.contextNames[i + (axis === "pos" ? this.p.graph.past : 0)];
    return by === "vocabulary" ? this.p.vocab[i] : null;
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
  return { count: terms.length, shown, rest: npSum(terms) - npSum(order.map((k) => terms[k])), x: xName, w: wName };
}

type Explainer = (r: Reader, t: Spec, at: At, value: number) => Record<string, any>;

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
  const contract: string[] = t.attrs.contract;
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
  const sum = npSum(terms), result = bias + sum;
  const order = topTerms(terms);
  const where = (k: number) => Object.fromEntries(unravel(k, x.shape).map((i, j) => [contract[j], i]));
  const sumLabel = "Σ " + contract.map((a) => r.p.graph.axes[a].label).join(",");
  const text = (bName ? `${fmt(bias)} + ${sumLabel} x·W` : `${sumLabel} x·W`) + ` (${terms.length} terms) = ${fmt(result)}`;
  const sources = [r.region(xName, xFixed, "input"), r.region(wName, wFixed, "weight")];
  if (bName) sources.push(r.region(bName, pick(at, r.spec(bName).axes), "bias"));
  return { text, result, rows: [...(bName ? [["bias b", fmt(bias)]] : []), [sumLabel + " x·W", fmt(sum)]],
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
  const n = at.pos + (t.attrs.offset ?? 0);
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
  const [aName, bName] = t.inputs;
  const a = r.value(aName, at), b = r.value(bName, at), result = a + b;
  return { text: `a + b = ${fmt(a)} + ${fmt(b)} = ${fmt(result)}`, result,
    rows: [[`a: ${r.spec(aName).title}`, fmt(a)], [`b: ${r.spec(bName).title}`, fmt(b)]],
    sources: [r.region(aName, at, "input"), r.region(bName, at, "input")] };
};

const identity: Explainer = (r, t, at) => {
  const result = r.value(t.inputs[0], at);
  return { text: `the same number as ${t.inputs[0]}: ${fmt(result)}`, result, rows: [],
    sources: [r.region(t.inputs[0], at, "input")] };
};

const scale: Explainer = (r, t, at) => {
  const x = r.value(t.inputs[0], at);
  const c = Number(t.attrs.factor), name = t.attrs.factor_name ?? "c";
  return { text: `x × ${name} = ${fmt(x)} × ${fmt(c)} = ${fmt(x * c)}`, result: x * c, rows: [["x", fmt(x)], [name, fmt(c)]],
    sources: [r.region(t.inputs[0], at, "input")] };
};

const lnMean: Explainer = (r, t, at) => {
  const row = r.select(t.inputs[0], { pos: at.pos }).values;
  const sum = npSum(row), result = sum / row.length;
  return { text: `Σ x / ${row.length} = ${fmt(sum)} / ${row.length} = ${fmt(result)}`, result, rows: [],
    sources: [r.region(t.inputs[0], { pos: at.pos }, "input")] };
};

const lnScale: Explainer = (r, t, at) => {
  const [xName, mName] = t.inputs;
  const row = r.select(xName, { pos: at.pos }).values;
  const mu = r.value(mName, { pos: at.pos }), eps = Number(t.attrs.eps);
  const variance = npSum(row.map((v) => (v - mu) ** 2)) / row.length;
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
  const ms = npSum(row.map((v) => v ** 2)) / row.length, eps = Number(t.attrs.eps);
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
  const dot = npSum(terms), sc = Number(t.attrs.scale), result = dot / sc;
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
  const result = npSum(terms), order = topTerms(terms);
  return { text: `Σ T' p·v (${terms.length} terms) = ${fmt(result)}`, result,
    rows: [["Σ T' p·v", fmt(result)], ...(group > 1 ? [["value head", `${kh} (shared by ${group} query heads)`]] : [])],
    terms: termsOf(terms, order, (j) => ({ key_pos: j }), p, v, pName, vName),
    sources: [r.region(pName, { head: h, pos: i }, "input"), r.region(vName, { [vAxes[1]]: kh, d_head: a }, "input")] };
};

const rotary: Explainer = (r, t, at) => {
  const xName = t.inputs[0];
  const shape = r.p.tensor(xName).shape, half = shape[shape.length - 1] / 2;
  const d = at.d_head, i = d % half;
  const p = at.pos + (t.attrs.offset ?? 0);
  const freq = Number(t.attrs.inv_freq[i]);
  const theta = Math.fround(Math.fround(p) * Math.fround(freq));
  const head = without(at, ["pos", "d_head"]);
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
  const result = npSum(row.map((v) => Math.exp(v - m)));
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
  let term = z, sum = z;
  for (let n = 1; term > sum * 1e-17; n++) {
    term *= (2 * z * z) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
}

const CURVES: Record<string, [string, (x: number) => number]> = {
  gelu: ["GELU", (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))],
  gelu_erf: ["GELU", (x) => 0.5 * x * (1 + erf(x / Math.sqrt(2)))],
  relu: ["ReLU", (x) => Math.max(x, 0)],
  silu: ["SiLU", (x) => x / (1 + Math.exp(-x))],
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
  gelu: activation, gelu_erf: activation, relu: activation, silu: activation, mul,
};

/** The cell of largest magnitude inside a region (a downsampled cell stands for a tile). */
export function pickInRegion(p: Pass, tensor: string, ranges: Record<string, number[]>): number[] {
  const r = new Reader(p);
  const t = r.spec(tensor), { shape, data } = p.tensor(tensor);
  for (const [ax, rg] of Object.entries(ranges)) {
    const size = t.axes.includes(ax) ? shape[t.axes.indexOf(ax)] : undefined;
    if (size === undefined || rg.length !== 2 || !(0 <= rg[0] && rg[0] <= rg[1] && rg[1] < size)) {
      throw new ExplainError(`region ${ax}=[${rg.join(", ")}] does not fit ${tensor}, whose axes are ` +
        t.axes.map((x, i) => `${x} (0 to ${shape[i] - 1})`).join(", "));
    }
  }
  const lo = t.axes.map((a) => ranges[a]?.[0] ?? 0), hi = t.axes.map((a, i) => ranges[a]?.[1] ?? shape[i] - 1);
  let best: number[] = lo, bestMag = -2;
  const idx = [...lo];
  for (;;) {
    let off = 0;
    idx.forEach((v, i) => { off = off * shape[i] + v; });
    const v = data[off], mag = Number.isFinite(v) ? Math.abs(v) : -1;
    if (mag > bestMag) [best, bestMag] = [[...idx], mag];
    let j = idx.length - 1;
    while (j >= 0 && idx[j] === hi[j]) idx[j--] = lo[j + 1];
    if (j < 0) return best;
    idx[j]++;
  }
}

/** provenance.explain: the cell's value, its op's formula with the pass's numbers, and the cells it came from. */
export function explain(p: Pass, tensor: string, index: number[]): Record<string, any> {
  const r = new Reader(p);
  const t = r.spec(tensor);
  if (!t) throw new ExplainError(`unknown tensor ${pyRepr(tensor)}: not in ${p.model}'s graph`);
  const { shape } = p.tensor(tensor);
  if (index.length !== shape.length || index.some((i, k) => !(0 <= i && i < shape[k]))) {
    throw new ExplainError(`index [${index.join(", ")}] is outside ${tensor} of shape [${shape.join(", ")}]`);
  }
  const at: At = Object.fromEntries(t.axes.map((a, k) => [a, index[k]]));
  const value = r.value(tensor, at);
  const out: Record<string, any> = {
    tensor, title: t.title + ("head" in at ? `, head ${at.head}` : ""), kind: t.kind, op: t.op,
    index: t.axes.map((a) => {
      const name = r.indexName(a, at[a]);
      return { axis: a, label: p.graph.axes[a].label, i: at[a], color: p.graph.axes[a].color, name,
        shown: p.graph.axes[a].named_by === "vocabulary" ? name : String(at[a]) };
    }),
    value, value_text: fmt(value),
    code: `trace["${tensor}"][${index.join(", ")}]`,
    formula: null, sources: [], target: r.region(tensor, at, "target"),
  };
  if (t.kind === "weight") {
    const n = shape.reduce((a, b) => a * b, 1);
    out.parameter = { name: tensor, title: t.title, numbers: n,
      text: `one of the ${thousands(n)} numbers of the parameter ${tensor} (${t.title}); learned in training, the same for every input` };
    return out;
  }
  if (t.kind === "input" && !("pos" in at)) {
    out.note = `cached at an earlier step: position ${at.past_pos} (${pyRepr(r.indexName("past_pos", at.past_pos)!)}); ` +
      "this step reads it, nothing recomputes it";
    return out;
  }
  if (t.kind === "input") {
    out.note = `token ${pyRepr(p.tokenStrs[at.pos])} (id ${p.tokens[at.pos]}) at position ${at.pos + p.graph.past}`;
    return out;
  }
  const formula = EXPLAIN[t.op!](r, t, at, value);
  formula.template = p.graph.ops[t.op!].formula;
  formula.description = p.graph.ops[t.op!].description;
  out.sources = formula.sources;
  delete formula.sources;
  out.formula = formula;
  return out;
}

/** As the server's json_safe: JSON has no infinities, so they are written as the strings Number() reads back. */
export function jsonSafe(x: unknown): unknown {
  if (typeof x === "number" && !Number.isFinite(x)) return Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
  if (Array.isArray(x)) return x.map(jsonSafe);
  if (x && typeof x === "object") return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, jsonSafe(v)]));
  return x;
}
