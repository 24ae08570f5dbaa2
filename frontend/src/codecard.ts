// The walkthrough's @code card, as HTML: what a newcomer reads first, and the project's real code folded away.
import { escapeHtml as esc } from "./html";

/** The @code card: the op as a newcomer would write it under "the code", and the project's real source folded
 * behind "how it is really computed"; with no plain version, the real source as the code. */
export function codeCard(a: { plain?: string | null; source: string; file: string }): string {
  const file = `llmviz/${esc(a.file)}`;
  if (!a.plain) return `<div class="walk-card walk-code"><b>the code</b> (${file})<pre><code>${esc(a.source)}</code></pre></div>`;
  return `<div class="walk-card walk-code"><b>the code</b><pre class="plain"><code>${esc(a.plain)}</code></pre>
    <details class="real"><summary>how it is really computed (${file})</summary><pre><code>${esc(a.source)}</code></pre></details></div>`;
}
