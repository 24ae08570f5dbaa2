// The chain rule of a hovered cell's gradient, in the gradients view. The server works it out (POST /api/chain:
// views/chainrule.py, each op's step beside its backward in core/ops); this file asks for it, keeps the answers for the
// next hover, and lays them out: ∂loss/∂x = Σ over what reads x of upstream × local, each reader's formula with its
// numbers, its largest terms, and the total beside the backward pass's own number.
import { check, post } from "./api";
import type { components } from "./api-schema";
import { escapeHtml } from "./html";
import { fmt as num } from "./pyformat";
import type { SceneInfo } from "./scenedata";

export type ChainRule = components["schemas"]["ChainRule"];
type Part = components["schemas"]["ChainPart"];

const esc = escapeHtml;
const par = (v: number) => (v < 0 ? `(${num(v)})` : num(v));  // a negative number after an operator
const KEPT = 2000;  // answers kept (a few hundred bytes each)
const kept = new Map<string, Promise<ChainRule>>();

/** The chain rule of one cell of the pass a gradients scene shows (asked once, then kept). */
export function chainOf(info: SceneInfo, tensor: string, index: number[]): Promise<ChainRule> {
  const key = JSON.stringify([info.model.name, info.tokens, tensor, index]);
  let answer = kept.get(key);
  if (!answer) {
    answer = post("/api/chain", { model: info.model.name, tokens: info.tokens, tensor, index })
      .then(check).then((r) => r.json() as Promise<ChainRule>);
    answer.catch(() => kept.delete(key));  // (asked again next time)
    if (kept.size >= KEPT) kept.clear();
    kept.set(key, answer);
  }
  return answer;
}

const CIRCLED = "①②③④⑤⑥⑦⑧⑨";

function partHtml(p: Part, k: number, many: boolean, x: string): string {
  const head = `${many ? `${CIRCLED[k] ?? `${k + 1}.`} ` : ""}<b>${esc(p.title)}</b>` +
    `${p.tied ? ` (as <code>${esc(p.tied)}</code>, the same numbers)` : ""}${p.reader === "loss" ? "" : ` reads ${x}`}`;
  const out = [`<div class="ch-head">${head}: <code class="ch-formula">${esc(p.formula)}</code></div>`,
    `<div class="ch-up">${esc(p.upstream)}</div>`];
  if (p.rows.length) {
    out.push(`<div class="ch-rows">${p.rows.map((r) => `${esc(r.label)} = ${num(r.value)}`).join(" · ")}</div>`);
  }
  const t = p.terms;
  if (t) {
    const over = t.over.length ? ` over ${t.over.join(", ")}` : "";
    const rows = t.shown.map((s) =>
      `<tr><td>${esc(s.where)}</td><td>${num(s.g)} × ${par(s.d)}</td><td>= ${num(s.product)}</td></tr>`);
    const more = t.count - t.shown.length;
    if (more) rows.push(`<tr><td colspan="2">… and ${more} more</td><td>= ${num(t.rest)}</td></tr>`);
    const what = t.count === 1 ? "1 term" : `${t.count} terms`;
    out.push(`<div class="ch-terms-title">${what}${over}, g × ∂out/∂${x}${more ? `; the ${t.shown.length} largest` : ""}:</div>` +
      `<table class="tt-terms ch-terms">${rows.join("")}</table>`);
  }
  out.push(`<div class="ch-text" data-value="${p.value}">= ${esc(p.text)}</div>`);
  return `<div class="ch-part" data-reader="${esc(p.reader)}">${out.join("")}</div>`;
}

/** The chain rule, as the tooltip shows it; `drawn`: the cell's gradient as the view draws it (float16), said beside
 * the backward pass's float32 number when the two differ visibly. */
export function chainHtml(c: ChainRule, drawn?: number): string {
  const out: string[] = [], x = esc(c.symbol);
  if (c.gradient === null || c.gradient === undefined) {
    out.push(`<div class="ch-grad">∂loss/∂${x}: <b data-grad="none">none</b></div>`);
    if (c.note) out.push(`<div class="ch-note">${esc(c.note)}</div>`);
    return `<div class="tt-chain">${out.join("")}</div>`;
  }
  const asDrawn = drawn !== undefined && num(drawn) !== num(c.gradient) ? ` (drawn in float16 as ${num(drawn)})` : "";
  out.push(`<div class="ch-grad">∂loss/∂${x} = <b data-grad="${c.gradient}">${num(c.gradient)}</b>${esc(asDrawn)}</div>`);
  const many = c.parts.length > 1;
  if (c.parts.length) {
    const what = c.parts[0].reader === "loss" ? `the loss reads ${x} directly`
      : many ? `Σ over the ${c.parts.length} ops that read ${x} of upstream × local` : "upstream × local";
    out.push(`<div class="ch-rule">chain rule: ${esc(what)}</div>`);
  }
  for (const [k, p] of c.parts.entries()) out.push(partHtml(p, k, many, x));
  const total = c.total ?? 0;
  if (many) {
    out.push(`<div class="ch-total">total: ${c.parts.map((p, k) => (k ? par(p.value) : num(p.value))).join(" + ")} = ` +
      `<b data-total="${total}">${num(total)}</b></div>`);
  } else {
    out.push(`<span hidden data-total="${total}"></span>`);
  }
  const same = num(total) === num(c.gradient);
  out.push(`<div class="ch-check">${same ? `= the backward pass's ∂loss/∂${x}, ${num(c.gradient)} ✓`
    : `the backward pass, in float32: ${num(c.gradient)}`}</div>`);
  if (c.note) out.push(`<div class="ch-note">${esc(c.note)}</div>`);
  return `<div class="tt-chain">${out.join("")}</div>`;
}
