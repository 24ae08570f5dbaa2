// Hyperbolic geometry on the Poincaré disk, for the branch tree: points are complex numbers inside the unit
// circle; a Möbius transform moves any point to the centre; straight lines are arcs that meet the rim at right
// angles. Pure functions, no page.

export type C = [number, number];

const add = (a: C, b: C): C => [a[0] + b[0], a[1] + b[1]];
const sub = (a: C, b: C): C => [a[0] - b[0], a[1] - b[1]];
const mul = (a: C, b: C): C => [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
const conj = (a: C): C => [a[0], -a[1]];
const div = (a: C, b: C): C => {
  const d = b[0] * b[0] + b[1] * b[1];
  return [(a[0] * b[0] + a[1] * b[1]) / d, (a[1] * b[0] - a[0] * b[1]) / d];
};
export const abs = (a: C): number => Math.hypot(a[0], a[1]);
const polar = (r: number, angle: number): C => [r * Math.cos(angle), r * Math.sin(angle)];

/** The isometry that moves `a` to the centre: (z − a) / (1 − ā z). */
export function toCentre(z: C, a: C): C {
  return div(sub(z, a), sub([1, 0], mul(conj(a), z)));
}

/** Its inverse: moves the centre to `a`. */
export function fromCentre(z: C, a: C): C {
  return div(add(z, a), add([1, 0], mul(conj(a), z)));
}

export interface TreeNode { children: TreeNode[] }

/** A position in the disk for every node, keyed by its path of child indices ("" the root, "0.2" the third child
 * of the first child). Children sit one step (hyperbolic distance `step`) from their parent, spread over a
 * wedge facing away from the grandparent; space grows so fast in the disk that wedges never run out. */
export function layout(root: TreeNode, step = 1.3): Map<string, C> {
  const out = new Map<string, C>([["", [0, 0]]]);
  const r = Math.tanh(step / 2);
  const place = (node: TreeNode, key: string, at: C, back: number, wedge: number) => {
    const n = node.children.length;
    node.children.forEach((child, i) => {
      const angle = wedge >= 2 * Math.PI ? (2 * Math.PI * i) / n - Math.PI / 2
        : back + Math.PI + (n === 1 ? 0 : (i / (n - 1) - 0.5) * wedge);
      const pos = fromCentre(polar(r, angle), at);
      const k = key === "" ? String(i) : `${key}.${i}`;
      out.set(k, pos);
      const home = toCentre(at, pos);  // the parent, seen from the child: its children face away from it
      place(child, k, pos, Math.atan2(home[1], home[0]), Math.min(Math.PI * 0.9, (wedge / Math.max(n, 1)) * 2.2));
    });
  };
  place(root, "", [0, 0], 0, 2 * Math.PI);
  return out;
}

/** The focus `t` of the way (0 to 1) from a to b along their geodesic: re-centring glides, it does not jump. */
export function between(a: C, b: C, t: number): C {
  const d = toCentre(b, a), len = abs(d);
  if (len < 1e-12) return a;
  const s = Math.tanh(t * Math.atanh(Math.min(len, 1 - 1e-12))) / len;
  return fromCentre([d[0] * s, d[1] * s], a);
}

/** How big things are drawn at a point: the disk's scale factor, 1 at the centre and 0 at the rim. */
export function scaleAt(z: C): number {
  return Math.max(0, 1 - z[0] * z[0] - z[1] * z[1]);
}

/** The geodesic from u to v as an SVG path in a disk of radius R centred at (cx, cy): an arc of the circle that
 * meets the rim at right angles, or a straight line through the centre. */
export function geodesic(u: C, v: C, R: number, cx: number, cy: number): string {
  const X = (z: C) => (cx + z[0] * R).toFixed(1), Y = (z: C) => (cy + z[1] * R).toFixed(1);
  const cross = u[0] * v[1] - u[1] * v[0];
  if (Math.abs(cross) < 1e-6) return `M${X(u)},${Y(u)}L${X(v)},${Y(v)}`;
  // The circle through u, v and u's inverse in the rim, u / |u|²: orthogonal to the rim.
  const w: C = abs(u) > 1e-9 ? [u[0] / (abs(u) ** 2), u[1] / (abs(u) ** 2)] : [v[0] / (abs(v) ** 2), v[1] / (abs(v) ** 2)];
  const c = circumcentre(u, v, w);
  const radius = abs(sub(u, c)) * R;
  return `M${X(u)},${Y(u)}A${radius.toFixed(1)},${radius.toFixed(1)} 0 0 ${cross > 0 ? 0 : 1} ${X(v)},${Y(v)}`;
}

function circumcentre(a: C, b: C, c: C): C {
  const d = 2 * (a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]));
  const a2 = a[0] ** 2 + a[1] ** 2, b2 = b[0] ** 2 + b[1] ** 2, c2 = c[0] ** 2 + c[1] ** 2;
  return [(a2 * (b[1] - c[1]) + b2 * (c[1] - a[1]) + c2 * (a[1] - b[1])) / d,
    (a2 * (c[0] - b[0]) + b2 * (a[0] - c[0]) + c2 * (b[0] - a[0])) / d];
}
