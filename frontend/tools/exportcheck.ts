// For tests/test_export.py: answer requests as an exported page does (exported.ts), in node, from an export
// folder. Reads [{method, url, body}] as JSON on stdin; writes [{status, type, body (base64)}]. A request
// {explain: {model, context, past, cells}} is the page explaining cells of a stored pass (explain.ts, with
// exported.ts's exportedSource): its body is the explanations' JSON, or {error} (status 404).
//   node dist-test/exportcheck.mjs EXPORT_DIR < requests.json
import { readFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";

const folder = pathToFileURL(process.argv[2].replace(/\/?$/, "/")).href;
Object.assign(globalThis, { window: globalThis, document: { baseURI: folder }, __llmvizExport: "data/manifest.json.gz" });
globalThis.fetch = (async (url: string | URL) => {
  try {
    return new Response(await readFile(fileURLToPath(String(url))));
  } catch {
    return new Response("not found", { status: 404 });
  }
}) as typeof fetch;

const { exportedRequest, exportedSource } = await import("../src/exported");
const { explainCells, jsonSafe } = await import("../src/explain");

async function explained(r: { model: string; context: number[]; past: number; cells: [] }): Promise<Response> {
  try {
    const es = await explainCells(exportedSource(r.model, r.context, r.past), r.cells);
    return new Response(JSON.stringify(jsonSafe(es)), { headers: { "content-type": "application/json" } });
  } catch (e) {
    return new Response(JSON.stringify({ error: (e as Error).message }), { status: 404, headers: { "content-type": "application/json" } });
  }
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const r of JSON.parse(input)) {
  const res = r.explain ? await explained(r.explain) : await exportedRequest(r.url, { method: r.method, body: r.body === undefined ? undefined : JSON.stringify(r.body) });
  out.push({ status: res.status, type: res.headers.get("content-type"),
    body: Buffer.from(await res.arrayBuffer()).toString("base64") });
}
process.stdout.write(JSON.stringify(out));
