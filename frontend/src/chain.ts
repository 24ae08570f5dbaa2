// One generation step's sampling chain, drawn as successive small bar charts of the top candidates (the
// model's probabilities, after temperature, top-k, top-p, min-p, renormalised), then the cumulative bar
// with the draw u marked on it and the chosen token highlighted. All numbers come from the server.
import { escapeHtml } from "./html";
import type { components } from "./api-schema";

export type Stage = components["schemas"]["Stage"];
export type Step = components["schemas"]["Step"];

const esc = escapeHtml;

/** One candidate's row: its token, a bar as long as its probability, the probability as printed (the walkthrough's
 * temperature card draws its rows with it too). */
export function barRow(token: string, prob: number, percent: string, chosen = false): string {
  return `<div class="ch-row${chosen ? " chosen" : ""}">
    <code>${esc(token)}</code><span class="ch-bar"><span style="width:${(prob * 100).toFixed(2)}%"></span></span>
    <span class="ch-p">${esc(percent)}</span></div>`;
}

function bars(stage: Stage, chosen: number): string {
  const rows = stage.top.slice(0, 5).map((c) => barRow(c.token, c.prob, c.percent, c.id === chosen));
  return `<div class="ch-stage" data-stage="${esc(stage.name)}"><div class="ch-name">${esc(stage.name)}
    <small>${stage.kept.toLocaleString("en")} kept</small></div>${rows.join("")}</div>`;
}

/** The cumulative bar of the final distribution: one segment per candidate, u marked where it fell. */
function cumulative(step: Step): string {
  const last = step.stages[step.stages.length - 1];
  let at = 0;
  const segments = last.top.map((c) => {
    const seg = `<span class="ch-seg${c.id === step.id ? " chosen" : ""}" style="left:${(at * 100).toFixed(2)}%;` +
      `width:${(c.prob * 100).toFixed(2)}%" title="${esc(c.token)} ${esc(c.percent)}">${c.prob > 0.08 ? esc(c.token) : ""}</span>`;
    at += c.prob;
    return seg;
  });
  const u = step.u === null ? "" : `<span class="ch-u" style="left:${(step.u * 100).toFixed(2)}%" data-u="${step.u}">u</span>`;
  const text = step.u === null ? "greedy: the most probable token, no draw"
    : `u = ${step.u.toFixed(4)} falls on <code>${esc(step.token)}</code>`;
  return `<div class="ch-cum"><div class="ch-name">draw on the cumulative sum <small>${text}</small></div>
    <div class="ch-track">${segments.join("")}${u}</div></div>`;
}

export function chainHtml(step: Step): string {
  const head = `<div class="ch-head">position ${step.position}: <code class="ch-token">${esc(step.token)}</code>
    (model ${esc(step.stages[0].top.find((c) => c.id === step.id)?.percent ?? "")})</div>`;
  return head + step.stages.map((s) => bars(s, step.id)).join("") + cumulative(step);
}
