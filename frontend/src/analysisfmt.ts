// What the Attribution and Patching tabs say and how they shade, as pure functions (tested in node): a signed bar's
// extent, a sweep cell's colour and sentence, the legend's gradient.
import { valueColor } from "./colors";
import { num } from "./tooltip";

/** Where the zero line sits (a fraction of the width) so that bars from the most negative value to the most positive
 * fill the width; and each value's bar as [left, width], fractions of the width. */
export function barExtents(values: number[]): { zero: number; bars: [number, number][] } {
  const neg = Math.max(0, ...values.map((v) => -v)), pos = Math.max(0, ...values);
  const span = neg + pos || 1, zero = neg / span;
  return { zero, bars: values.map((v) => (v >= 0 ? [zero, v / span] : [zero + v / span, -v / span])) };
}

const css = ([r, g, b]: [number, number, number]) => `rgb(${Math.round(r * 255)},${Math.round(g * 255)},${Math.round(b * 255)})`;
export const NO_RECOVERY = "#e9ecef";

/** A sweep cell's colour: the share recovered on a diverging scale, white at 0, blue at 1 (the clean answer back),
 * orange at −1 (pushed further away); grey where nothing can be recovered (equal baselines). */
export function recoveredColor(r: number | null): string {
  return r === null ? NO_RECOVERY : css(valueColor("activation", r, 1));
}

/** The legend's gradient, from −100 % to 100 % recovered. */
export function legendGradient(stops = 9): string {
  const colors = Array.from({ length: stops }, (_, i) => recoveredColor(-1 + (2 * i) / (stops - 1)));
  return `linear-gradient(to right, ${colors.join(", ")})`;
}

/** A share as a person reads it: "91 %", "−4 %". */
export const percent = (r: number) => `${Math.round(100 * r)} %`.replace("-", "−");

/** The cell's short text: its share recovered in percent, blank where nothing can be recovered. */
export const cellText = (r: number | null) => (r === null ? "" : String(Math.round(100 * r)).replace("-", "−"));

export interface SweepTarget { token: string; clean: number; corrupted: number; position: number }

/** What a sweep cell did and gave: "patch resid_pre of layer 2 at position 5 (B) from the clean run: P(C) = 0.7312,
 * 91 % recovered". `what`: the patch ("resid_pre of layer 2 at position 5 (B)"). */
export function cellSentence(what: string, prob: number, recovered: number | null, t: SweepTarget, after = false): string {
  const said = `patch ${what} from the clean run: P(${t.token}) = ${num(prob)}`;
  if (after) return `${said}, as corrupted: position ${t.position} comes before it, and attention looks only back`;
  if (recovered === null) return `${said}: the clean and corrupted runs give ${t.token} the same probability, nothing to recover`;
  return `${said}, ${percent(recovered)} recovered`;
}

/** The patched place of a residual cell, and of a head. */
export const residWhat = (label: string, pos: number, token: string) => `${label} at position ${pos} (${token})`;
export const headWhat = (layer: number, head: number) => `head ${head} of layer ${layer} (its hook_z at every position)`;
