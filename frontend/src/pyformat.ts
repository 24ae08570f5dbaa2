// Python's number and string formatting, so that the numbers of an explanation (explain.ts) read as those of the
// text Python writes (the walkthrough's, with core/ops' fmt): format(x, ".4g"), format(x, "g"), format(n, ","), repr(s).

/** format(x, `.${p}g`): p significant digits, rounded half to even on the exact value, trailing zeros dropped,
 * exponent form below 1e-4 or from 10^p, with a signed exponent of at least two digits. */
export function formatG(x: number, p = 6): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  const a = Math.abs(x);
  if (a === 0) return `${sign}0`;
  const [m, e] = a.toExponential(p - 1).split("e");
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
