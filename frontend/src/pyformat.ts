// Python's number and string formatting, for text the browser writes that must read exactly as the server's:
// format(x, ".4g"), format(x, "g"), format(n, ","), repr(s), and numpy's pairwise sum.

/** format(x, `.${p}g`): p significant digits, rounded half to even on the exact value, trailing zeros dropped,
 * exponent form below 1e-4 or from 10^p, with a signed exponent of at least two digits. */
export function formatG(x: number, p = 6): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  const a = Math.abs(x);
  if (a === 0) return `${sign}0`;
  let [m, e] = a.toExponential(p - 1).split("e");
  let digits = m.replace(".", ""), exp = Number(e);
  // JavaScript rounds an exact tie up; Python to the even digit.
  const [xm, xe] = a.toExponential(p + 24).split("e");
  const exact = xm.replace(".", "");
  if (exact[p] === "5" && /^0*$/.test(exact.slice(p + 1)) && Number(exact[p - 1]) % 2 === 0) {
    digits = exact.slice(0, p);
    exp = Number(xe);
  }
  const trim = (s: string) => s.replace(/0+$/, "");
  if (exp >= -4 && exp < p) {
    const int = exp >= 0 ? digits.slice(0, exp + 1) : "0";
    const frac = trim(exp >= 0 ? digits.slice(exp + 1) : "0".repeat(-exp - 1) + digits);
    return sign + int + (frac ? `.${frac}` : "");
  }
  const frac = trim(digits.slice(1));
  return `${sign}${digits[0]}${frac ? `.${frac}` : ""}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
}

/** The server's fmt: 4 significant digits, a true minus sign, −∞ written out. */
export function fmt(v: number): string {
  if (v === -Infinity) return "−∞";
  if (v === Infinity) return "∞";
  return formatG(v, 4).replaceAll("-", "−");
}

/** format(n, ","): 85728 -> "85,728". */
export function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** repr(s): single quotes unless the string holds one and no double quote; unprintable characters escaped. */
export function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === q || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && UNPRINTABLE.test(ch)) {
      out += c < 0x100 ? `\\x${c.toString(16).padStart(2, "0")}` : c < 0x10000 ? `\\u${c.toString(16).padStart(4, "0")}`
        : `\\U${c.toString(16).padStart(8, "0")}`;
    } else out += ch;
  }
  return out + q;
}

/** numpy's sum of float64 numbers: pairwise, in blocks of 8 (numpy's pairwise_sum), so that the last digits agree. */
export function npSum(a: ArrayLike<number>, from = 0, n = a.length): number {
  if (n < 8) {
    let res = 0;  // numpy starts the reduction from add's identity, 0 (so −0 sums to 0)
    for (let i = 0; i < n; i++) res += a[from + i];
    return res;
  }
  if (n <= 128) {
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map((j) => a[from + j]);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[from + i + j];
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[from + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return npSum(a, from, n2) + npSum(a, from + n2, n - n2);
}
