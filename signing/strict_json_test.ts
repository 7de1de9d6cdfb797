import assert from "node:assert/strict";
import fc from "fast-check";
import {
  MAX_JSON_DEPTH,
  parseStrictJson,
  StrictJsonError,
} from "./strict_json.ts";

function refuses(text: string, hint: RegExp, line?: number, column?: number) {
  assert.throws(() => parseStrictJson(text, "test.json"), (error: unknown) => {
    assert.ok(error instanceof StrictJsonError);
    assert.ok(error instanceof SyntaxError);
    assert.match(error.message, hint);
    assert.match(error.message, /^Cannot parse test\.json: /);
    if (line !== undefined) assert.equal(error.line, line);
    if (column !== undefined) assert.equal(error.column, column);
    return true;
  });
}

/** Replaces integers JSON.stringify would write as long digit runs. */
function safeIntegers(value: unknown): unknown {
  if (typeof value === "number") {
    return Number.isInteger(value) && !Number.isSafeInteger(value) &&
        Math.abs(value) < 1e21
      ? 0
      : value;
  }
  if (Array.isArray(value)) return value.map(safeIntegers);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, {
        value: safeIntegers(v),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

Deno.test("parseStrictJson() parses what JSON.parse parses", () => {
  fc.assert(
    fc.property(fc.jsonValue().map(safeIntegers), (value) => {
      const text = JSON.stringify(value, null, 1);
      assert.deepEqual(parseStrictJson(text, "t"), JSON.parse(text));
    }),
    { numRuns: 300 },
  );
});

Deno.test("parseStrictJson() parses escapes, numbers and nesting", () => {
  const text =
    '{"a":"\\u00e9\\n\\t\\"\\\\\\/\\ud83d\\ude00","b":[-0.5e+2,0,1E3],"c":{}}';
  assert.deepEqual(parseStrictJson(text, "t"), JSON.parse(text));
});

Deno.test("parseStrictJson() refuses a duplicate key with its name and place", () => {
  refuses(
    '{\n  "a": 1,\n  "a": 2\n}',
    /duplicate key "a" at line 3, column 3/,
    3,
    3,
  );
});

Deno.test("parseStrictJson() refuses a duplicate key in a nested object", () => {
  refuses('[{"x": {"k": 1, "k": 1}}]', /duplicate key "k"/);
});

Deno.test("parseStrictJson() refuses duplicate keys spelled with escapes", () => {
  refuses('{"a": 1, "\\u0061": 2}', /duplicate key "a"/);
});

Deno.test("parseStrictJson() keeps __proto__ as an ordinary key", () => {
  const value = parseStrictJson('{"__proto__": {"polluted": true}}', "t") as
    & Record<string, unknown>
    & { polluted?: boolean };
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.equal(value.polluted, undefined);
  assert.deepEqual(Object.keys(value), ["__proto__"]);
});

Deno.test("parseStrictJson() refuses a byte order mark", () => {
  refuses('\ufeff{"a": 1}', /byte order mark/, 1, 1);
});

Deno.test("parseStrictJson() refuses lone surrogates, raw or escaped", () => {
  refuses('"\ud800"', /lone surrogate/);
  refuses('"\udc00x"', /lone surrogate/);
  refuses('"\\ud800"', /lone surrogate escape/);
  refuses('"\\ud800\\u0041"', /lone surrogate escape/);
  refuses('"\\udc00"', /lone surrogate escape/);
});

Deno.test("parseStrictJson() refuses what RFC 8259 does not allow", () => {
  const cases: [string, RegExp][] = [
    ["", /end of input/],
    ["{", /expected a string as object key/],
    ["{'a': 1}", /expected a string as object key/],
    ['{"a": 1,}', /expected a string as object key/],
    ["[1,]", /unexpected character/],
    ["[1 2]", /expected ','/],
    ["01", /unexpected data/],
    ["+1", /unexpected character/],
    ["1.", /unexpected data/],
    [".5", /unexpected character/],
    ["NaN", /unexpected character/],
    ["1e999", /out of range/],
    ["tru", /unexpected character/],
    ['"a\tb"', /control character/],
    ['"\\x41"', /invalid escape/],
    ['"\\u12g4"', /invalid \\u escape/],
    ['"abc', /unterminated string/],
    ["// comment\n1", /unexpected character/],
    ["1 2", /unexpected data/],
    ["\u00a01", /unexpected character/],
  ];
  for (const [text, hint] of cases) refuses(text, hint);
});

Deno.test("parseStrictJson() refuses nesting deeper than the bound", () => {
  const ok = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
  assert.ok(Array.isArray(parseStrictJson(ok, "t")));
  const deep = "[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1);
  refuses(deep, /nesting deeper/);
  refuses("[".repeat(100_000), /nesting deeper/);
});

Deno.test("parseStrictJson() names line and column after newlines", () => {
  refuses('{\n"a": 1,\n"b": x}', /line 3, column 6/, 3, 6);
});

Deno.test("parseStrictJson() refuses integers that would lose precision", () => {
  refuses(
    '{"serial": 9007199254740993}',
    /integer 9007199254740993 is outside the safe range/,
    1,
    12,
  );
  refuses("[-9007199254740993]", /outside the safe range/, 1, 2);
  assert.deepEqual(
    parseStrictJson("[9007199254740991, -9007199254740991]", "t"),
    [
      Number.MAX_SAFE_INTEGER,
      -Number.MAX_SAFE_INTEGER,
    ],
  );
  // Fractions and exponents are not integer literals: JSON.parse rules.
  assert.deepEqual(parseStrictJson("[1e300, 0.5]", "t"), [1e300, 0.5]);
});
