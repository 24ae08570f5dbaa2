// The numbers and names a cell's explanation reads (explain.ts runs in the page): where a pass's come from.
// With a server (llmviz serve, or the notebook widget, whose requests go to the same app in its kernel), the pass is
// described by its model's graph (GET /api/models/{name}/graph, fetched once per model) and its scene (the tokens
// and their names), and its numbers are fetched as slices, exactly those an explanation reads, from POST /api/cells:
// explain runs once and lists what it lacks, one request fetches all of it, explain runs again (explainCells).
// The slices stay for the next cells of the same pass (a few passes, a bounded number of bytes each).
// In a static export the pass is stored whole (exported.ts's exportedSource).
import { check, post } from "./api";
import { explainCells, HeldPass, shapesOf, type CellQuery, type Explanation, type GraphJson, type PassSource, type Spec } from "./explain";
import { exported, exportedSource } from "./exported";
import type { SceneInfo } from "./scenedata";
import { parseTrace } from "./trace";
import { request } from "./transport";

const MAX_SLICES = 64;  // in one /api/cells request (the server's limit)
const KEPT_PASSES = 4;  // passes whose fetched numbers stay
const PASS_BYTES = 32 << 20;  // a pass's numbers beyond this are dropped before more are fetched

interface CellsAnswer {
  shapes: Record<string, number[]>;
  slices: { tensor: string; at: Record<string, number>; axes: string[]; shape: number[]; values: string }[];
}

/** Little-endian float32 numbers from base64. */
export function float32s(b64: string): Float32Array {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

const graphs = new Map<string, Promise<GraphJson>>();

/** The model's graph, as the server describes it (the graph of a whole pass: past 0). */
function modelGraph(model: string): Promise<GraphJson> {
  if (!graphs.has(model)) {
    const g = request(`/api/models/${encodeURIComponent(model)}/graph`).then(check).then((r) => r.json())
      .then((json) => ({ ...json, past: 0 }) as GraphJson);
    g.catch(() => graphs.delete(model));  // (asked again next time)
    graphs.set(model, g);
  }
  return graphs.get(model)!;
}

/** A generation step's graph (past > 0) from the model's: each layer's keys and values read through the KV cache,
 * as core/scope.py's kv_cache declares them: `past_k`, an input (the cached keys of the earlier positions), and
 * `cache_k`, the concat of those and this step's keys, which attention reads; the same for values. Positions count
 * from `past`. `axes`: the step's axes (its scene's), the cached positions among them.
 * A bridge until the server describes a step's graph itself (GET /api/models/{name}/graph?past=N): tests/test_export.py
 * checks that it equals Graph(config, past).to_json() for every architecture it covers. */
export function stepGraph(base: GraphJson, past: number, axes: GraphJson["axes"]): GraphJson {
  const specs = new Map(base.tensors.map((t) => [t.name, t]));
  const scope = (name: string) => name.slice(0, name.lastIndexOf("."));
  const cached = new Map<string, string>();  // this step's keys (values) -> the cache that holds them after the past ones
  const tensors: GraphJson["tensors"] = [];
  for (const t of base.tensors) {
    if (t.op === "attn_scores" && !cached.has(t.inputs[1])) {
      const values = base.tensors.find((x) => x.op === "weighted_sum" && scope(x.name) === scope(t.name))!.inputs[1];
      for (const [c, plain, source] of [["k", "Key", t.inputs[1]], ["v", "Value", values]] as const) {
        const s = specs.get(source)!, at = scope(t.name), head = s.axes[1];
        const common = { group: t.group, layer: t.layer, attrs: {} };
        const p: Spec = { ...common, name: `${at}.past_${c}`, title: `Cached ${plain.toLowerCase()}s of earlier positions, layer ${common.layer}`,
          kind: "input", axes: ["past_pos", head, "d_head"], op: null, inputs: [] };
        const k: Spec = { ...common, name: `${at}.cache_${c}`, title: `${plain}s so far (cache and this step), layer ${common.layer}`,
          kind: "activation", axes: ["key_pos", head, "d_head"], op: "concat", inputs: [p.name, source] };
        tensors.push({ ...p, shape: [past, ...s.shape!.slice(1)] }, { ...k, shape: [null, ...s.shape!.slice(1)] });
        cached.set(source, k.name);
      }
    }
    const inputs = t.op === "attn_scores" || t.op === "weighted_sum" ? [t.inputs[0], cached.get(t.inputs[1])!, ...t.inputs.slice(2)] : t.inputs;
    const attrs = "offset" in t.attrs ? { ...t.attrs, offset: past } : t.attrs;
    tensors.push({ ...t, inputs, attrs });
  }
  return { ...base, axes, tensors, past };
}

/** One pass on the server: its numbers fetched from /api/cells as explanations want them, its tokens' names from its
 * scene (or, past the scene's, from POST /api/trace of those tokens, whose answer names them). */
class ServedPass implements PassSource {
  private held: Promise<HeldPass> | null = null;

  constructor(private info: SceneInfo, private context: number[], private past: number) {}

  pass(): Promise<HeldPass> {
    if (!this.held) {
      const { info, context, past } = this;
      this.held = (async () => {
        const base = await modelGraph(info.model.name);
        const graph = past ? stepGraph(base, past, info.axes as GraphJson["axes"]) : base;
        const p = new HeldPass(info.model.name, graph, context, info.token_strs ?? [], shapesOf(graph, context.length - past));
        const seed = (ids: number[], names: string[] | undefined) => {
          for (const [i, id] of ids.entries()) if (names?.[i] !== undefined) p.names.set(id, names[i]);
        };
        const named = info.axis_names ?? {};
        seed(info.tokens ?? [], info.token_strs ?? undefined);
        seed(named.vocab?.map((_, i) => i) ?? [], named.vocab);
        seed(context, named.key_pos ?? named.pos);
        return p;
      })();
      this.held.catch(() => (this.held = null));
    }
    return this.held;
  }

  async fetch(p: HeldPass): Promise<void> {
    if (p.bytes > PASS_BYTES) p.drop();
    const { info, context, past } = this;
    const body = { model: info.model.name, tokens: context, ...(past ? { past } : {}) };
    const jobs: Promise<void>[] = [];
    for (let k = 0; k < p.wanted.length; k += MAX_SLICES) {
      const slices = p.wanted.slice(k, k + MAX_SLICES);
      jobs.push((async () => {
        const answer: CellsAnswer = await (await check(await post("/api/cells", { ...body, slices }))).json();
        for (const [name, shape] of Object.entries(answer.shapes)) p.shapes.set(name, shape);
        for (const s of answer.slices) p.hold(s.tensor, s.at, { axes: s.axes, shape: s.shape, values: float32s(s.values) });
      })());
    }
    if (p.wantedNames.size) {
      const ids = [...p.wantedNames], input = p.graph.tensors.find((t) => t.kind === "input" && t.axes.length === 1)!.name;
      jobs.push((async () => {
        const trace = parseTrace(await (await check(await post("/api/trace", { model: info.model.name, tokens: ids, tensors: [input] })))
          .arrayBuffer());
        for (const [i, id] of ids.entries()) p.names.set(id, trace.tokenStrs[i]);
      })());
    }
    await Promise.all(jobs);
  }
}

const served = new Map<string, ServedPass>();  // the last few passes, the latest last

/** Where the numbers of the pass a scene shows come from. */
export function sourceFor(info: SceneInfo): PassSource {
  const past = info.past ?? 0;
  const context = past ? info.context! : info.tokens!;  // a generation step: its whole context, the cached tokens first
  if (exported()) return exportedSource(info.model.name, context, past);
  const key = JSON.stringify([info.model.name, context, past]);
  let s = served.get(key);
  if (s) served.delete(key);
  else s = new ServedPass(info, context, past);
  served.set(key, s);
  if (served.size > KEPT_PASSES) served.delete(served.keys().next().value!);
  return s;
}

/** Explain cells of the pass a scene shows (a region: a downsampled cell, explained by its cell of largest magnitude). */
export function explainInScene(info: SceneInfo, cells: CellQuery[]): Promise<Explanation[]> {
  return explainCells(sourceFor(info), cells);
}
