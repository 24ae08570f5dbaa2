// What the model says, always in view: the next token after the input and its probability, the runners-up,
// and for a model that answers in several tokens (nano-gpt sorts six letters) its greedy answer. Plus the
// task the model was trained on, as a hint beside the input, and a note when the input is not that shape.
import { escapeHtml } from "./html";
import type { ModelConfig, SceneInfo } from "./scenedata";

const esc = escapeHtml;

/** The readout's HTML for a scene with numbers; "" for a structure-only scene. */
export function readoutHtml(info: SceneInfo): string {
  const p = info.prediction;
  if (!p || !info.token_strs) return "";
  const [best, ...rest] = p.top;
  const input = info.text ?? (info.past ? info.axis_names?.key_pos ?? info.token_strs : info.token_strs).join("");  // a step: its context
  const clean = info.clean_prediction?.top[0];  // an edited pass: the clean pass's answer, then the edited one's
  const cmp = info.compare;  // two precisions: the reference's answer, then the other's, each with its format
  const fmt = (f?: string) => (cmp && f ? `<span class="ro-fmt">${esc(f)}:</span> ` : "");
  const before = clean ? `<span class="ro-before">${fmt(cmp?.reference.format)}<span class="ro-token" data-clean-token="${esc(clean.token)}">${esc(clean.token)}</span>
    <span class="ro-prob">${esc(clean.percent)}</span> →</span> ` : "";
  const c = info.model.config;
  const said = c.image_side ? "the model reads the drawing as"
    : c.input_size ? `the neuron puts the point <code>${esc(info.token_strs.join(", "))}</code> in class`
    : `next token after <code>${esc(input)}</code>`;
  const pair = cmp ? `, ${esc(cmp.reference.format)} → ${esc(cmp.other.format)}` : clean ? ", clean → edited" : "";
  const parts = [`<div class="ro-next"><span class="ro-label">${said}${pair}</span>
    ${before}${fmt(cmp?.other.format)}<span class="ro-token" data-token="${esc(best.token)}">${esc(best.token)}</span>
    <span class="ro-prob">${esc(best.percent)}</span></div>`];
  const moved = changedPredictions(info);
  if (moved) parts.push(`<div class="ro-changed">${esc(moved)}</div>`);
  if (info.loss != null) {  // a scene coloured by the loss's gradients: the loss they are of
    const n = info.token_strs.length;
    parts.push(`<div class="ro-loss">loss <b data-loss="${info.loss}">${esc(info.loss.toPrecision(4))}</b>: each position's ` +
      `next token, −log p, averaged over positions 0–${n - 2}; the blocks show its gradient</div>`);
  }
  if (rest.length) {
    parts.push(`<div class="ro-rest">${c.input_size ? "class" : "then"} ${rest.slice(0, 3).map((r) => `<code>${esc(r.token)}</code> (${esc(r.percent)})`).join(" · ")}</div>`);
  }
  if (p.answer) {
    const a = p.answer, written = a.written ?? 0, n = a.ids.length;
    const label = written ? `answer: ${written} token${written > 1 ? "s" : ""} written, ${n - written} more fed back one by one`
      : `answer, ${n} tokens fed back one by one`;
    parts.push(`<div class="ro-answer"><span class="ro-label">${label}</span>
      <span class="ro-token" data-answer="${esc(a.text)}">${written ? `<span class="ro-written">${esc(a.tokens.slice(0, written).join(""))}</span>` : ""}${
        esc(a.tokens.slice(written).join(""))}</span></div>`);
  }
  const note = lengthNote(info.model.name, info.model.config, (info.context ?? info.token_strs).length);
  if (note) parts.push(`<div class="ro-note">${esc(note)}</div>`);
  return parts.join("");
}

/** An edited pass: where its most probable next token differs from the clean pass's ("the prediction changed at 2
 * of 11 positions: after position 4, B → C; ..."), or that it changed nowhere; "" for a clean pass. */
export function changedPredictions(info: Pick<SceneInfo, "predicted" | "clean_predicted">): string {
  const after = info.predicted, before = info.clean_predicted;
  if (!after || !before) return "";
  const at = after.flatMap((t, i) => (t !== before[i] ? [i] : []));
  if (!at.length) return `the most probable next token is the same at all ${after.length} positions`;
  const shown = at.slice(0, 4).map((i) => `after position ${i}, ${before[i]} → ${after[i]}`).join("; ");
  return `the most probable next token changed at ${at.length} of ${after.length} positions: ${shown}${at.length > 4 ? "; …" : ""}`;
}

/** The hint for the input field: what the model was trained to do, if the model says. */
export function taskHint(name: string, config: ModelConfig): string {
  return config.task ? `${name}: ${config.task}` : "";
}

/** A visible warning when the input is not the length the model was trained on (an input followed by part of
 * its answer, as generation writes it, is). */
export function lengthNote(name: string, config: ModelConfig, tokens: number): string {
  const n = config.task_tokens;
  if (!n || tokens === n || (tokens > n && tokens <= n + (config.answer_tokens ?? 0))) return "";
  return `${name} was trained on inputs of ${n} tokens; this one has ${tokens}, so its answer may not make sense.`;
}
