// The first-visit card: what the model does, where its input and its answer are, and what to do next.
// Dismissed once, it stays dismissed (localStorage).
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

export function introHtml(info: SceneInfo, touch: boolean): string {
  const m = info.model, c = m.config;
  const what = c.task ? `It was trained on one task: ${escapeHtml(c.task)}.` : escapeHtml(m.description);
  const input = info.token_strs ? `<code>${escapeHtml(info.token_strs.join(""))}</code>` : "the input";
  return `<h2>This is ${escapeHtml(m.name)}: every number of a GPT, computed as you watch</h2>
    <p>${what} Its input ${input} enters at the <b>top</b> as tokens, flows down through
    ${c.n_layer} transformer layer${c.n_layer === 1 ? "" : "s"}, and its prediction comes out at the <b>bottom</b>;
    the <b>next token</b> box says what it answers.</p>
    <p>${touch ? "Tap" : "Hover"} any cell to see its value and how it was computed. The <b>Map</b> takes you to any part
    of the model; <b>Whole model</b> shows all of it; the <b>Walkthrough</b> tells it step by step.</p>
    <div class="intro-actions"><button type="button" data-intro="walk">Take the guided walkthrough</button>
    <button type="button" data-intro="all">Show the whole model</button>
    <button type="button" data-intro="close">Got it</button></div>`;
}
