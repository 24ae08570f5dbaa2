// Entry point: list the server's models and run the forward pass on the user's input.
import { fetchModels, fetchTrace, type ModelInfo } from "./api";
import { argmaxRow, formatCount } from "./trace";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;

function showError(message: string) {
  const box = $<HTMLDivElement>("#error");
  box.textContent = message;
  box.hidden = message === "";
}

function renderModels(models: ModelInfo[]) {
  const rows = models.map((m) => {
    const tr = document.createElement("tr");
    const cells = [m.name, formatCount(m.n_params), String(m.config.n_layer), String(m.config.n_head),
      String(m.config.n_embd), m.has_weights ? "real weights" : "structure only: no weights loaded", m.description];
    for (const c of cells) tr.appendChild(Object.assign(document.createElement("td"), { textContent: c }));
    tr.dataset.model = m.name;
    return tr;
  });
  $<HTMLTableSectionElement>("#models tbody").replaceChildren(...rows);
  const select = $<HTMLSelectElement>("#model");
  select.replaceChildren(...models.filter((m) => m.has_weights).map((m) =>
    Object.assign(document.createElement("option"), { value: m.name, textContent: m.name })));
}

async function run() {
  showError("");
  const model = $<HTMLSelectElement>("#model").value;
  const text = $<HTMLInputElement>("#prompt").value;
  const out = $<HTMLDivElement>("#result");
  try {
    const trace = await fetchTrace(model, text);
    const probs = trace.tensors.get("probs")!;
    const predicted: string[] = JSON.parse(trace.metadata.predicted ?? "[]");
    const rows = trace.tokenStrs.map((tok, t) => {
      const { value } = argmaxRow(probs, t);
      return `<tr><td>${t}</td><td class="tok">${escape(tok)}</td><td class="tok">${escape(predicted[t])}</td><td>${(value * 100).toFixed(2)} %</td></tr>`;
    });
    out.innerHTML = `<p>${trace.tensors.size} tensors computed for ${trace.tokens.length} tokens.</p>
      <table id="predictions"><thead><tr><th>position</th><th>token</th><th>predicted next</th><th>probability</th></tr></thead>
      <tbody>${rows.join("")}</tbody></table>`;
  } catch (e) {
    out.replaceChildren();
    showError((e as Error).message);
  }
}

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

async function start() {
  try {
    renderModels(await fetchModels());
    document.body.dataset.ready = "true";
  } catch (e) {
    showError(`Could not reach the llmviz server: ${(e as Error).message}`);
    return;
  }
  $<HTMLFormElement>("#run").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void run();
  });
  await run();
}

void start();
