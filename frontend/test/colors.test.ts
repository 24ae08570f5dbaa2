// Issue #21's colour check: every kind's negative and positive hues stay apart for the three colour-vision
// deficiencies (Machado, Oliveira and Fernandes 2009, full severity, in linear RGB), at full and at half
// strength, measured as CIELAB distance (ΔE*ab) between the two simulated colours.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FAMILIES, valueColor, type Kind } from "../src/colors";

type RGB = [number, number, number];
const SIMULATE: Record<string, number[][]> = {
  protanopia: [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
  deuteranopia: [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.01182, 0.04294, 0.968881]],
  tritanopia: [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.3039]],
  none: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
};

const linear = (c: number) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const clamp = (x: number) => Math.min(1, Math.max(0, x));

/** sRGB (0-1) as seen with a deficiency: its linear RGB through the deficiency's matrix. Returns linear RGB. */
function seen(rgb: RGB, m: number[][]): RGB {
  const l = rgb.map(linear);
  return m.map((row) => clamp(row[0] * l[0] + row[1] * l[1] + row[2] * l[2])) as RGB;
}

/** Linear RGB to CIELAB (D65). */
function lab([r, g, b]: RGB): RGB {
  const x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, y = 0.2126 * r + 0.7152 * g + 0.0722 * b,
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  return [116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))];
}

const deltaE = (a: RGB, b: RGB) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

test("positive and negative stay apart under deuteranopia, protanopia and tritanopia, for every numeric kind", () => {
  const kinds = (Object.keys(FAMILIES) as Kind[]).filter((k) => k !== "input");  // (the tokens: one grey, no sign)
  for (const kind of kinds) {
    for (const [name, m] of Object.entries(SIMULATE)) {
      for (const strength of [1, 0.5]) {
        const neg = lab(seen(valueColor(kind, -strength, 1), m)), pos = lab(seen(valueColor(kind, strength, 1), m));
        const d = deltaE(neg, pos);
        // 20: clearly two colours side by side (a just-noticeable difference is about 2.3)
        assert.ok(d > 20, `${kind} under ${name} at ${strength}: ΔE ${d.toFixed(1)}`);
      }
    }
  }
});

test("zero is white for every kind, and a half value is lighter than a full one", () => {
  for (const kind of Object.keys(FAMILIES) as Kind[]) {
    assert.deepEqual(valueColor(kind, 0, 1), [1, 1, 1]);
    const half = lab(seen(valueColor(kind, 0.5, 1), SIMULATE.none)), full = lab(seen(valueColor(kind, 1, 1), SIMULATE.none));
    if (kind !== "input") assert.ok(half[0] > full[0] + 5, kind);
  }
});
