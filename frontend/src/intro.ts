// The first-visit card: what the model does, where its input and its answer are, and what to do next; and, when the
// server has more than one model with weights, a choice between them, each named with what it was trained to do.
// Dismissed once, it stays dismissed (localStorage).
import type { ModelInfo } from "./api";
import { escapeHtml } from "./html";
import type { SceneInfo } from "./scenedata";

const KEY = "llmviz.intro.dismissed";

export function introDismissed(): boolean {
  try {
    return localStorage.getItem(KEY) === "1";
  } catch {
    return false;
  }
}

export function dismissIntro(): void {
  try {
    localStorage.setItem(KEY, "1");
  } catch {
    /* private mode: it shows again next time */
  }
}

let pathOffered = false;

/** Offer the learning path on the card (a served page: an export or a notebook widget has none). */
export function offerPath(on: boolean): void {
  pathOffered = on;
}

/** The card's line that offers the learning path ("" when the page has none). */
export function pathOfferHtml(): string {
  return pathOffered ? `<p class="intro-path">New to neural networks?
    <button type="button" data-intro="path">Start with the learning path</button></p>` : "";
}

// How a tokenizer's whitespace tokens are shown in the scene (llmviz.io.tokenizer.VISIBLE), and what they stand for.
const MARKERS: Record<string, string> = { "␣": " ", "↵": " ", "⇥": " ", "␍": "" };

/** The input as a person reads it in a sentence: the decoded text, else the tokens with their whitespace markers
 * turned back into spaces; at most `max` characters (then "…"). */
export function readableInput(info: Pick<SceneInfo, "text" | "token_strs">, max = 60): string {
  const raw = info.text ?? (info.token_strs ?? []).join("").replace(/[␣↵⇥␍]/g, (c) => MARKERS[c]);
  const text = raw.replace(/\s+/g, " ").trim();
  return text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text;
}

/** What the model is, as a sentence: "llama: a Hugging Face llama model." (a loader's description, "Hugging Face
 * llama model <name>", is not one), or the description given, ending in a full stop. */
export function modelSentence(name: string, description: string): string {
  const hf = description.match(/^Hugging Face (.+?) model\b/);
  const what = hf ? `a Hugging Face ${hf[1]} model` : description.trim().replace(/[.\s]+$/, "");
  return what ? `${name}: ${what}.` : "";
}

/** The served models with weights, each a button that shows it (data-intro="model"), the one shown pressed; empty
 * when there is no choice to make. */
export function modelChoiceHtml(shown: string, models: Pick<ModelInfo, "name" | "has_weights" | "config" | "description">[]): string {
  const real = models.filter((m) => m.has_weights);
  if (real.length < 2) return "";
  return `<div class="intro-models" role="group" aria-label="models to try"><span>Try a model:</span>${real.map((m) => {
    const what = m.config.task || m.description;
    return `<button type="button" data-intro="model" data-model="${escapeHtml(m.name)}" aria-pressed="${m.name === shown}">
      <b>${escapeHtml(m.name)}</b>${what ? ` <span>${escapeHtml(what)}</span>` : ""}</button>`;
  }).join("")}</div>`;
}

export function introHtml(info: SceneInfo, touch: boolean, models: ModelInfo[] = []): string {
  const m = info.model, c = m.config;
  const what = c.task ? `It was trained on one task: ${escapeHtml(c.task)}.` : escapeHtml(modelSentence(m.name, m.description));
  const text = readableInput(info);
  const n = info.token_strs?.length;
  const input = text ? `Its input, “<span class="intro-input">${escapeHtml(text)}</span>”,` : "Its input";
  const side = c.image_side ?? 0;
  if (side) {  // an image classifier (digits-mlp): pixels in, one probability per class out, no transformer
    return `<h2>This is ${escapeHtml(m.name)}: every number of a small neural network, computed as you watch</h2>
    <p>${what} Its input is the ${side} × ${side} picture in the <b>draw a digit</b> pad: its ${side * side} pixels
    (0 blank, 16 ink) enter at the <b>top</b>, pass through ${c.n_layer} layers of hidden units, and come out as one
    probability per digit; the box at the top right says which digit it reads. Draw your own, or open one it gets wrong.</p>
    <p>${touch ? "Tap" : "Hover"} any cell to see its value and how it was computed; a unit of layer 0 shows its weights
    as a picture beside your drawing. The <b>Map</b> takes you to any part of the model; <b>Whole model</b> shows all of it.</p>
    ${pathOfferHtml()}
    ${modelChoiceHtml(m.name, models)}
    <div class="intro-actions"><button type="button" data-intro="all">Show the whole model</button>
    <button type="button" data-intro="close">Got it</button></div>`;
  }
  return `<h2>This is ${escapeHtml(m.name)}: every number of a GPT, computed as you watch</h2>
    <p>${what} ${input} enters at the <b>top</b> as ${n ? `${n} token${n === 1 ? "" : "s"}` : "tokens"}, flows down through
    ${c.n_layer} transformer layer${c.n_layer === 1 ? "" : "s"}, and its prediction comes out at the <b>bottom</b>;
    the <b>next token</b> box says what it answers.</p>
    <p>${touch ? "Tap" : "Hover"} any cell to see its value and how it was computed. The <b>Map</b> takes you to any part
    of the model; <b>Whole model</b> shows all of it; the <b>Walkthrough</b> tells it step by step.</p>
    ${pathOfferHtml()}
    ${modelChoiceHtml(m.name, models)}
    <div class="intro-actions"><button type="button" data-intro="walk">Take the guided walkthrough</button>
    <button type="button" data-intro="all">Show the whole model</button>
    <button type="button" data-intro="close">Got it</button></div>`;
}
