// A static export's helpers: Python's formatting (the expected strings are Python 3's own output), numpy's
// float16 rounding, the byte shuffle and the request key that export.py writes the same way.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fmt, formatG, pyRepr, thousands } from "../src/pyformat";
import { canonical, requestKey, toHalf, unshuffle } from "../src/exported";

test("format(x, '.4g') as Python writes it, an exact tie rounded to the even digit", () => {
  const cases: [number, string][] = [
    [1.0625, "1.062"], [1234.5, "1234"], [1235.5, "1236"], [12345, "1.234e+04"], [0.0001, "0.0001"],
    [0.00001234, "1.234e-05"], [-0, "-0"], [1e16, "1e+16"], [0.5, "0.5"], [100, "100"], [2.5e-5, "2.5e-05"],
    [99995, "1e+05"], [0.00012345, "0.0001234"],
  ];
  for (const [x, want] of cases) assert.equal(formatG(x, 4), want, String(x));
  assert.equal(formatG(1e-5), "1e-05");
  assert.equal(fmt(-0.25), "−0.25");
  assert.equal(fmt(-1.234e-5), "−1.234e−05");
  assert.equal(fmt(-Infinity), "−∞");
  assert.equal(thousands(85728), "85,728");
});

test("repr(s) as Python writes it", () => {
  assert.equal(pyRepr("it's"), `"it's"`);
  assert.equal(pyRepr('a"b'), `'a"b'`);
  assert.equal(pyRepr("\u00a0x"), "'\\xa0x'");
  assert.equal(pyRepr("tab\t"), "'tab\\t'");
  assert.equal(pyRepr("\u2028"), "'\\u2028'");
  assert.equal(pyRepr("é"), "'é'");
  assert.equal(pyRepr("\x7f"), "'\\x7f'");
});

test("float16 bits as numpy's astype(float16) rounds them", () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [65504, 0x7bff], [1e-8, 0], [2 ** -24, 1], [3 * 2 ** -25, 2], [2 ** -25, 0], [0.1, 0x2e66],
    [-2.5, 0xc100], [65519, 0x7bff], [6.1e-5, 0x3ff], [1.0009765625 + 2 ** -12, 0x3c01],
  ];
  for (const [x, want] of cases) assert.equal(toHalf(x), want, String(x));
});

test("unshuffle undoes export.py's byte planes after a header", () => {
  const plain = new Uint8Array([9, 9, 1, 2, 3, 4, 5, 6, 7, 8]);
  const stored = new Uint8Array([9, 9, 1, 5, 2, 6, 3, 7, 4, 8]);  // byte j of each 4-byte number together
  assert.deepEqual(unshuffle(stored, 2, 4), plain);
});

test("a request's key: method, path, sorted query pairs, body with sorted keys", () => {
  assert.equal(canonical({ b: [1, { d: 1, c: 2 }], a: "é" }), '{"a":"é","b":[1,{"c":2,"d":1}]}');
  assert.equal(requestKey("get", "/api/walkthrough?model=nano-gpt&input=CBABBC", null),
    '["GET","/api/walkthrough",[["input","CBABBC"],["model","nano-gpt"]],null]');
});
