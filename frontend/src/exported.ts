// A static export (`llmviz export`): no server runs, so the page answers its own requests from the folder's
// data/. manifest.json.gz (gzip-compressed JSON) maps each request the exporter made for its inputs to the stored answer; a generation
// session replays the steps stored for it. A request for anything else gets a 404 that says what the export holds.
// Hover explains a cell as on a server (explain.ts), from the pass's stored float32 numbers (exportedSource): every
// computed tensor of the pass is held whole, and a weight is fetched when an explanation reads it.
// The files are written by src/llmviz/serve/export.py.

import { HeldPass, shapesOf, type GraphJson, type PassSource } from "./explain";
import type { BlockInfo, SceneInfo } from "./scenedata";
import { parseTrace } from "./trace";

interface Numbers { shape: number[]; data: ArrayLike<number> }

interface Stored { file: string; status?: number; type?: string; shuffle?: [number, number]; weights?: boolean }
interface PassEntry { numbers: Stored; graph: string; token_strs: string[]; past: number }
interface SessionEntry { start: Stored; steps?: Stored[]; undo?: Stored[]; over?: Stored }
interface Manifest {
  model: string; inputs: string[]; vocab: string;
  weights: Record<string, Stored>;  // each weight's float32 file: those a scene draws whole share one
  responses: Record<string, Stored>; sessions: Record<string, SessionEntry>; traces: Record<string, PassEntry>;
  steps: Record<string, number>;  // a generated text -> the KV-cache step whose view is stored
}

/** The manifest's address when this page is an export (set by the exported index.html), else null. */
export function exported(): string | null {
  return (window as { __llmvizExport?: string }).__llmvizExport ?? null;
}

/** JSON with every object's keys sorted: a request written as export.py's request_key writes it. */
export function canonical(x: unknown): string {
  const sorted = (v: unknown): unknown => Array.isArray(v) ? v.map(sorted) : v && typeof v === "object"
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])])) : v;
  return JSON.stringify(sorted(x));
}

export function requestKey(method: string, url: string, body: unknown): string {
  const u = new URL(url, "http://export/");
  const pairs = [...u.searchParams].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return canonical([method.toUpperCase(), u.pathname, pairs, body ?? null]);
}

/** Undo export.py's byte shuffle: byte j of every `width`-byte number was stored together. */
export function unshuffle(bytes: Uint8Array, from: number, width: number): Uint8Array {
  const out = bytes.slice();
  const n = (bytes.length - from) / width;
  for (let j = 0; j < width; j++) for (let i = 0; i < n; i++) out[from + i * width + j] = bytes[from + j * n + i];
  return out;
}

/** A float32 value as float16 bits, rounded to the nearest even as numpy's astype(float16) does. */
const scratch = new Float32Array(1), scratchBits = new Uint32Array(scratch.buffer);

export function toHalf(v: number): number {
  scratch[0] = v;
  const x = scratchBits[0];
  const sign = (x >>> 16) & 0x8000, e = ((x >>> 23) & 0xff) - 127, m = x & 0x7fffff;
  if (e === 128) return sign | 0x7c00 | (m ? 0x200 : 0);
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    let h = ((e + 15) << 10) | (m >>> 13);
    const rest = m & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
    return sign | h;
  }
  const shift = -(e + 1) + 0;  // a subnormal half counts units of 2^-24
  if (shift > 24) return sign;
  const full = m | 0x800000;
  let q = full >>> shift;
  const rest = full & ((1 << shift) - 1), half = 1 << (shift - 1);
  if (rest > half || (rest === half && q & 1)) q++;
  return sign | q;
}

/** Whether a scene block's cells are its weight's numbers one for one (export.py's from_weights). */
const fromWeights = (b: BlockInfo) => b.kind === "weight" && b.tile[0] === 1 && b.tile[1] === 1 && !b.merged && !!b.slabs?.length;

/** A scene payload's header, its scene, and where its atlas's bytes start. */
function readScene(payload: Uint8Array) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(payload.subarray(8, 8 + headerLen)));
  return { view, scene: JSON.parse(header.__metadata__.scene) as SceneInfo, width: header.atlas.shape[1] as number,
    base: 8 + headerLen + header.atlas.data_offsets[0] };
}

/** Put each weight's cells back into a scene's atlas (as scene.py's slab_grid lays them out), from the float32 weights. */
function fillWeights({ view, scene, width, base }: ReturnType<typeof readScene>, weights: (name: string) => Numbers): void {
  for (const b of scene.blocks) {
    if (!fromWeights(b)) continue;
    const { data } = weights(b.tensor);
    const axes: string[] = b.dims.map((d: [string, number]) => d[0]), sizes: number[] = b.dims.map((d: [string, number]) => d[1]);
    const strides = sizes.map((_, i) => sizes.slice(i + 1).reduce((a, c) => a * c, 1));
    const stride = (a: string | null) => (a ? strides[axes.indexOf(a)] : 0);
    const [sx, sy, sz] = [stride(b.axes[0]), stride(b.axes[1]), stride(b.axes[2])];
    (b.slabs ?? []).forEach(([x0, y0, w, h]: number[], s: number) => {
      for (let r = 0; r < h; r++) {
        for (let c = 0; c < w; c++) {
          const v = Math.min(65504, Math.max(-65504, data[s * sz + r * sy + c * sx]));
          view.setUint16(base + 2 * ((y0 + r) * width + x0 + c), toHalf(v), true);
        }
      }
    });
  }
}

let manifest: Promise<Manifest> | null = null;
const files = new Map<string, Promise<Uint8Array>>();
const passes = new Map<string, Promise<HeldPass>>();
const sessions = new Map<string, { entry: SessionEntry; n: number }>();

/** A stored file's bytes unpacked (gzip), or as they came if the host already unpacked them (Content-Encoding: gzip). */
async function gunzipped(raw: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  if (raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  return new Uint8Array(await new Response(new Blob([raw]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
}

async function bytesOf(file: string): Promise<Uint8Array> {
  if (!files.has(file)) {
    files.set(file, (async () => {
      const early = (window as { __llmvizPrefetch?: Record<string, Promise<Response>> }).__llmvizPrefetch?.[file];
      const res = await (early ?? fetch(new URL(file, document.baseURI)));
      if (!res.ok) throw new Error(`this export is missing ${file} (${res.status}): copy the whole folder`);
      return gunzipped(new Uint8Array(await res.arrayBuffer()));
    })());
  }
  return files.get(file)!;
}

async function contents(s: Stored): Promise<Uint8Array> {
  const raw = await bytesOf(s.file);
  const plain = s.shuffle ? unshuffle(raw, ...s.shuffle) : raw.slice();
  if (s.weights) {  // a scene, without the cells of the weights it draws whole
    const read = readScene(plain);
    const w = await weights(read.scene.blocks.filter(fromWeights).map((b) => b.tensor));
    fillWeights(read, (name) => w.get(name)!);
  }
  return plain;
}

const weightFiles = new Map<string, Promise<Map<string, Numbers>>>();

/** These weights' float32 numbers, each file read once. */
async function weights(names: string[]): Promise<Map<string, Numbers>> {
  const m = await loadManifest();
  const files = [...new Set(names.map((n) => m.weights[n].file))];
  const read = await Promise.all(files.map((f) => {
    if (!weightFiles.has(f)) {
      const stored = Object.values(m.weights).find((w) => w.file === f)!;
      weightFiles.set(f, contents(stored).then((b) => parseTrace(b.buffer as ArrayBuffer).tensors as Map<string, Numbers>));
    }
    return weightFiles.get(f)!;
  }));
  return new Map(read.flatMap((t) => [...t]));
}

function reply(status: number, body: unknown, type = "application/json"): Response {
  if (status === 204) return new Response(null, { status });
  const data = body instanceof Uint8Array ? body : JSON.stringify(body);
  return new Response(data as BodyInit, { status, headers: { "content-type": type } });
}

async function answer(s: Stored): Promise<Response> {
  return reply(s.status ?? 200, await contents(s), s.type ?? "application/octet-stream");
}

/** What a request the export holds no answer for gets: a 404 that says what the page holds. */
/** A request's body (or its address's query), as the export reads it. */
type Body = Record<string, unknown>;

function notExported(m: Manifest, body?: Body): Response {
  return reply(404, { detail: notExportedDetail(m, body) });
}

function notExportedDetail(m: Manifest, body?: Body): string {
  const text = body?.text ?? body?.input;  // (the walkthrough names its input in the address)
  const past = Number(body?.past);
  if (typeof text === "string" && past > 0) {  // a KV-cache view (a link's past=N): what the page holds of those
    return `its KV-cache view after ${past} cached tokens is not saved in this page, which holds ` +
      `each token the model wrote after ${m.inputs.length > 1 ? "a saved input" : `the saved input ${m.inputs[0]}`} as ` +
      "its step on the cache (Generate, with the KV-cache view), and the whole pass of every text it shows";
  }
  const what = typeof text === "string" ? `${JSON.stringify(text)} is` : "This is";
  const inputs = m.inputs.length > 1 ? `the saved inputs ${m.inputs.join(", ")}` : `the saved input ${m.inputs[0]}`;
  return `${what} not saved in this page: it holds ${m.model} on ${inputs} and what the model ` +
    `writes after ${m.inputs.length > 1 ? "them" : "it"} only. Pick a saved input above; to try any input, run llmviz on a computer (llmviz serve).`;
}

/** The inputs an export holds, in the order they were given. */
export async function savedInputs(): Promise<string[]> {
  return exported() ? (await loadManifest()).inputs : [];
}

/** In an export, a longer text the page shows (a generated one, a branch) has a view only as its last step on
 * the KV cache: the number of cached positions of that view, or undefined. */
export async function storedStep(text: string): Promise<number | undefined> {
  return exported() ? (await loadManifest()).steps[text] : undefined;
}

/** The manifest, asked for by the page's first lines (export.py's page) while this script loaded. */
function loadManifest(): Promise<Manifest> {
  const early = (window as { __llmvizManifest?: Promise<Response> }).__llmvizManifest;
  if (!manifest) {
    manifest = (early ?? fetch(new URL(exported()!, document.baseURI))).then(async (r) => {
      if (!r.ok) throw new Error(`this export has no ${exported()} (${r.status}): copy the whole folder`);
      return JSON.parse(new TextDecoder().decode(await gunzipped(new Uint8Array(await r.arrayBuffer()))));
    });
  }
  return manifest;
}

/** One stored pass as explain reads it: its computed tensors held whole, its graph and its tokens' names. */
async function loadPass(m: Manifest, model: string, context: number[], past: number): Promise<HeldPass | null> {
  const key = canonical([model, context, past]);
  const entry = m.traces[key];
  if (!entry) return null;
  if (!passes.has(key)) {
    passes.set(key, (async () => {
      const [numbers, graphBytes, vocabBytes] = await Promise.all([contents(entry.numbers), contents({ file: entry.graph }),
        contents({ file: m.vocab })]);
      const own = parseTrace(numbers.buffer as ArrayBuffer);
      const text = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));
      const graph = text(graphBytes) as GraphJson, vocab = text(vocabBytes) as string[];
      const p = new HeldPass(model, graph, context, entry.token_strs, shapesOf(graph, context.length - past));
      for (const [i, s] of vocab.entries()) p.names.set(i, s);
      const axes = new Map(graph.tensors.map((t) => [t.name, t.axes]));
      for (const [name, t] of own.tensors) {
        p.shapes.set(name, t.shape);
        p.hold(name, {}, { axes: axes.get(name)!, shape: t.shape, values: t.data });
      }
      return p;
    })());
  }
  return passes.get(key)!;
}

/** A stored pass (context: every token, the `past` cached ones first) for explain; a weight is fetched when an
 * explanation reads it. A pass the export does not hold: an error that says what it holds. */
export function exportedSource(model: string, context: number[], past: number): PassSource {
  return {
    pass: async () => {
      const m = await loadManifest();
      const p = await loadPass(m, model, context, past);
      if (!p) throw new Error(notExportedDetail(m, past ? { text: "", past } : {}));
      return p;
    },
    fetch: async (p) => {
      const m = await loadManifest();
      const names = [...new Set(p.wanted.map((w) => w.tensor))];
      const missing = names.filter((n) => !(n in m.weights));
      if (missing.length) throw new Error(`this export holds no numbers of ${missing.join(", ")}`);
      for (const [name, numbers] of await weights(names)) {
        const spec = p.graph.tensors.find((t) => t.name === name)!;
        p.hold(name, {}, { axes: spec.axes, shape: numbers.shape, values: numbers.data });
      }
      if (p.wantedNames.size) throw new Error(`this export holds no name of the tokens ${[...p.wantedNames].join(", ")}`);
    },
  };
}

/** A generation session's settings: its request without the model and the text. */
function settingsOf(body: Record<string, unknown>): Record<string, unknown> {
  const { model: _m, text: _t, tokens: _k, ...rest } = body;
  return rest;
}

const settingNames: Record<string, string> = { top_k: "top-k", top_p: "top-p", min_p: "min-p" };
const panelOrder = ["temperature", "top_k", "top_p", "min_p", "seed"];

/** Why a session with these settings cannot start in an export, whatever its text: the export holds generation
 * with the panel's first settings only (the stored sessions' requests are `stored`). Null: the settings are
 * those. */
export function settingsRefusal(stored: Record<string, unknown>[], body: Record<string, unknown>): string | null {
  const mine = canonical(settingsOf(body));
  if (!stored.length || stored.some((k) => canonical(settingsOf(k)) === mine)) return null;
  const first = settingsOf(stored[0]), asked = settingsOf(body);
  const name = (k: string) => settingNames[k] ?? k;
  const order = (k: string) => (panelOrder.indexOf(k) + 1 || 99);  // as the panel lists them
  const keys = [...new Set([...Object.keys(first), ...Object.keys(asked)])].sort((a, b) => order(a) - order(b));
  const changed = keys.filter((k) => asked[k] !== first[k]).map((k) => `${name(k)} ${asked[k] ?? "(empty)"}`);
  const held = keys.filter((k) => k in first).map((k) => `${name(k)} ${first[k]}`).join(", ");
  const greedy = first.temperature === 0 ? "greedy: " : "";
  return `This page holds generation with the panel's first settings only (${greedy}${held}), not ${changed.join(", ")}. ` +
    "Other settings need llmviz serve: run it on a computer to sample with them, or set the panel back.";
}

async function sessionRequest(m: Manifest, method: string, path: string, body: Body): Promise<Response> {
  if (path === "/api/sessions" && method === "POST") {
    const entry = m.sessions[canonical(body)];
    const refusal = entry ? null : settingsRefusal(Object.keys(m.sessions).map((k) => JSON.parse(k)), body);
    if (refusal) return reply(404, { detail: refusal });
    if (!entry) return notExported(m, body);
    sessions.set("exported", { entry, n: 0 });
    return answer(entry.start);
  }
  const [, sid, action] = path.match(/^\/api\/sessions\/([^/]+)\/?(\w*)$/) ?? [];
  const s = sessions.get(sid);
  if (method === "DELETE") {
    sessions.delete(sid);
    return reply(204, null);
  }
  if (!s) return reply(404, { detail: `unknown session ${sid}` });
  const steps = s.entry.steps ?? [];
  if (action === "step") {
    if (s.n >= steps.length) return answer(s.entry.over!);
    return answer(steps[s.n++]);
  }
  if (action === "undo" && s.n > 0) return answer(s.entry.undo![--s.n]);
  return notExported(m);
}

/** Answer one of the page's requests from the export's files. */
export async function exportedRequest(url: string, init: RequestInit = {}): Promise<Response> {
  const m = await loadManifest();
  const method = (init.method ?? "GET").toUpperCase();
  const body: Body | null = typeof init.body === "string" ? JSON.parse(init.body) : null;
  const path = new URL(url, "http://export/").pathname;
  if (path.startsWith("/api/sessions")) return sessionRequest(m, method, path, body ?? {});
  const stored = m.responses[requestKey(method, url, body)];
  return stored ? answer(stored) : notExported(m, body ?? Object.fromEntries(new URL(url, "http://export/").searchParams));
}
