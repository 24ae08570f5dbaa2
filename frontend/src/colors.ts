// Colour families: weights, activations and aggregates each have their own pair of hues for negative
// and positive values; white is zero. The shader and the legend both read these numbers.

export type Kind = "input" | "weight" | "activation" | "aggregate";
export const KINDS: Kind[] = ["input", "weight", "activation", "aggregate"];

export interface Family { negative: string; positive: string; side: string; label: string }

export const FAMILIES: Record<Kind, Family> = {
  input: { negative: "#868e96", positive: "#868e96", side: "#495057", label: "input tokens" },
  weight: { negative: "#be4bdb", positive: "#095c6b", side: "#495057", label: "weights" },  // (apart for every CVD: test/colors.test.ts)
  activation: { negative: "#d9480f", positive: "#1864ab", side: "#343a40", label: "activations" },
  aggregate: { negative: "#5f3dc4", positive: "#2b8a3e", side: "#343a40", label: "aggregates (mean, σ, max, Σexp)" },
};
/** Gradients (∂loss/∂x of every weight and activation): one palette of their own for every block, so that a
 * gradient is never read as a value. */
export const GRADIENT: Family = { negative: "#c2255c", positive: "#087f5b", side: "#495057", label: "gradients ∂loss/∂x" };
/** A quantized model's weights coloured by their quantization error (stored − original): a diverging palette of its
 * own (ColorBrewer's PuOr ends), so that an error is never read as a value. */
export const QUANT_ERROR: Family = { negative: "#b35806", positive: "#542788", side: "#495057", label: "quantization error (stored − original)" };
export const MASKED = "#ced4da";
export const STRUCTURE = "#dee2e6";

export function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255];
}

/** The colour of `value` in a block whose largest magnitude is `scale`: white at 0, the family's hue at ±scale. */
export function valueColor(kind: Kind, value: number, scale: number): [number, number, number] {
  const f = FAMILIES[kind];
  if (value === -Infinity) return hexToRgb(MASKED);
  const t = scale > 0 ? Math.max(-1, Math.min(1, value / scale)) : 0;
  const hue = hexToRgb(t < 0 ? f.negative : f.positive);
  const a = Math.abs(t) ** 0.6;
  return [1 + (hue[0] - 1) * a, 1 + (hue[1] - 1) * a, 1 + (hue[2] - 1) * a];
}
