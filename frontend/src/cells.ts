// The numbers and names a cell's explanation reads (explain.ts runs in the page): where a pass's come from.
// With a server (llmviz serve, or the notebook widget, whose requests go to the same app in its kernel), the pass is
// described by its model's graph (GET /api/models/{name}/graph, fetched once per model) and its scene (the tokens
// and their names), and its numbers are fetched as slices, exactly those an explanation reads, from POST /api/cells:
// explain runs once and lists what it lacks, one request fetches all of it, explain runs again (explainCells).
// The slices stay for the next cells of the same pass (a few passes, a bounded number of bytes each).
// In a static export the pass is stored whole (exported.ts's exportedSource).
import { check, post } from "./api";
import type { components } from "./api-schema";
import { explainCells, HeldPass, shapesOf, type CellQuery, type Explanation, type GraphJson, type PassSource } from "./explain";
import { exported, exportedSource } from "./exported";
import type { SceneInfo } from "./scenedata";
import { request } from "./transport";

const MAX_SLICES = 64;  // in one /api/cells request (the server's limit)
const KEPT_PASSES = 4;  // passes whose fetched numbers stay
const PASS_BYTES = 32 << 20;  // a pass's numbers beyond this are dropped before more are fetched

type CellsAnswer = components["schemas"]["CellsResponse"];

/** Little-endian float32 numbers from base64. */
export function float32s(b64: string): Float32Array {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

const graphs = new Map<string, Promise<GraphJson>>();
const vocabs = new Map<string, Promise<string[]>>();

/** What the server says once per model (and per generation step's `past`), asked once and kept. */
function once<T>(kept: Map<string, Promise<T>>, key: string, url: string, read: (json: unknown) => T): Promise<T> {
  if (!kept.has(key)) {
    const answer = request(url).then(check).then((r) => r.json()).then(read);
    answer.catch(() => kept.delete(key));  // (asked again next time)
    kept.set(key, answer);
  }
  return kept.get(key)!;
}

/** The model's graph for a pass after `past` cached positions (0: a whole pass), as the server describes it. */
function modelGraph(model: string, past: number): Promise<GraphJson> {
  return once(graphs, JSON.stringify([model, past]), `/api/models/${encodeURIComponent(model)}/graph?past=${past}`,
    (json) => json as GraphJson);
}

/** Every vocabulary entry's token, as the view shows it. */
function modelVocab(model: string): Promise<string[]> {
  return once(vocabs, model, `/api/models/${encodeURIComponent(model)}/vocab`, (json) => (json as { tokens: string[] }).tokens);
}

/** One pass on the server: its numbers fetched from /api/cells as explanations want them, its tokens' names from its
 * scene (or, past the scene's, from the model's vocabulary). */
class ServedPass implements PassSource {
  private held: Promise<HeldPass> | null = null;

  constructor(private info: SceneInfo, private context: number[], private past: number) {}

  /** An edited pass's edits, as the server takes them back. */
  private get edits() {
    return (this.info.edits ?? []).map(({ tensor, where, set }) => ({ tensor, where, set }));
  }

  pass(): Promise<HeldPass> {
    if (!this.held) {
      const { info, context, past } = this;
      this.held = (async () => {
        const graph = await modelGraph(info.model.name, past);
        const p = new HeldPass(info.model.name, graph, context, info.token_strs ?? [], shapesOf(graph, context.length - past),
          info.edits ?? []);
        p.storing = true;  // (a weight's stored form: /api/cells's `stored`)
        p.notFetched = new Set(info.not_fetched ?? []);  // (an engine that returned part of the graph: nnsight)
        p.engine = info.model.engine;
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
    const edits = this.edits;
    const body = { model: info.model.name, tokens: context, ...(past ? { past } : {}), ...(edits.length ? { edits } : {}) };
    const jobs: Promise<void>[] = [];
    const stored = p.wantedStored.slice(0, MAX_SLICES);  // (with the first slices: a weight's stored form)
    for (let k = 0; k < Math.max(p.wanted.length, stored.length ? 1 : 0); k += MAX_SLICES) {
      const slices = p.wanted.slice(k, k + MAX_SLICES);
      jobs.push((async () => {
        const answer: CellsAnswer = await (await check(await post("/api/cells", { ...body, slices, ...(k === 0 && stored.length ? { stored } : {}) }))).json();
        for (const [name, shape] of Object.entries(answer.shapes)) p.shapes.set(name, shape);
        for (const s of answer.slices) p.hold(s.tensor, s.at, { axes: s.axes, shape: s.shape, values: float32s(s.values) });
        for (const s of answer.stored ?? []) p.holdStored(s);
      })());
    }
    if (p.wantedNames.size) {
      jobs.push((async () => {
        const vocab = await modelVocab(info.model.name);
        for (const id of p.wantedNames) p.names.set(id, vocab[id]);
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
  const key = JSON.stringify([info.model.name, context, past, info.edits ?? []]);
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
