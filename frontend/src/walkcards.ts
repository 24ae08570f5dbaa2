// The walkthrough's cards that operate a real feature: the temperature slider over the model's own logits, and
// the generator's step with its KV cache. Pure functions of the server's data (no page access), so that they
// are tested with node --test; walkthrough.ts puts them in the panel and wires their controls.
import { barRow } from "./chain";
import { escapeHtml as esc } from "./html";
import type { TemperatureAction } from "./walkstate";

/** The bars of a temperature step at stop k: each shown token's probability (grown in by p, the action's
 * progress), then the other tokens' share. The same rows as the Generate panel's sampling chain. */
export function temperatureBars(a: TemperatureAction, k: number, p = 1): string {
  const best = Math.max(...a.entries.map((e) => e.p[k]));
  const rows = a.entries.map((e) => barRow(e.name, e.p[k] * p, e.percent[k], e.p[k] === best));
  const left = a.n - a.entries.length;
  if (a.rest) rows.push(barRow(`${left.toLocaleString("en")} others`, a.rest.p[k] * p, a.rest.percent[k]));
  return rows.join("");
}

/** What the temperature at stop k does, in words. */
export function temperatureSays(t: number): string {
  if (t === 0) return "0: greedy, all on the most probable token";
  if (t === 1) return "1: the model's own probabilities";
  return t < 1 ? `${t}: sharper than the model's own` : `${t}: flatter than the model's own`;
}

/** The whole card: the slider (one stop per temperature the server worked out) and the bars at stop k. */
export function temperatureCard(a: TemperatureAction, k: number, p = 1): string {
  const ticks = a.temperatures.map((t, i) => `<option value="${i}" label="${t}"></option>`).join("");
  return `<div class="walk-card walk-temp"><label><b>temperature</b>
      <input type="range" min="0" max="${a.temperatures.length - 1}" step="1" value="${k}" list="walk-temp-stops"
        data-temperature aria-valuetext="temperature ${a.temperatures[k]}"></label>
    <datalist id="walk-temp-stops">${ticks}</datalist>
    <div class="walk-temp-says">temperature ${esc(temperatureSays(a.temperatures[k]))}</div>
    <div class="walk-temp-note">(the view's probs block stays at 1, the model's own)</div>
    <div class="walk-temp-bars">${temperatureBars(a, k, p)}</div></div>`;
}
