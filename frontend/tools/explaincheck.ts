// For the Python tests: the page's explanations (explain.ts), in node, of cells of one pass whose numbers Python
// wrote. Each cell is explained as the served page explains it: from a pass that holds nothing yet, whose numbers
// arrive as the slices explain asks for (the answers /api/cells would give, cut from the written tensors) and whose
// tokens' names arrive as asked; each answer says how many fetches that took (`rounds`) and how many slices.
//   node dist-test/explaincheck.mjs < jobs.json
// jobs: [{kind: "explain", trace: FILE (safetensors: every tensor of the pass, weights too), pass: {model, graph,
//   context, token_strs, vocab}, cells: [{tensor, index} | {tensor, region}]}]
// Writes one answer per job: a list of {explanation, rounds, slices} | {error}. JSON, with
// infinities and NaN as Python's json reads them.
import { readFile } from "node:fs/promises";
import { ExplainError, explainCells, HeldPass, type GraphJson, type PassSource, subSlice } from "../src/explain";
import { parseTrace } from "../src/trace";

interface PassJson { model: string; graph: GraphJson; context: number[]; token_strs: string[]; vocab: string[] }

async function explainJob(job: { trace: string; pass: PassJson; cells: { tensor: string; index?: number[]; region?: Record<string, [number, number]> }[] }) {
  const bytes = await readFile(job.trace);
  const whole = parseTrace(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer).tensors;
  const { model, graph, context, token_strs: tokenStrs, vocab } = job.pass;
  const axes = new Map(graph.tensors.map((t) => [t.name, t.axes]));
  const shapes = new Map([...whole].map(([n, t]) => [n, t.shape]));
  const out = [];
  for (const cell of job.cells) {
    const p = new HeldPass(model, graph, context, tokenStrs, new Map(shapes));
    for (const [i, id] of context.slice(graph.past).entries()) p.names.set(id, tokenStrs[i]);  // (the scene names these)
    let rounds = 0, slices = 0;
    const src: PassSource = {
      pass: async () => p,
      fetch: async (q) => {
        rounds++;
        slices += q.wanted.length;
        for (const w of q.wanted) {
          const t = whole.get(w.tensor)!;
          q.hold(w.tensor, w.at, subSlice({ axes: axes.get(w.tensor)!, shape: t.shape, values: t.data }, w.at));
        }
        for (const id of q.wantedNames) q.names.set(id, vocab[id]);
      },
    };
    try {
      const [e] = await explainCells(src, [cell]);
      out.push({ explanation: e, rounds, slices });
    } catch (e) {
      if (!(e instanceof ExplainError)) throw e;
      out.push({ error: e.message });
    }
  }
  return out;
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const answers = [];
for (const job of JSON.parse(input)) {
  answers.push(await explainJob(job));
}
// Python's json reads the bare words -Infinity, Infinity and NaN.
const marks: Record<string, string> = { "-Infinity": "\u0000-inf", Infinity: "\u0000inf", NaN: "\u0000nan" };
const text = JSON.stringify(answers, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? marks[String(v)] : v));
process.stdout.write(text.replaceAll('"\\u0000-inf"', "-Infinity").replaceAll('"\\u0000inf"', "Infinity").replaceAll('"\\u0000nan"', "NaN"));
